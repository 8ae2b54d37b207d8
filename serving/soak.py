"""Soaking a TF Serving endpoint: good and malformed requests from many clients over REST and gRPC, with the
latencies seen and the server's resident memory over time (benchmarks/soak.py, tests/test_soak.py).

Each client thread keeps one REST connection and one gRPC channel and sends a fixed cycle of request kinds. A good
request must be answered; a bad one must be refused as TF Serving refuses it (HTTP 4xx, gRPC INVALID_ARGUMENT or
RESOURCE_EXHAUSTED). The server's RSS is read from /proc, so the server under test is a process on this machine.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import itertools
import json
import re
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Callable

import grpc
import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from emopy.serving.layout import DEFAULT_MODEL_NAME
from emopy.serving.tls import ClientTls

REFUSED_GRPC = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
TIMEOUT_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class Request:
    """One kind of request: over "rest" (a JSON body for :predict) or "grpc" (a PredictRequest), good or bad."""

    kind: str
    protocol: str
    good: bool
    payload: bytes | predict_pb2.PredictRequest


def png_bomb(side: int = 12000) -> bytes:
    """A gray PNG of side x side zero pixels: about 140 KB that decode to side² bytes (144 MB at 12000)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row = zlib.compressobj(9), b"\0" * (side + 1)  # each row: filter byte 0, then its pixels
    pixels = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _tensor(dtype: int, shape: list[int], **values) -> tensor_pb2.TensorProto:
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in shape]
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims), **values)


def _predict(model_name: str, **inputs: tensor_pb2.TensorProto) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "serving_default"
    for name, tensor in inputs.items():
        request.inputs[name].CopyFrom(tensor)
    return request


def request_kinds(face_png: bytes, model_name: str = DEFAULT_MODEL_NAME) -> dict[str, Request]:
    """Every kind of request, by name, against an emopy export's serving_default (one input, image_bytes)."""
    def rest(kind: str, good: bool, body: dict | str) -> Request:
        return Request(kind, "rest", good, (body if isinstance(body, str) else json.dumps(body)).encode())

    def grpc_(kind: str, good: bool, request: predict_pb2.PredictRequest) -> Request:
        return Request(kind, "grpc", good, request)

    def b64(data: bytes) -> dict:
        return {"b64": base64.b64encode(data).decode("ascii")}

    kinds = [
        rest("rest_good", True, {"instances": [b64(face_png)]}),
        rest("rest_malformed_json", False, '{"instances": [{"b64": '),
        rest("rest_bad_base64", False, {"instances": [{"b64": "not*base64!"}]}),
        rest("rest_not_an_image", False, {"instances": [b64(b"these bytes are no image " * 4)]}),
        rest("rest_png_bomb", False, {"instances": [b64(png_bomb())]}),
        rest("rest_wrong_input", False, {"instances": [{"pixels": b64(face_png)}]}),
        grpc_("grpc_good", True, _predict(model_name, image_bytes=_tensor(types_pb2.DT_STRING, [1],
                                                                          string_val=[face_png]))),
        grpc_("grpc_empty_tensor", False, _predict(model_name, image_bytes=_tensor(types_pb2.DT_STRING, [1]))),
        grpc_("grpc_junk_tensor", False, _predict(model_name, image_bytes=_tensor(
            types_pb2.DT_FLOAT, [3, 7], tensor_content=bytes(range(200))))),
        grpc_("grpc_wrong_input", False, _predict(model_name, pixels=_tensor(types_pb2.DT_STRING, [1],
                                                                              string_val=[face_png]))),
        grpc_("grpc_not_an_image", False, _predict(model_name, image_bytes=_tensor(
            types_pb2.DT_STRING, [1], string_val=[b"these bytes are no image"]))),
    ]
    return {request.kind: request for request in kinds}


def mix(kinds: dict[str, Request], bad_share: float, protocols: tuple[str, ...] = ("rest", "grpc")) -> list[Request]:
    """A cycle of requests over `protocols` in which `bad_share` are bad: each bad kind once, spread evenly among
    the good kinds taken in turn."""
    good = [request for request in kinds.values() if request.good and request.protocol in protocols]
    bad = [request for request in kinds.values() if not request.good and request.protocol in protocols]
    if bad_share >= 1:
        return bad
    if bad_share <= 0:
        return good
    goods = round(len(bad) * (1 - bad_share) / bad_share)
    placed = [((index + 0.5) / len(bad), request) for index, request in enumerate(bad)]
    placed += [(index / goods, good[index % len(good)]) for index in range(goods)]
    return [request for _, request in sorted(placed, key=lambda pair: pair[0])]


@dataclasses.dataclass
class SoakResult:
    """What a soak saw: answers by kind ("answered" or "refused"), latencies by protocol, and the server's RSS."""

    seconds: float
    outcomes: dict[str, dict[str, int]]
    latencies: dict[str, list[float]]
    samples: list[tuple[float, int, int]]  # (seconds since the start, requests done, server RSS in bytes)
    failures: list[str]  # the first few wrong answers, for the report

    @property
    def requests(self) -> int:
        return sum(sum(counts.values()) for counts in self.outcomes.values())

    def wrong(self, kinds: dict[str, Request]) -> tuple[int, int]:
        """(good requests not answered, bad requests not refused)."""
        good = sum(counts.get("refused", 0) + counts.get("error", 0)
                   for kind, counts in self.outcomes.items() if kinds[kind].good)
        bad = sum(counts.get("answered", 0) + counts.get("error", 0)
                  for kind, counts in self.outcomes.items() if not kinds[kind].good)
        return good, bad

    def rss_at(self, after_seconds: float) -> int:
        """The server's RSS in the first sample taken `after_seconds` into the soak (the last, if none was)."""
        return next((rss for seconds, _, rss in self.samples if seconds >= after_seconds), self.samples[-1][2])

    def rss_growth(self, after_seconds: float) -> float:
        """The server's RSS at the end against its RSS `after_seconds` into the soak, as a fraction of the latter."""
        return self.samples[-1][2] / self.rss_at(after_seconds) - 1

    def rss_slope(self, after_seconds: float) -> float:
        """The least-squares slope of the server's RSS after `after_seconds`, in MB a minute."""
        points = np.array([(seconds, rss) for seconds, _, rss in self.samples if seconds >= after_seconds])
        if len(points) < 2:
            return 0.0
        return float(np.polyfit(points[:, 0] / 60, points[:, 1] / 2**20, 1)[0])


def start_server(*serve_args: str) -> tuple[subprocess.Popen, str, str]:
    """`emopy serve --port 0 --rest-port 0 SERVE_ARGS...` in a process of its own, once it serves: the process, and
    its gRPC and REST addresses (host:port) as its start line gives them."""
    command = [sys.executable, "-m", "emopy.pipeline.cli", "serve", "--port", "0", "--rest-port", "0", *serve_args]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    found = re.search(r"gRPC (?:with TLS )?on ([\d.]+:\d+), REST on https?://([\d.]+:\d+)/", line)
    if not found:
        server.kill()
        server.wait()
        raise RuntimeError(f"emopy serve {' '.join(serve_args)} did not start: {line!r}")
    return server, found[1], found[2]


def rss_bytes(pid: int) -> int:
    """A process's resident set size, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class _Client:
    """One client: a REST connection and a gRPC stub, both kept open, each call timed."""

    def __init__(self, rest_address: str | None, grpc_address: str | None, model_name: str, tls: ClientTls | None):
        self.rest_address, self.tls = rest_address, tls
        self.path = f"/v1/models/{model_name}:predict"
        self.connection = None
        self.channel = None
        if grpc_address:
            self.channel = (grpc.secure_channel(grpc_address, tls.channel_credentials()) if tls
                            else grpc.insecure_channel(grpc_address))
            self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def _rest_connection(self) -> http.client.HTTPConnection:
        if self.connection is None:
            host, port = self.rest_address.rsplit(":", 1)
            self.connection = (http.client.HTTPSConnection(host, int(port), timeout=TIMEOUT_SECONDS,
                                                           context=self.tls.ssl_context()) if self.tls
                               else http.client.HTTPConnection(host, int(port), timeout=TIMEOUT_SECONDS))
        return self.connection

    def send(self, request: Request) -> str:
        """"answered", "refused" (TF Serving's refusal of a bad request) or "error" (anything else)."""
        if request.protocol == "grpc":
            try:
                self.stub.Predict(request.payload, timeout=TIMEOUT_SECONDS)
                return "answered"
            except grpc.RpcError as error:
                return "refused" if error.code() in REFUSED_GRPC else "error"
        connection = self._rest_connection()
        try:
            connection.request("POST", self.path, request.payload, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self.connection = None
            return "error"
        if response.will_close:
            connection.close()
            self.connection = None
        return "answered" if response.status == 200 else "refused" if 400 <= response.status < 500 else "error"

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.channel is not None:
            self.channel.close()


def soak(cycle: list[Request], *, pid: int, rest_address: str | None = None, grpc_address: str | None = None,
         model_name: str = DEFAULT_MODEL_NAME, clients: int = 8, seconds: float | None = None,
         count: int | None = None, tls: ClientTls | None = None, sample_seconds: float = 1.0,
         on_sample: Callable[[tuple[float, int, int]], None] | None = None) -> SoakResult:
    """Sends `cycle` over and over from `clients` threads, for `seconds` or `count` requests in all, sampling the
    RSS of the server process `pid` every `sample_seconds`."""
    outcomes: dict[str, dict[str, int]] = {}
    latencies: dict[str, list[float]] = {"rest": [], "grpc": []}
    failures: list[str] = []
    lock, done, stop = threading.Lock(), [0], threading.Event()
    budget = itertools.count() if count is not None else None

    def client(offset: int) -> None:
        session = _Client(rest_address, grpc_address, model_name, tls)
        try:
            for request in itertools.islice(itertools.cycle(cycle), offset, None):
                if stop.is_set() or (budget is not None and next(budget) >= count):
                    return
                started = time.perf_counter()
                outcome = session.send(request)
                took = time.perf_counter() - started
                with lock:
                    counts = outcomes.setdefault(request.kind, {})
                    counts[outcome] = counts.get(outcome, 0) + 1
                    latencies[request.protocol].append(took)
                    done[0] += 1
                    if outcome != ("answered" if request.good else "refused") and len(failures) < 10:
                        failures.append(f"{request.kind}: {outcome}")
        finally:
            session.close()

    started = time.perf_counter()
    samples = [(0.0, 0, rss_bytes(pid))]
    threads = [threading.Thread(target=client, args=(index * len(cycle) // clients,), daemon=True)
               for index in range(clients)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        time.sleep(sample_seconds)
        elapsed = time.perf_counter() - started
        sample = (elapsed, done[0], rss_bytes(pid))
        samples.append(sample)
        if on_sample:
            on_sample(sample)
        if seconds is not None and elapsed >= seconds:
            stop.set()
    for thread in threads:
        thread.join()
    samples.append((time.perf_counter() - started, done[0], rss_bytes(pid)))
    return SoakResult(time.perf_counter() - started, outcomes, latencies, samples, failures)
