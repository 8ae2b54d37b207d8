"""The REST front end: TF Serving's JSON API (/v1/models/...) over the same RequestHandler as gRPC.

Status, metadata, :predict (row "instances" or columnar "inputs", binary values as {"b64": ...}) and
:classify; errors answer with TF Serving's HTTP status for their gRPC code and {"error": message}.
At most MAX_CONNECTIONS connections are handled at once, each dropped when its client is silent for
CONNECTION_TIMEOUT_SECONDS; https with an ssl context.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import re
import socket
import ssl
import threading
from typing import Any, Callable

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import classification_pb2, get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from emopy.serving.server.servable import GRPC_CODE_BY_NUMBER, ServingError, Signature
from emopy.serving.server.servicers import RequestHandler
from emopy.serving.server.signatures import SIGNATURE_DEF_FIELD, classify_on, find_signature, run_signature

logger = logging.getLogger(__name__)

# TF Serving's --rest_api_timeout_in_ms is 30 s too. Here it bounds each wait on a client (its request, a
# handshake, a read of its answer), so a client that stalls costs its thread 30 s, not the thread for good.
CONNECTION_TIMEOUT_SECONDS = 30.0
# Handler threads, one per open connection; further clients wait in the listen backlog until one ends.
MAX_CONNECTIONS = 32

# TF Serving's REST front end maps status codes to HTTP like this (util/net_http status mapping).
_HTTP_STATUS_BY_GRPC_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.CANCELLED: 499,
}

_REST_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                        r"(?:(?P<metadata>/metadata)|:(?P<verb>[a-z]+))?/?$")


def _decode_b64(name: str, value: Any) -> Any:
    # TF Serving's JSON: binary values are {"b64": "..."}; other strings are UTF-8 text.
    if isinstance(value, dict) and set(value) == {"b64"}:
        encoded = value["b64"]
        if not isinstance(encoded, str):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"'{name}': a {{\"b64\": ...}} value must be a string, got {type(encoded).__name__}")
        try:
            # Strict, so stray characters are an error here rather than bytes silently dropped; line breaks are
            # allowed, as some encoders write them.
            return base64.b64decode("".join(encoded.split()), validate=True)
        except ValueError as error:  # binascii.Error, or characters that are not ASCII
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"'{name}': a {{\"b64\": ...}} value is not valid base64 ({error})") from error
    if isinstance(value, list):
        return [_decode_b64(name, item) for item in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _json_to_array(name: str, value: Any, spec: tf.TensorSpec) -> np.ndarray:
    try:
        if spec.dtype == tf.string:
            array = np.array(value, dtype=object)
            if not all(isinstance(item, bytes) for item in array.flat):
                raise ValueError("expected strings or {\"b64\": ...} values")
            return array
        if any(isinstance(item, bytes) for item in np.array(value, dtype=object).flat):
            raise ValueError(f"expected numbers of type {spec.dtype.name}, got strings")
        return np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
    except (TypeError, ValueError) as error:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}': {error}") from error


def _json_value(name: str, value: Any) -> Any:
    # Output names ending in _bytes are binary by TF Serving's convention; other strings are text when they can be.
    if isinstance(value, bytes):
        if not name.endswith("_bytes"):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [_json_value(name, item) for item in value]
    return value


def _rest_predict_inputs(body: dict, signature: Signature) -> tuple[dict[str, np.ndarray], bool]:
    """Request JSON as named arrays, and whether it used the row ("instances") format."""
    if ("instances" in body) == ("inputs" in body):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           "JSON body must have exactly one of 'instances' (row format) or 'inputs' (columnar)")
    only_input = next(iter(signature.inputs)) if len(signature.inputs) == 1 else None
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "'instances' must be a non-empty list")
        named = all(isinstance(item, dict) and set(item) != {"b64"} for item in instances)
        if named:
            keys = set(instances[0])
            if any(set(item) != keys for item in instances):
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "every instance must name the same inputs")
            columns = {key: [_decode_b64(key, item[key]) for item in instances] for key in keys}
        elif only_input is not None:
            columns = {only_input: [_decode_b64(only_input, item) for item in instances]}
        else:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"signature '{signature.name}' has several inputs; instances must be objects naming them")
        row_format = True
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and set(inputs) != {"b64"}:
            columns = {key: _decode_b64(key, value) for key, value in inputs.items()}
        elif only_input is not None:
            columns = {only_input: _decode_b64(only_input, inputs)}
        else:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"signature '{signature.name}' has several inputs; 'inputs' must be an object naming them")
        row_format = False
    arrays = {}
    for key, value in columns.items():
        arrays[key] = _json_to_array(key, value, signature.inputs[key]) if key in signature.inputs else np.empty(0)
    return arrays, row_format


def _example_from_json(example: dict) -> example_pb2.Example:
    # TF Serving's REST classify format: ints become int64_list, other numbers float_list, strings bytes_list.
    if not isinstance(example, dict):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "each example must be a JSON object of features")
    proto = example_pb2.Example()
    for key, value in example.items():
        values = _decode_b64(key, value if isinstance(value, list) else [value])
        feature = proto.features.feature[key]
        if all(isinstance(item, bytes) for item in values):
            feature.bytes_list.value.extend(values)
        elif all(isinstance(item, int) and not isinstance(item, bool) for item in values):
            feature.int64_list.value.extend(values)
        elif all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in values):
            feature.float_list.value.extend(float(item) for item in values)
        else:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"feature '{key}' mixes strings and numbers")
    return proto


class RestServer(http.server.ThreadingHTTPServer):
    """The REST endpoint: a thread per connection, up to `max_connections` at once, each closed when its client
    is silent for `connection_timeout` seconds; answers through the same RequestHandler as gRPC. With
    `ssl_context`, https only.
    """

    daemon_threads = True
    block_on_close = False  # stop() must not wait for clients' idle connections to time out
    request_queue_size = 64  # the listen backlog: clients waiting for a handler thread

    def __init__(self, address: tuple[str, int], handler: RequestHandler, max_body_bytes: int, *,
                 connection_timeout: float = CONNECTION_TIMEOUT_SECONDS, max_connections: int = MAX_CONNECTIONS,
                 ssl_context: ssl.SSLContext | None = None):
        super().__init__(address, _RestRequestHandler)
        self.request_handler = handler
        self.max_body_bytes = max_body_bytes
        self.connection_timeout = connection_timeout
        self.ssl_context = ssl_context
        self._handler_threads = threading.BoundedSemaphore(max_connections)
        self._closing = threading.Event()

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        # An answer goes out in two writes, its headers and then its body. With Nagle's algorithm the body waited
        # for the client's delayed ACK of the headers, about 40 ms: REST took 52 ms a request where gRPC took 8.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            # The handshake is the handler thread's (under the connection's timeout), not the accept loop's.
            connection = self.ssl_context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        # With every handler thread busy, the accept loop waits here, and new clients wait in the listen backlog.
        while not self._handler_threads.acquire(timeout=0.1):
            if self._closing.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._handler_threads.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._handler_threads.release()

    def shutdown(self) -> None:
        self._closing.set()
        super().shutdown()


class _RestRequestHandler(http.server.BaseHTTPRequestHandler):
    server: RestServer
    protocol_version = "HTTP/1.1"  # keep-alive, as clients of TF Serving's REST API expect

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("REST %s", format % args)

    def setup(self) -> None:
        self.timeout = self.server.connection_timeout  # StreamRequestHandler sets it on the socket
        super().setup()

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except OSError as error:  # ssl.SSLError (a plain-HTTP client, a certificate refused) or a silent client
                logger.debug("REST TLS handshake with %s failed: %s", self.client_address, error)
                self.close_connection = True
                return
        super().handle()

    def do_GET(self) -> None:
        self._respond(self._get)

    def do_POST(self) -> None:
        self._respond(self._post)

    def _respond(self, handle: Callable[[re.Match, dict | None], dict]) -> None:
        status = 200
        try:
            # The body is read before anything can fail, so the kept-alive connection stays in step.
            request_body = self._read_json() if self.command == "POST" else None
            route = _REST_PATH.match(self.path.split("?", 1)[0])
            if route is None:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {self.command} {self.path}")
            body = handle(route, request_body)
        except TimeoutError:  # a body too slow to come: dropped, as BaseHTTPRequestHandler drops slow headers
            raise
        except ServingError as error:
            status, body = _HTTP_STATUS_BY_GRPC_CODE.get(error.code, 500), {"error": error.message}
        except Exception as error:  # a bug must cost one request, not the server
            logger.exception("REST %s %s failed", self.command, self.path)
            status, body = 500, {"error": f"{type(error).__name__}: {error}"}
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _model_spec(self, route: re.Match, signature_name: str = ""):
        spec = predict_pb2.PredictRequest().model_spec
        spec.name = route["name"]
        if route["version"] is not None:
            spec.version.value = int(route["version"])
        spec.signature_name = signature_name
        return spec

    def _get(self, route: re.Match, _: None) -> dict:
        handler = self.server.request_handler
        if route["verb"]:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Use POST for :{route['verb']}")
        if route["metadata"]:
            request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=[SIGNATURE_DEF_FIELD])
            request.model_spec.CopyFrom(self._model_spec(route))
            response = handler.get_model_metadata(request)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_map)
            return {"model_spec": {"name": response.model_spec.name, "signature_name": "",
                                   "version": str(response.model_spec.version.value)},
                    "metadata": {SIGNATURE_DEF_FIELD: json_format.MessageToDict(
                        signature_map, preserving_proto_field_name=True)}}
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.CopyFrom(self._model_spec(route))
        response = handler.get_model_status(request)
        states = get_model_status_pb2.ModelVersionStatus.State
        return {"model_version_status": [
            {"version": str(status.version), "state": states.Name(status.state),
             "status": {"error_code": GRPC_CODE_BY_NUMBER.get(status.status.error_code,
                                                               grpc.StatusCode.UNKNOWN).name,
                        "error_message": status.status.error_message}}
            for status in response.model_version_status]}

    def _read_json(self) -> dict:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True  # the body's end is unknown: this connection cannot carry another request
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "POST needs a valid Content-Length")
        if length > self.server.max_body_bytes:
            self.close_connection = True  # the body is left unread
            raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"request body of {length} bytes exceeds this server's maximum of "
                               f"{self.server.max_body_bytes}")
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"request body is not JSON: {error}") from error
        if not isinstance(body, dict):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "request body must be a JSON object")
        return body

    def _post(self, route: re.Match, body: dict) -> dict:
        if route["verb"] not in ("predict", "classify"):
            raise ServingError(grpc.StatusCode.NOT_FOUND if route["verb"] is None else grpc.StatusCode.UNIMPLEMENTED,
                               f"POST {self.path}: supported are :predict and :classify")
        signature_name = body.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "'signature_name' must be a string")
        handler = self.server.request_handler
        servable = handler.versions.resolve(self._model_spec(route))
        if route["verb"] == "classify":
            request = classification_pb2.ClassificationRequest()
            request.model_spec.CopyFrom(self._model_spec(route, signature_name))
            examples = body.get("examples")
            if not isinstance(examples, list):
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "'examples' must be a list of feature objects")
            context = body.get("context")
            target = (request.input.example_list_with_context if context is not None
                      else request.input.example_list)
            if context is not None:
                target.context.CopyFrom(_example_from_json(context))
            target.examples.extend(_example_from_json(example) for example in examples)
            response = classify_on(servable, request, max_batch_size=handler.max_batch_size)
            return {"results": [[[entry.label, entry.score] for entry in classifications.classes]
                                for classifications in response.result.classifications]}
        signature = find_signature(servable, signature_name)
        inputs, row_format = _rest_predict_inputs(body, signature)
        outputs = run_signature(signature, inputs, max_batch_size=handler.max_batch_size)
        values = {name: _json_value(name, array.tolist()) for name, array in outputs.items()}
        if not row_format:
            return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
        if len(values) == 1:
            return {"predictions": next(iter(values.values()))}
        batch = {len(value) for value in values.values() if isinstance(value, list)}
        if len(batch) != 1:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "outputs have different batch sizes; use the columnar 'inputs' format")
        return {"predictions": [{name: value[row] for name, value in values.items()} for row in range(batch.pop())]}
