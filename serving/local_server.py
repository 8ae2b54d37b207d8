"""Development and test stand-in for `tensorflow_model_server`: TF Serving's gRPC (and REST) API on an export.

The real model server cannot be installed on these machines (not on PyPI or Debian, no Docker), yet
clients, exports and benchmarks must be written against TF Serving. This module serves one model from
`MODEL_BASE/<version>/` SavedModels over the official `tensorflow-serving-api` stubs with TF Serving's
semantics where a client can observe them:

- PredictionService: Predict, Classify, GetModelMetadata (Regress and MultiInference: UNIMPLEMENTED);
  ModelService: GetModelStatus (HandleReloadConfigRequest: UNIMPLEMENTED).
- Version policy "latest": only the highest numeric version under the base path is served. A background
  thread polls the base path and loads new versions without a restart; the old version keeps serving
  until the new one has loaded and replayed its warmup requests (`assets.extra/tf_serving_warmup_requests`),
  and a version that fails to load is not served (the previous one stays).
- Errors carry TF Serving's status codes: NOT_FOUND for an unknown model, version or signature,
  INVALID_ARGUMENT for inputs that do not match the signature or that the model rejects,
  RESOURCE_EXHAUSTED for messages or batches over the limits.
- Optional REST API on another port: /v1/models/NAME[/versions/N] (status), .../metadata,
  ...:predict (row "instances" or columnar "inputs", binary values as {"b64": ...}) and ...:classify.
- Optional TLS (`ServerTls`): gRPC and REST (https) with a certificate and key, and client certificates if asked.

It is not a production server: no batching scheduler, one model, no model config file, no monitoring.

This module is the lifecycle (ModelServer, `serve`); the parts live in serving/server/: loading and version
polling (loader), request semantics (signatures), the gRPC servicers (servicers) and the REST front end (rest).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any, Callable, NamedTuple

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from emopy.serving.layout import DEFAULT_MODEL_NAME
from emopy.serving.server.loader import ModelVersions
from emopy.serving.server.rest import RestServer
from emopy.serving.server.servicers import ModelService, PredictionService, RequestHandler
from emopy.serving.tls import ServerTls

logger = logging.getLogger(__name__)

# TF Serving accepts up to 2 GiB; a development server only needs room for a large batch of face crops.
DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_BATCH_SIZE = 1024
DEFAULT_POLL_SECONDS = 1.0
DEFAULT_MAX_WORKERS = 8


class ServerPorts(NamedTuple):
    """Ports a started ModelServer listens on (rest is None without a REST endpoint)."""

    grpc: int
    rest: int | None


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ModelServer:
    """One model served over gRPC (and optionally REST) from a base path of numeric version folders.

    In-process use (tests, benchmarks)::

        with ModelServer(base_path, port=0) as server:
            channel = grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}")

    Port 0 picks a free port; `start()` returns the bound ports. `start()` loads the highest version
    already on disk before it returns, so the first request finds it; an empty base path is served as soon
    as a version appears, a missing one is a FileNotFoundError. A port in use is an OSError. With `tls`, both
    ports speak TLS only; its files are read by `start()`, which names one that is missing or not PEM.
    """

    def __init__(self, model_base_path: str | Path, model_name: str = DEFAULT_MODEL_NAME, *,
                 host: str = "127.0.0.1", port: int = 8500, rest_port: int | None = None,
                 poll_seconds: float = DEFAULT_POLL_SECONDS, max_workers: int = DEFAULT_MAX_WORKERS,
                 max_receive_message_bytes: int = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
                 max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, tls: ServerTls | None = None):
        if poll_seconds <= 0:
            raise ValueError(f"poll_seconds must be positive, got {poll_seconds}")
        self.model_base_path = Path(model_base_path)
        self.model_name = model_name
        self.host = host
        self.port = port
        self.rest_port = rest_port
        self.poll_seconds = poll_seconds
        self.max_workers = max_workers
        self.max_receive_message_bytes = max_receive_message_bytes
        self.tls = tls
        self.versions = ModelVersions(model_name, self.model_base_path, max_batch_size=max_batch_size)
        self.handler = RequestHandler(self.versions, max_batch_size=max_batch_size)
        self.ports: ServerPorts | None = None
        self._grpc_server: grpc.Server | None = None
        self._rest_server: RestServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def served_version(self) -> int | None:
        served = self.versions.served
        return None if served is None else served.version

    def start(self) -> ServerPorts:
        if self._grpc_server is not None:
            raise RuntimeError("ModelServer is already started")
        # TF Serving would wait for a missing base path to appear; here it is far more likely a typo.
        if not self.model_base_path.is_dir():
            raise FileNotFoundError(f"model base path {self.model_base_path} is not a directory")
        # Before anything listens: a wrong PEM is the user's error, not a half-started server. The ssl context is
        # made even without REST, as it is what checks that the key belongs to the certificate.
        credentials = None if self.tls is None else self.tls.server_credentials()
        ssl_context = None if self.tls is None else self.tls.ssl_context()
        self.versions.poll()
        options = [("grpc.max_receive_message_length", self.max_receive_message_bytes),
                   ("grpc.max_send_message_length", -1),
                   # gRPC lets several servers share a port by default; a port in use should be an error.
                   ("grpc.so_reuseport", 0)]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.max_workers,
                                                        thread_name_prefix="emopy-grpc"), options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(self.handler), server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(self.handler), server)
        address = _host_port(self.host, self.port)
        try:
            grpc_port = (server.add_insecure_port(address) if credentials is None
                         else server.add_secure_port(address, credentials))
        except RuntimeError as error:
            raise OSError(f"cannot listen for gRPC on {address}: {error}") from error
        if grpc_port == 0:
            raise OSError(f"cannot listen for gRPC on {address}")
        server.start()
        self._grpc_server = server
        self._stopping.clear()
        rest_port = None
        if self.rest_port is not None:
            try:
                self._rest_server = RestServer((self.host, self.rest_port), self.handler,
                                                self.max_receive_message_bytes, ssl_context=ssl_context)
            except OSError:
                self.stop()
                raise
            rest_port = self._rest_server.server_address[1]
            self._start_thread(self._rest_server.serve_forever, "emopy-rest")
        self._start_thread(self._poll_forever, "emopy-version-poller")
        self.ports = ServerPorts(grpc_port, rest_port)
        return self.ports

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_forever(self) -> None:
        while not self._stopping.wait(self.poll_seconds):
            try:
                self.versions.poll()
            except Exception:  # e.g. the base path unreadable for a moment; try again next time
                logger.exception("model %s: polling %s failed", self.model_name, self.model_base_path)

    def wait_for_version(self, version: int, timeout: float = 10.0) -> bool:
        """Whether `version` is served within `timeout` seconds (for tests and scripts that just exported)."""
        deadline = time.monotonic() + timeout
        while self.served_version != version and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.served_version == version

    def stop(self, grace: float | None = 1.0) -> None:
        """Stops listening (letting requests in flight finish for `grace` seconds) and polling."""
        self._stopping.set()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace).wait()
            self._grpc_server = None
        if self._rest_server is not None:
            self._rest_server.shutdown()  # its serve_forever thread was started together with it
            self._rest_server.server_close()
            self._rest_server = None
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=max(self.poll_seconds, 1.0) * 2)
        self._threads = []
        self.ports = None

    def __enter__(self) -> "ModelServer":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def serve(model_base_path: str | Path, model_name: str = DEFAULT_MODEL_NAME, port: int = 8500,
          rest_port: int | None = None, host: str = "127.0.0.1", *, poll_seconds: float = DEFAULT_POLL_SECONDS,
          max_workers: int = DEFAULT_MAX_WORKERS, max_receive_message_bytes: int = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
          max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, tls: ServerTls | None = None) -> None:
    """Serves until SIGINT or SIGTERM (`emopy serve`); prints one line saying where it listens.

    Must run on the main thread (signal handlers).
    """
    server = ModelServer(model_base_path, model_name, host=host, port=port, rest_port=rest_port,
                         poll_seconds=poll_seconds, max_workers=max_workers,
                         max_receive_message_bytes=max_receive_message_bytes, max_batch_size=max_batch_size, tls=tls)
    stop_requested = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop_requested.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        ports = server.start()
        version = server.served_version
        where = f"gRPC{'' if tls is None else ' with TLS'} on {_host_port(host, ports.grpc)}"
        if ports.rest is not None:
            scheme = "http" if tls is None else "https"
            where += f", REST on {scheme}://{_host_port(host, ports.rest)}/v1/models/{model_name}"
        state = f"version {version}" if version is not None else "no version yet (waiting for one)"
        print(f"Serving model '{model_name}' from {Path(model_base_path).resolve()} ({state}): {where}", flush=True)
        while not stop_requested.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
