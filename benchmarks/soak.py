"""Soak of `emopy serve`: many clients, good and malformed requests, for a chosen time; does the server's memory stay
flat, and does every request get the right answer in time?

Run: python benchmarks/soak.py [--minutes 30] [--clients 8] [--bad-share 0.35] [--protocols rest,grpc] [--tls]
                               [--model ferplus | --model-base-path BASE]

Starts `emopy serve` (the shipped default model unless told otherwise) with gRPC and REST on free loopback ports,
with --tls over a certificate made for the run. Each client thread sends a cycle of requests in which --bad-share are
bad: malformed JSON, bad base64, bytes that are no image, a 12000x12000 PNG bomb and wrong input names over REST;
empty and junk tensors, bytes that are no image and wrong input names over gRPC (serving/soak.py).
Prints, beside each target: requests a second, good requests not answered (0), bad requests not refused (0),
REST and gRPC p50/p99 latency (REST p99 under 65 ms), and the server's RSS growth after the first minute (under
1 %) with its slope.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

import numpy as np

# Run as a script, this folder comes first on sys.path, and this file's name would hide the serving package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

ASTRONAUT = Path(__file__).resolve().parent.parent / "emopy_tfds" / "data" / "astronaut.jpg"
WARM_UP_SECONDS = 60.0
REST_P99_TARGET_MS = 65.0
RSS_GROWTH_TARGET = 0.01


def face_png() -> bytes:
    """The packaged photo's face, cropped as a client's face crop and encoded as PNG."""
    from emopy_tfds import faces

    ((_, aligned),) = faces.preprocess(str(ASTRONAUT), faces.FaceSpec(crop_size=96))
    return faces.encode_png(aligned.image)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that signs itself, and its key: the client trusts it as its CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert, key_path = folder / "server.pem", folder / "server.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert, key_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--bad-share", type=float, default=0.35, help="share of bad requests (default: 0.35)")
    parser.add_argument("--protocols", default="rest,grpc")
    parser.add_argument("--tls", action="store_true", help="gRPC and REST over TLS")
    parser.add_argument("--model", "--model-base-path", default="ferplus", help="a shipped model or a base path")
    args = parser.parse_args()

    from emopy.serving import soak
    from emopy.serving.tls import ClientTls

    with tempfile.TemporaryDirectory() as folder:
        tls = self_signed(Path(folder)) if args.tls else None
        tls_flags = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []
        server, grpc_address, rest_address = soak.start_server("--model", args.model, *tls_flags)
        try:
            kinds = soak.request_kinds(face_png())
            cycle = soak.mix(kinds, args.bad_share, tuple(args.protocols.split(",")))
            print(f"emopy serve --model {args.model}{' --tls' if tls else ''} (pid {server.pid}): {args.clients} "
                  f"clients for {args.minutes:g} min, {sum(not r.good for r in cycle) / len(cycle):.0%} bad "
                  f"({', '.join(sorted({r.kind for r in cycle}))})", flush=True)
            last_minute = [0]

            def progress(sample: tuple[float, int, int]) -> None:
                seconds, requests, rss = sample
                if seconds // 60 > last_minute[0]:
                    last_minute[0] = int(seconds // 60)
                    print(f"  {seconds / 60:5.1f} min: {requests:8d} requests, server RSS {rss / 2**20:.1f} MB",
                          flush=True)

            result = soak.soak(cycle, pid=server.pid, rest_address=rest_address if "rest" in args.protocols else None,
                               grpc_address=grpc_address if "grpc" in args.protocols else None, clients=args.clients,
                               seconds=args.minutes * 60, tls=ClientTls(ca_cert=tls[0]) if tls else None,
                               on_sample=progress)
        finally:
            server.terminate()
            server.wait(timeout=60)
    report(result, kinds)


def report(result, kinds) -> None:
    good_failed, bad_not_refused = result.wrong(kinds)
    print(f"\n{result.requests} requests in {result.seconds:.0f} s: {result.requests / result.seconds:.1f} a second")
    for kind, counts in sorted(result.outcomes.items()):
        print(f"  {kind:<20} {', '.join(f'{count} {outcome}' for outcome, count in sorted(counts.items()))}")
    print(f"good requests not answered: {good_failed} (target 0)")
    print(f"bad requests not refused:   {bad_not_refused} (target 0)")
    for failure in result.failures:
        print(f"  e.g. {failure}")
    for protocol, seconds in result.latencies.items():
        if seconds:
            p50, p99 = np.percentile(np.array(seconds) * 1000, [50, 99])
            target = f" (target p99 under {REST_P99_TARGET_MS:g} ms: {'met' if p99 < REST_P99_TARGET_MS else 'NOT met'})"
            print(f"{protocol:<5} latency p50 {p50:.1f} ms, p99 {p99:.1f} ms{target if protocol == 'rest' else ''}")
    start = result.rss_at(WARM_UP_SECONDS)
    growth = result.rss_growth(WARM_UP_SECONDS)
    print(f"server RSS: {result.samples[0][2] / 2**20:.1f} MB at the start, {start / 2**20:.1f} MB after the first "
          f"minute, {result.samples[-1][2] / 2**20:.1f} MB at the end")
    print(f"RSS growth after the first minute: {growth:+.2%} (target under {RSS_GROWTH_TARGET:.0%}: "
          f"{'met' if growth < RSS_GROWTH_TARGET else 'NOT met'}), slope {result.rss_slope(WARM_UP_SECONDS):+.3f} "
          "MB a minute")


if __name__ == "__main__":
    main()
