"""TLS between EmotionClient and `emopy serve` (ModelServer): certificates made here, gRPC and REST over loopback.

A test CA signs a server certificate for localhost and 127.0.0.1 and a client certificate; another CA, which
signed neither, stands for a CA the client should not trust.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from emopy.pipeline import cli
from emopy.serving.client import EmotionClient, ServingRequestError
from emopy.serving.local_server import ModelServer
from emopy.serving.tls import ClientTls, ServerTls, explain_mismatch
from serving_fixtures import LABELS, face_png, write_test_model

MODEL = "emotion"
ROOT = Path(__file__).resolve().parents[1]


# --- Certificates ----------------------------------------------------------------------------------------


class Pki(NamedTuple):
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path  # a CA that signed none of them


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str | None = None,
                 issuer_key: ec.EllipticCurvePrivateKey | None = None, *, usage=None,
                 names: list[x509.GeneralName] = ()) -> x509.Certificate:
    """A CA's self-signed certificate without `issuer`; else a leaf that `issuer` signs, for `usage`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    is_ca = issuer is None
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject)).issuer_name(_name(issuer or subject))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key((issuer_key or key).public_key()),
                              critical=False)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=not is_ca, key_cert_sign=is_ca,
                                            crl_sign=is_ca, encipher_only=False, decipher_only=False), critical=True))
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(folder: Path, name: str, certificate: x509.Certificate,
           key: ec.EllipticCurvePrivateKey | None = None) -> tuple[Path, Path | None]:
    cert_path = folder / f"{name}.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    if key is None:
        return cert_path, None
    key_path = folder / f"{name}-key.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, server_key, client_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    ca_cert, _ = _write(folder, "ca", _certificate("emopy test CA", ca_key))
    server = _certificate("localhost", server_key, "emopy test CA", ca_key, usage=ExtendedKeyUsageOID.SERVER_AUTH,
                          names=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    server_cert, server_key_path = _write(folder, "server", server, server_key)
    client = _certificate("emopy test client", client_key, "emopy test CA", ca_key,
                          usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    client_cert, client_key_path = _write(folder, "client", client, client_key)
    other_ca_cert, _ = _write(folder, "other-ca", _certificate("another CA", other_key))
    return Pki(ca_cert, server_cert, server_key_path, client_cert, client_key_path, other_ca_cert)


@pytest.fixture(scope="module")
def model_base(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("model")
    write_test_model(base, 1)
    return base


@pytest.fixture(scope="module")
def tls_server(model_base, pki):
    with ModelServer(model_base, MODEL, port=0, rest_port=0, tls=ServerTls(pki.server_cert, pki.server_key)) as server:
        yield server


# --- Tests -----------------------------------------------------------------------------------------------


def _classifies(client: EmotionClient) -> None:
    result = client.predict(face_png())
    assert result["probabilities"].shape == (1, len(LABELS)) and result["classes"][0] in LABELS


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_tls_client_with_the_ca_classifies_over_grpc_and_rest(tls_server, pki, host):
    tls = ClientTls(ca_cert=pki.ca_cert)
    with EmotionClient(f"{host}:{tls_server.ports.grpc}", MODEL, tls=tls) as client:
        _classifies(client)
    with EmotionClient(f"{host}:{tls_server.ports.rest}", MODEL, rest=True, tls=tls) as client:
        _classifies(client)
    # The CA as bytes, as a secret store hands it out.
    with EmotionClient(f"{host}:{tls_server.ports.grpc}", MODEL, tls=ClientTls(pki.ca_cert.read_bytes())) as client:
        _classifies(client)


@pytest.mark.parametrize("rest", [False, True], ids=["grpc", "rest"])
def test_an_insecure_client_or_one_without_the_ca_fails_clearly(tls_server, pki, rest):
    port = tls_server.ports.rest if rest else tls_server.ports.grpc
    for tls, words in [(None, ["only TLS"]), (ClientTls(), ["not one this client trusts"]),
                       (ClientTls(pki.other_ca_cert), ["not one this client trusts"])]:
        with EmotionClient(f"127.0.0.1:{port}", MODEL, rest=rest, tls=tls, retries=0, timeout=10) as client:
            with pytest.raises(ServingRequestError) as caught:
                client.predict(face_png())
        message = str(caught.value)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, message
        assert f"127.0.0.1:{port}" in message
        for word in words:
            assert word in message, (tls, message)


@pytest.mark.parametrize("details", [str(BrokenPipeError(32, "Broken pipe")),
                                     str(ConnectionResetError(104, "Connection reset by peer")),
                                     "Remote end closed connection without response", "Socket closed"])
def test_every_way_a_tls_server_hangs_up_on_a_plain_client_gets_the_hint(details):
    # Which of these a plain REST client sees depends on how much of its body went out before the hang-up.
    assert "only TLS" in explain_mismatch(details, None)
    assert explain_mismatch(details, ClientTls(client_cert=None)).endswith("--client-key)")


def test_mutual_tls_lets_in_only_clients_with_a_certificate(model_base, pki):
    tls = ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca_cert)
    with ModelServer(model_base, MODEL, port=0, rest_port=0, tls=tls) as server:
        with_cert = ClientTls(pki.ca_cert, client_cert=pki.client_cert, client_key=pki.client_key)
        without_cert = ClientTls(pki.ca_cert)
        for rest, port in [(False, server.ports.grpc), (True, server.ports.rest)]:
            with EmotionClient(f"localhost:{port}", MODEL, rest=rest, tls=with_cert) as client:
                _classifies(client)
            with EmotionClient(f"localhost:{port}", MODEL, rest=rest, tls=without_cert, retries=0) as client:
                with pytest.raises(ServingRequestError) as caught:
                    client.predict(face_png())
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, str(caught.value)
            assert "want a client certificate" in str(caught.value)


def test_missing_unreadable_or_wrong_pems_are_errors_naming_the_file(model_base, pki, tmp_path):
    missing = tmp_path / "missing.pem"
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    for tls, error, named in [
        (ClientTls(ca_cert=missing), FileNotFoundError, missing),
        (ClientTls(ca_cert=not_pem), ValueError, not_pem),
        (ClientTls(pki.ca_cert, client_cert=pki.client_cert, client_key=missing), FileNotFoundError, missing),
    ]:
        for rest in (False, True):
            with pytest.raises(error, match=re.escape(str(named))):
                EmotionClient("127.0.0.1:1", MODEL, rest=rest, tls=tls)
    with pytest.raises(ValueError, match="client_key"):
        EmotionClient("127.0.0.1:1", MODEL, tls=ClientTls(pki.ca_cert, client_cert=pki.client_cert))

    for tls, error, named in [
        (ServerTls(missing, pki.server_key), FileNotFoundError, missing),
        (ServerTls(pki.server_cert, not_pem), ValueError, not_pem),
        (ServerTls(pki.server_cert, pki.client_key), ValueError, pki.client_key),  # another certificate's key
        (ServerTls(pki.server_cert, pki.server_key, client_ca=tmp_path), IsADirectoryError, tmp_path),
    ]:
        with pytest.raises(error, match=re.escape(str(named))):
            ModelServer(model_base, MODEL, port=0, tls=tls).start()
    if os.geteuid() != 0:  # root reads any file
        unreadable = tmp_path / "unreadable.pem"
        unreadable.write_bytes(pki.server_key.read_bytes())
        unreadable.chmod(0)
        with pytest.raises(PermissionError, match=re.escape(str(unreadable))):
            ModelServer(model_base, MODEL, port=0, tls=ServerTls(pki.server_cert, unreadable)).start()


def test_emopy_serve_with_tls_and_emopy_predict_through_it(model_base, pki, tmp_path, capsys):
    """`emopy serve --tls-cert --tls-key` in its own process; `emopy predict --server --tls --ca-cert` against it."""
    command = [sys.executable, "-m", "emopy.pipeline.cli", "serve", "--model-base-path", str(model_base),
               "--model-name", MODEL, "--port", "0", "--rest-port", "0",
               "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=environment)
    try:
        line = process.stdout.readline()
        where = re.search(r"gRPC with TLS on 127\.0\.0\.1:(\d+), REST on https://127\.0\.0\.1:(\d+)/", line)
        assert where, line
        crop = tmp_path / "face.png"
        crop.write_bytes(face_png())
        predict = ["predict", str(crop), "--cropped", "--server", f"127.0.0.1:{where[1]}", "--model-name", MODEL]
        assert cli.main(predict + ["--ca-cert", str(pki.ca_cert)]) == 0
        captured = capsys.readouterr()
        assert any(label in captured.out for label in LABELS), captured

        assert cli.main(predict) == 2  # an insecure client
        assert "only TLS" in capsys.readouterr().err
        assert cli.main(predict + ["--tls"]) == 2  # TLS, trusting only the system's roots
        assert "--ca-cert" in capsys.readouterr().err
        assert cli.main(predict + ["--ca-cert", str(tmp_path / "nope.pem")]) == 2
        assert "nope.pem" in capsys.readouterr().err
        assert cli.main(["predict", str(crop), "--cropped", "--tls"]) == 2  # TLS without a server
        assert "--server" in capsys.readouterr().err
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_emopy_serve_names_a_missing_certificate(model_base, pki, tmp_path, capsys):
    missing = tmp_path / "server.pem"
    assert cli.main(["serve", "--model-base-path", str(model_base), "--port", "0",
                     "--tls-cert", str(missing), "--tls-key", str(pki.server_key)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert cli.main(["serve", "--model-base-path", str(model_base), "--port", "0",
                     "--tls-cert", str(pki.server_cert)]) == 2
    assert "--tls-key" in capsys.readouterr().err
