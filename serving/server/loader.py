"""Loading a model's versions from its base path: SavedModels, warmup replay and the 'latest' version policy.

ModelVersions polls the base path and swaps in the highest version once it has loaded and replayed its
warmup requests; a version that fails keeps the previous one served.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2, prediction_log_pb2

from emopy.serving import layout
from emopy.serving.server.servable import ServableVersion, ServingError, Signature, VersionStatus
from emopy.serving.server.signatures import classify_on, predict_on

logger = logging.getLogger(__name__)

SERVE_TAG = "serve"
INIT_OP_SIGNATURE_KEY = "__saved_model_init_op"
MAX_WARMUP_RECORDS = 1000  # TF Serving replays at most this many records


def list_versions(base_path: Path) -> dict[int, Path]:
    """Version folders under the base path that hold a SavedModel, by version number.

    Like TF Serving, only folder names that are non-negative integers are versions; anything else in the
    base path (a models.config, batching parameters, an export's temporary folder) is ignored. A version
    folder without saved_model.pb yet is still being written and is left for a later poll.
    """
    return {version: base_path / str(version) for version in layout.versions(base_path)}


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
    saved_model = saved_model_pb2.SavedModel.FromString((saved_model_dir / layout.SAVED_MODEL_FILE).read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ValueError(f"{saved_model_dir} has no MetaGraphDef tagged {SERVE_TAG!r}, which TF Serving loads")


def load_servable(model_name: str, version: int, path: Path) -> ServableVersion:
    """Loads one version folder as TF Serving does: its MetaGraph tagged 'serve' into a Session of its own, in which
    each SignatureDef runs by its tensor names (Session::Run).

    Not tf.saved_model.load's eager signatures: in TensorFlow 2.21, every eager call that fails (bytes that are no
    image, an image over the pixel limit) leaks its output list and some native memory in TFE_Py_Execute, about
    0.4-0.9 KB a refused request, so a client sending garbage would grow the server without bound.
    """
    meta_graph = _serve_meta_graph(path)
    session = tf.compat.v1.Session(graph=tf.Graph())
    # The v1 loader logs that it is deprecated: it is what TF Serving's own loader is, and the console stays quiet.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        tf.compat.v1.saved_model.loader.load(session, [SERVE_TAG], str(path))
    finally:
        tf_logger.setLevel(level)
    signatures = {
        name: Signature(
            name=name,
            method_name=signature_def.method_name,
            inputs={key: _tensor_spec(info) for key, info in signature_def.inputs.items()},
            outputs={key: _tensor_spec(info) for key, info in signature_def.outputs.items()},
            function=_session_call(session, signature_def),
        )
        # The init op's entry is not a callable signature (TF Serving skips it too), but it stays in the metadata.
        for name, signature_def in meta_graph.signature_def.items() if name != INIT_OP_SIGNATURE_KEY
    }
    return ServableVersion(model_name=model_name, version=version, path=path, meta_graph=meta_graph,
                           signatures=signatures, session=session)


def _session_call(session: tf.compat.v1.Session,
                  signature_def: meta_graph_pb2.SignatureDef) -> Callable[..., dict[str, np.ndarray]]:
    """The signature as a function of numpy inputs by key, returning numpy outputs by key."""
    feeds = {key: info.name for key, info in signature_def.inputs.items()}
    fetches = {key: info.name for key, info in signature_def.outputs.items()}

    def call(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return session.run(fetches, {feeds[key]: value for key, value in inputs.items()})

    return call


def warm_up(servable: ServableVersion, *, max_batch_size: int) -> int:
    """Replays the version's warmup requests as TF Serving does before serving it; returns how many.

    A failing record fails the load, as in TF Serving, so a broken warmup file is caught here too.
    """
    path = servable.path / layout.WARMUP_FILE
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
