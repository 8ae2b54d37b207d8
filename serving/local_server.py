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

It is not a production server: no batching scheduler, one model, no model config file, no monitoring.
"""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import logging
import re
import signal
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.example import example_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "emotion"
DEFAULT_SIGNATURE_NAME = "serving_default"
# TF Serving accepts up to 2 GiB; a development server only needs room for a large batch of face crops.
DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_BATCH_SIZE = 1024
DEFAULT_POLL_SECONDS = 1.0
DEFAULT_MAX_WORKERS = 8

PREDICT_METHOD_NAME = "tensorflow/serving/predict"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
CLASSIFY_OUTPUT_CLASSES, CLASSIFY_OUTPUT_SCORES = "classes", "scores"
SERVE_TAG = "serve"
SIGNATURE_DEF_FIELD = "signature_def"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving replays at most this many records

_GRPC_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
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


class ServingError(Exception):
    """A request that fails with a gRPC status code, as TF Serving would answer it."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True)
class Signature:
    """One callable SignatureDef: its TensorSpecs by input/output key, and the function that runs it."""

    name: str
    method_name: str
    inputs: Mapping[str, tf.TensorSpec]
    outputs: Mapping[str, tf.TensorSpec]
    function: Callable[..., Mapping[str, tf.Tensor]]


@dataclasses.dataclass(frozen=True)
class ServableVersion:
    """One loaded version of the model: what requests run against, swapped as a whole on reload."""

    model_name: str
    version: int
    path: Path
    meta_graph: meta_graph_pb2.MetaGraphDef  # signature_defs as saved, for GetModelMetadata
    signatures: Mapping[str, Signature]
    # The loaded SavedModel object: its signature functions refer to its variables, so it must stay alive.
    saved_model: Any


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """What GetModelStatus reports for one version."""

    version: int
    state: int  # get_model_status_pb2.ModelVersionStatus.State
    error_code: int = 0  # tensorflow.error.Code, numerically the gRPC code
    error_message: str = ""


class ServerPorts(NamedTuple):
    """Ports a started ModelServer listens on (rest is None without a REST endpoint)."""

    grpc: int
    rest: int | None


# --- Loading ---------------------------------------------------------------------------------------------


def list_versions(base_path: Path) -> dict[int, Path]:
    """Version folders under the base path that hold a SavedModel, by version number.

    Like TF Serving, only folder names that are non-negative integers are versions; anything else in the
    base path (a models.config, batching parameters, an export's temporary folder) is ignored. A version
    folder without saved_model.pb yet is still being written and is left for a later poll.
    """
    versions = {}
    try:
        entries = list(base_path.iterdir())
    except FileNotFoundError:
        return versions
    for entry in entries:
        if entry.name.isdigit() and entry.is_dir() and (entry / "saved_model.pb").is_file():
            versions[int(entry.name)] = entry
    return versions


def _folder_fingerprint(folder: Path) -> tuple:
    # Files with their sizes and times: a version that failed to load is retried only once this changes,
    # so a broken export is reported once, while one that was caught half-written is retried as it completes.
    files = []
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                stat = path.stat()
                files.append((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns))
        except FileNotFoundError:  # removed while we looked: the next poll sees the change
            continue
    return tuple(sorted(files))


def _tensor_spec(info: meta_graph_pb2.TensorInfo) -> tf.TensorSpec:
    shape = tf.TensorShape(None) if info.tensor_shape.unknown_rank else tf.TensorShape(
        [None if dim.size < 0 else dim.size for dim in info.tensor_shape.dim])
    return tf.TensorSpec(shape, tf.as_dtype(info.dtype))


def _serve_meta_graph(saved_model_dir: Path) -> meta_graph_pb2.MetaGraphDef:
    saved_model = saved_model_pb2.SavedModel.FromString((saved_model_dir / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ValueError(f"{saved_model_dir} has no MetaGraphDef tagged {SERVE_TAG!r}, which TF Serving loads")


def load_servable(model_name: str, version: int, path: Path) -> ServableVersion:
    """Loads one version folder (SavedModel tagged 'serve') with its signatures."""
    meta_graph = _serve_meta_graph(path)
    saved_model = tf.saved_model.load(str(path), tags=[SERVE_TAG])
    signatures = {}
    for name, signature_def in meta_graph.signature_def.items():
        # __saved_model_init_op and the like are not callable signatures, but they stay in the metadata.
        if name not in saved_model.signatures:
            continue
        signatures[name] = Signature(
            name=name,
            method_name=signature_def.method_name,
            inputs={key: _tensor_spec(info) for key, info in signature_def.inputs.items()},
            outputs={key: _tensor_spec(info) for key, info in signature_def.outputs.items()},
            function=saved_model.signatures[name],
        )
    return ServableVersion(model_name=model_name, version=version, path=path, meta_graph=meta_graph, signatures=signatures,
                           saved_model=saved_model)


# --- Running signatures ----------------------------------------------------------------------------------


def _shape_text(shape: tf.TensorShape | Sequence[int]) -> str:
    if isinstance(shape, tf.TensorShape) and shape.rank is None:
        return "<unknown rank>"
    return "[" + ", ".join("-1" if dim is None else str(dim) for dim in list(shape)) + "]"


def _op_error_summary(message: str) -> str:
    # TensorFlow's runtime errors carry graph locations and stack-trace placeholders; clients need the cause.
    noise = ("Graph execution error", "Detected at node", "<stack traces unavailable>")
    lines = [line.strip() for line in message.splitlines()]
    kept = [line for line in lines if line and not line.startswith(noise) and not line.startswith("[[")]
    summary = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", " ".join(kept))
    return re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", summary) or message


def find_signature(servable: ServableVersion, signature_name: str) -> Signature:
    name = signature_name or DEFAULT_SIGNATURE_NAME
    if name not in servable.signatures:
        raise ServingError(grpc.StatusCode.NOT_FOUND,
                           f"Serving signature name: \"{name}\" not found in signature def. "
                           f"Signatures of version {servable.version}: {sorted(servable.signatures)}")
    return servable.signatures[name]


def check_inputs(signature: Signature, inputs: Mapping[str, np.ndarray], *, max_batch_size: int) -> None:
    """Names, shapes and batch sizes against the signature (dtypes are checked on conversion); raises ServingError."""
    missing = sorted(set(signature.inputs) - set(inputs))
    extra = sorted(set(inputs) - set(signature.inputs))
    if missing or extra:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"inputs do not match signature '{signature.name}' "
                           f"(expects {sorted(signature.inputs)}): missing {missing}, unexpected {extra}")
    batch_sizes = {}
    for name, array in inputs.items():
        spec = signature.inputs[name]
        if not spec.shape.is_compatible_with(array.shape):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{name}' has shape {_shape_text(array.shape)} but signature "
                               f"'{signature.name}' expects {_shape_text(spec.shape)}")
        if spec.shape.rank and spec.shape[0] is None:
            batch_sizes[name] = array.shape[0]
    if len(set(batch_sizes.values())) > 1:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"inputs of signature '{signature.name}' have different batch sizes: {batch_sizes}")
    if batch_sizes and max(batch_sizes.values()) > max_batch_size:
        raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f"batch of {max(batch_sizes.values())} exceeds this server's maximum of {max_batch_size}")


def run_signature(signature: Signature, inputs: Mapping[str, np.ndarray], *,
                  max_batch_size: int) -> dict[str, np.ndarray]:
    """Checks the inputs, runs the signature and returns its outputs as numpy arrays."""
    check_inputs(signature, inputs, max_batch_size=max_batch_size)
    tensors = {name: tf.constant(array, dtype=signature.inputs[name].dtype) for name, array in inputs.items()}
    try:
        outputs = signature.function(**tensors)
    except tf.errors.OpError as error:
        # E.g. bytes that are not an image fail in decode_image with InvalidArgument; keep the model's code.
        code = _GRPC_CODE_BY_NUMBER.get(error.error_code, grpc.StatusCode.UNKNOWN)
        raise ServingError(code, f"signature '{signature.name}' rejected its inputs "
                                 f"({', '.join(sorted(inputs))}): {_op_error_summary(error.message)}") from error
    except (TypeError, ValueError) as error:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"signature '{signature.name}' cannot take these inputs: {error}") from error
    return {name: tensor.numpy() for name, tensor in outputs.items()}


def tensor_proto_to_array(name: str, proto, expected: tf.TensorSpec, signature_name: str) -> np.ndarray:
    """A request TensorProto as numpy, refusing a dtype other than the signature's before decoding it."""
    if proto.dtype != expected.dtype.as_datatype_enum:
        try:
            sent = tf.as_dtype(proto.dtype).name
        except TypeError:
            sent = f"<invalid dtype enum {proto.dtype}>"
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input '{name}' has dtype {sent} but signature '{signature_name}' "
                           f"expects {expected.dtype.name}")
    try:
        return tf.make_ndarray(proto)
    except Exception as error:  # malformed content (sizes that disagree with the shape, ...)
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}' is not a valid tensor: {error}") from error


def predict_on(servable: ServableVersion, request: predict_pb2.PredictRequest, *,
               max_batch_size: int) -> predict_pb2.PredictResponse:
    """TF Serving's Predict against one loaded version."""
    signature = find_signature(servable, request.model_spec.signature_name)
    unknown_outputs = sorted(set(request.output_filter) - set(signature.outputs))
    if unknown_outputs:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"output tensor alias not found in signature '{signature.name}': {unknown_outputs}; "
                           f"outputs are {sorted(signature.outputs)}")
    inputs = {}
    for name, proto in request.inputs.items():
        if name in signature.inputs:  # unexpected names are reported by check_inputs together with missing ones
            inputs[name] = tensor_proto_to_array(name, proto, signature.inputs[name], signature.name)
        else:
            inputs[name] = np.empty(0)
    outputs = run_signature(signature, inputs, max_batch_size=max_batch_size)
    wanted = list(request.output_filter) or list(outputs)
    response = predict_pb2.PredictResponse()
    _fill_model_spec(response.model_spec, servable, signature.name)
    for name in wanted:
        response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
    return response


def serialized_examples(model_input) -> list[bytes]:
    """tf.Example protos of a tensorflow.serving.Input, serialized; context features merged into each."""
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        examples = list(model_input.example_list.examples)
    elif kind == "example_list_with_context":
        context = model_input.example_list_with_context.context
        examples = []
        for example in model_input.example_list_with_context.examples:
            merged = example_pb2.Example()
            merged.CopyFrom(context)
            for key, feature in example.features.feature.items():  # the example's own value wins
                merged.features.feature[key].CopyFrom(feature)
            examples.append(merged)
    else:
        examples = []
    if not examples:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Input is empty: no examples to classify")
    return [example.SerializeToString() for example in examples]


def classify_on(servable: ServableVersion, request: classification_pb2.ClassificationRequest, *,
                max_batch_size: int) -> classification_pb2.ClassificationResponse:
    """TF Serving's Classify against one loaded version: serialized tf.Examples into a classify signature."""
    signature = find_signature(servable, request.model_spec.signature_name)
    if signature.method_name != CLASSIFY_METHOD_NAME:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"Expected classification signature method_name to be {CLASSIFY_METHOD_NAME}. "
                           f"Was: {signature.method_name} (signature '{signature.name}')")
    if len(signature.inputs) != 1:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"classification signature '{signature.name}' must have exactly one input")
    (input_name,) = signature.inputs
    serialized = np.array(serialized_examples(request.input), dtype=object)
    outputs = run_signature(signature, {input_name: serialized}, max_batch_size=max_batch_size)
    classes, scores = outputs.get(CLASSIFY_OUTPUT_CLASSES), outputs.get(CLASSIFY_OUTPUT_SCORES)
    if classes is None and scores is None:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"classification signature '{signature.name}' has neither 'classes' nor 'scores' output")
    for output in (classes, scores):
        if output is not None and (output.ndim != 2 or output.shape[0] != len(serialized)):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"classification outputs must be [batch, classes]; got {list(output.shape)}")
    response = classification_pb2.ClassificationResponse()
    _fill_model_spec(response.model_spec, servable, signature.name)
    for row in range(len(serialized)):
        classifications = response.result.classifications.add()
        width = (classes if classes is not None else scores).shape[1]
        for column in range(width):
            entry = classifications.classes.add()
            if classes is not None:
                entry.label = classes[row, column].decode("utf-8", "replace")
            if scores is not None:
                entry.score = float(scores[row, column])
    return response


def metadata_of(servable: ServableVersion,
                request: get_model_metadata_pb2.GetModelMetadataRequest) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """TF Serving's GetModelMetadata: the SignatureDefMap, packed into an Any under 'signature_def'."""
    if not request.metadata_field:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           "GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {field} is not supported")
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    _fill_model_spec(response.model_spec, servable, "")
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature_def in servable.meta_graph.signature_def.items():
        signature_map.signature_def[name].CopyFrom(signature_def)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def _fill_model_spec(model_spec, servable: ServableVersion, signature_name: str) -> None:
    model_spec.name = servable.model_name
    model_spec.version.value = servable.version
    model_spec.signature_name = signature_name


def warm_up(servable: ServableVersion, *, max_batch_size: int) -> int:
    """Replays the version's warmup requests as TF Serving does before serving it; returns how many.

    A failing record fails the load, as in TF Serving, so a broken warmup file is caught here too.
    """
    path = servable.path / WARMUP_FILE
    if not path.is_file():
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        kind = log.WhichOneof("log_type")
        try:
            if kind == "predict_log":
                predict_on(servable, log.predict_log.request, max_batch_size=max_batch_size)
            elif kind == "classify_log":
                classify_on(servable, log.classify_log.request, max_batch_size=max_batch_size)
            else:
                raise ServingError(grpc.StatusCode.UNIMPLEMENTED, f"warmup records of type {kind} are not supported")
        except ServingError as error:
            raise ValueError(f"warmup request {count} in {path} failed: {error}") from error
        count += 1
    return count


# --- Versions --------------------------------------------------------------------------------------------


class ModelVersions:
    """The served version of one model, kept up to date with its base path (TF Serving's 'latest' policy)."""

    def __init__(self, model_name: str, base_path: Path, *, max_batch_size: int):
        self.model_name = model_name
        self.base_path = Path(base_path)
        self.max_batch_size = max_batch_size
        self._lock = threading.Lock()
        self._served: ServableVersion | None = None
        self._statuses: dict[int, VersionStatus] = {}
        self._failed_fingerprints: dict[int, tuple] = {}
        # Polls run on the poller thread and, at start, on the caller's; one at a time.
        self._poll_lock = threading.Lock()

    @property
    def served(self) -> ServableVersion | None:
        with self._lock:
            return self._served

    def statuses(self) -> list[VersionStatus]:
        with self._lock:
            return sorted(self._statuses.values(), key=lambda status: -status.version)

    def poll(self) -> None:
        """Loads the highest version on disk if it is not the one served; keeps the old one on failure."""
        with self._poll_lock:
            versions = list_versions(self.base_path)
            served = self.served
            if not versions:
                if served is not None and not served.path.exists():
                    self._swap(None, unloaded=served)
                return
            aspired = max(versions)
            if served is not None and served.version == aspired:
                return
            fingerprint = _folder_fingerprint(versions[aspired])
            if self._failed_fingerprints.get(aspired) == fingerprint:
                return
            with self._lock:
                self._statuses[aspired] = VersionStatus(aspired, get_model_status_pb2.ModelVersionStatus.LOADING)
            try:
                servable = load_servable(self.model_name, aspired, versions[aspired])
                warmed = warm_up(servable, max_batch_size=self.max_batch_size)
            except Exception as error:  # any broken export: report it, keep serving what we have
                self._failed_fingerprints[aspired] = fingerprint
                code = error.error_code if isinstance(error, tf.errors.OpError) else grpc.StatusCode.UNKNOWN.value[0]
                with self._lock:
                    self._statuses[aspired] = VersionStatus(aspired, get_model_status_pb2.ModelVersionStatus.END,
                                                            code, f"{type(error).__name__}: {error}")
                still = f"still serving version {served.version}" if served else "no version served"
                logger.error("model %s: version %d at %s failed to load (%s): %s: %s", self.model_name, aspired,
                             versions[aspired], still, type(error).__name__, error)
                return
            self._failed_fingerprints.pop(aspired, None)
            self._swap(servable, unloaded=served)
            logger.info("model %s: serving version %d from %s (%d warmup requests)", self.model_name, aspired,
                        versions[aspired], warmed)

    def _swap(self, servable: ServableVersion | None, *, unloaded: ServableVersion | None) -> None:
        # Requests in flight keep their reference to the old version and finish on it.
        with self._lock:
            self._served = servable
            if servable is not None:
                self._statuses[servable.version] = VersionStatus(
                    servable.version, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
            if unloaded is not None and (servable is None or unloaded.version != servable.version):
                self._statuses[unloaded.version] = VersionStatus(
                    unloaded.version, get_model_status_pb2.ModelVersionStatus.END)

    def resolve(self, model_spec) -> ServableVersion:
        """The version a request's ModelSpec names, or NOT_FOUND as TF Serving answers."""
        specific = model_spec.HasField("version")
        wanted = (f"Specific({model_spec.name}, {model_spec.version.value})" if specific
                  else f"Latest({model_spec.name})")
        if model_spec.version_label:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Unrecognized servable version label: {model_spec.version_label} "
                               "(this server has no version labels)")
        served = self.served
        if model_spec.name != self.model_name or served is None or (
                specific and model_spec.version.value != served.version):
            available = f"; serving {self.model_name} version {served.version}" if served else ""
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {wanted}{available}")
        return served


# --- gRPC ------------------------------------------------------------------------------------------------


class RequestHandler:
    """TF Serving's request semantics on protos, shared by the gRPC services and the REST front end."""

    def __init__(self, versions: ModelVersions, *, max_batch_size: int):
        self.versions = versions
        self.max_batch_size = max_batch_size

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        return predict_on(self.versions.resolve(request.model_spec), request, max_batch_size=self.max_batch_size)

    def classify(self, request: classification_pb2.ClassificationRequest) -> classification_pb2.ClassificationResponse:
        return classify_on(self.versions.resolve(request.model_spec), request, max_batch_size=self.max_batch_size)

    def get_model_metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest
                           ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return metadata_of(self.versions.resolve(request.model_spec), request)

    def get_model_status(self, request: get_model_status_pb2.GetModelStatusRequest
                         ) -> get_model_status_pb2.GetModelStatusResponse:
        name = request.model_spec.name
        statuses = self.versions.statuses() if name == self.versions.model_name else []
        if request.model_spec.HasField("version"):
            statuses = [status for status in statuses if status.version == request.model_spec.version.value]
            if not statuses:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find version {request.model_spec.version.value} of model {name}")
        if not statuses:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in statuses:
            entry = response.model_version_status.add(version=status.version, state=status.state)
            entry.status.error_code = status.error_code
            entry.status.error_message = status.error_message
        return response


def _answer(context: grpc.ServicerContext, method: str, handle: Callable[[], Any]) -> Any:
    try:
        return handle()
    except ServingError as error:
        failure = error
    except Exception as error:  # a bug must cost one request, not the server
        logger.exception("%s failed", method)
        failure = ServingError(grpc.StatusCode.INTERNAL, f"{method}: {type(error).__name__}: {error}")
    context.abort(failure.code, failure.message)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, handler: RequestHandler):
        self.handler = handler

    def Predict(self, request, context):
        return _answer(context, "Predict", lambda: self.handler.predict(request))

    def Classify(self, request, context):
        return _answer(context, "Classify", lambda: self.handler.classify(request))

    def GetModelMetadata(self, request, context):
        return _answer(context, "GetModelMetadata", lambda: self.handler.get_model_metadata(request))

    def Regress(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Regress is not supported by emopy's local server")

    def MultiInference(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not supported by emopy's local server")


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, handler: RequestHandler):
        self.handler = handler

    def GetModelStatus(self, request, context):
        return _answer(context, "GetModelStatus", lambda: self.handler.get_model_status(request))

    def HandleReloadConfigRequest(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "HandleReloadConfigRequest is not supported: this server serves one model from one base path")


# --- REST ------------------------------------------------------------------------------------------------


_REST_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                        r"(?:(?P<metadata>/metadata)|:(?P<verb>[a-z]+))?/?$")


def _decode_b64(value: Any) -> Any:
    # TF Serving's JSON: binary values are {"b64": "..."}; other strings are UTF-8 text.
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_b64(item) for item in value]
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
            columns = {key: [_decode_b64(item[key]) for item in instances] for key in keys}
        elif only_input is not None:
            columns = {only_input: [_decode_b64(item) for item in instances]}
        else:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"signature '{signature.name}' has several inputs; instances must be objects naming them")
        row_format = True
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and set(inputs) != {"b64"}:
            columns = {key: _decode_b64(value) for key, value in inputs.items()}
        elif only_input is not None:
            columns = {only_input: _decode_b64(inputs)}
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
        values = _decode_b64(value if isinstance(value, list) else [value])
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


class _RestServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: RequestHandler, max_body_bytes: int):
        super().__init__(address, _RestRequestHandler)
        self.request_handler = handler
        self.max_body_bytes = max_body_bytes


class _RestRequestHandler(http.server.BaseHTTPRequestHandler):
    server: _RestServer
    protocol_version = "HTTP/1.1"  # keep-alive, as clients of TF Serving's REST API expect

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("REST %s", format % args)

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
             "status": {"error_code": _GRPC_CODE_BY_NUMBER.get(status.status.error_code,
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


# --- Server ----------------------------------------------------------------------------------------------


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ModelServer:
    """One model served over gRPC (and optionally REST) from a base path of numeric version folders.

    In-process use (tests, benchmarks)::

        with ModelServer(base_path, port=0) as server:
            channel = grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}")

    Port 0 picks a free port; `start()` returns the bound ports. `start()` loads the highest version
    already on disk before it returns, so the first request finds it; an empty base path is served as soon
    as a version appears, a missing one is a FileNotFoundError. A port in use is an OSError.
    """

    def __init__(self, model_base_path: str | Path, model_name: str = DEFAULT_MODEL_NAME, *,
                 host: str = "127.0.0.1", port: int = 8500, rest_port: int | None = None,
                 poll_seconds: float = DEFAULT_POLL_SECONDS, max_workers: int = DEFAULT_MAX_WORKERS,
                 max_receive_message_bytes: int = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
                 max_batch_size: int = DEFAULT_MAX_BATCH_SIZE):
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
        self.versions = ModelVersions(model_name, self.model_base_path, max_batch_size=max_batch_size)
        self.handler = RequestHandler(self.versions, max_batch_size=max_batch_size)
        self.ports: ServerPorts | None = None
        self._grpc_server: grpc.Server | None = None
        self._rest_server: _RestServer | None = None
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
        self.versions.poll()
        options = [("grpc.max_receive_message_length", self.max_receive_message_bytes),
                   ("grpc.max_send_message_length", -1),
                   # gRPC lets several servers share a port by default; a port in use should be an error.
                   ("grpc.so_reuseport", 0)]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.max_workers,
                                                        thread_name_prefix="emopy-grpc"), options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(self.handler), server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self.handler), server)
        try:
            grpc_port = server.add_insecure_port(_host_port(self.host, self.port))
        except RuntimeError as error:
            raise OSError(f"cannot listen for gRPC on {_host_port(self.host, self.port)}: {error}") from error
        if grpc_port == 0:
            raise OSError(f"cannot listen for gRPC on {_host_port(self.host, self.port)}")
        server.start()
        self._grpc_server = server
        self._stopping.clear()
        rest_port = None
        if self.rest_port is not None:
            try:
                self._rest_server = _RestServer((self.host, self.rest_port), self.handler,
                                                self.max_receive_message_bytes)
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
          max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> None:
    """Serves until SIGINT or SIGTERM (`emopy serve`); prints one line saying where it listens.

    Must run on the main thread (signal handlers).
    """
    server = ModelServer(model_base_path, model_name, host=host, port=port, rest_port=rest_port,
                         poll_seconds=poll_seconds, max_workers=max_workers,
                         max_receive_message_bytes=max_receive_message_bytes, max_batch_size=max_batch_size)
    stop_requested = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop_requested.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        ports = server.start()
        version = server.served_version
        where = f"gRPC on {_host_port(host, ports.grpc)}"
        if ports.rest is not None:
            where += f", REST on http://{_host_port(host, ports.rest)}/v1/models/{model_name}"
        state = f"version {version}" if version is not None else "no version yet (waiting for one)"
        print(f"Serving model '{model_name}' from {Path(model_base_path).resolve()} ({state}): {where}", flush=True)
        while not stop_requested.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
