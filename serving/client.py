"""Client for an emopy model behind TF Serving (or serving/local_server.py): face crops in, emotions out (or a
physiological model's windows in, states out: `predict_signals`).

Written in the style of TF Serving's own client examples: gRPC through `PredictionServiceStub` with
`tf.make_tensor_proto` by default, or the REST API (`rest=True`, standard library only), either over TLS with
`tls=ClientTls(...)`. Every call has a
deadline; calls that fail with UNAVAILABLE (server starting, restarting, or briefly overloaded) are retried
with exponential backoff; any other failure raises `ServingRequestError` at once.

    with EmotionClient("localhost:8500") as client:
        result = client.predict([crop_png_bytes, crop_array])   # crops cut by emopy_tfds.faces
        result["classes"], result["probabilities"]               # ['happy', 'sad'], float32 [2, K]
"""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Sequence, TypeVar, Union

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from emopy_tfds import faces
from emopy.serving import layout
from emopy.serving.layout import DEFAULT_MODEL_NAME, FACE_SPEC_SIGNATURE, PIXELS_SIGNATURE
from emopy.serving.tls import ClientTls, explain_mismatch

Crop = Union[bytes, bytearray, memoryview, np.ndarray]
Result = TypeVar("Result")

NUM_LANDMARKS = 68
DEFAULT_SIGNATURE_NAME = "serving_default"
CLASSIFY_SIGNATURE_NAME = "classify"

_CHANNEL_OPTIONS = [
    # The server enforces its own limits; the client should not refuse a large batch's answer.
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # gRPC waits 1 s (growing) before reconnecting after a refused connection; retries of a restarting
    # server should find it within their backoff instead.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
_GRPC_CODE_BY_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class ServingRequestError(grpc.RpcError):
    """A call the server refused or that could not complete, with its gRPC status code.

    Like a failed `grpc.Call`, `code()` and `details()` say why; REST errors are given the gRPC code of
    their HTTP status. It is a `grpc.RpcError`, so callers that catch those keep working.
    """

    def __init__(self, code: grpc.StatusCode, details: str, *, method: str, target: str):
        super().__init__(f"{method} on {target} failed with {code.name}: {details}")
        self._code = code
        self._details = details
        self.method = method
        self.target = target

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def encode_crop(crop: Crop) -> bytes:
    """Encoded image bytes as they are; a uint8 array (gray HxW, or RGB HxWx3, or HxWx1) as PNG."""
    if isinstance(crop, (bytes, bytearray, memoryview)):
        return bytes(crop)
    if isinstance(crop, np.ndarray):
        if crop.dtype != np.uint8:
            raise TypeError(f"face crop arrays must be uint8, got {crop.dtype}; encode other images yourself")
        if crop.ndim not in (2, 3) or (crop.ndim == 3 and crop.shape[2] not in (1, 3)):
            raise ValueError(f"a face crop array is HxW, HxWx1 or HxWx3 (RGB), got shape {crop.shape}")
        return faces.encode_png(crop)
    raise TypeError(f"a face crop is encoded image bytes or a uint8 numpy array, got {type(crop).__name__}")


def _as_batch(crops: Crop | Sequence[Crop]) -> list[Crop]:
    if isinstance(crops, (bytes, bytearray, memoryview)):
        return [crops]
    if isinstance(crops, np.ndarray):
        # HxW and HxWxC are one crop; NxHxWxC is a batch of crops.
        return list(crops) if crops.ndim == 4 else [crops]
    crops = list(crops)
    if not crops:
        raise ValueError("no face crops to send")
    return crops


def _landmark_batch(landmarks: Any, batch_size: int) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float32)
    if points.shape == (NUM_LANDMARKS, 2):
        points = points[np.newaxis]
    if points.shape != (batch_size, NUM_LANDMARKS, 2):
        raise ValueError(f"landmarks must be [{NUM_LANDMARKS}, 2] for one crop or [{batch_size}, {NUM_LANDMARKS}, 2] "
                         f"for {batch_size} crops, got {list(points.shape)}")
    return points


def _example(encoded: bytes, landmarks: np.ndarray | None) -> example_pb2.Example:
    example = example_pb2.Example()
    example.features.feature["image_bytes"].bytes_list.value.append(encoded)
    if landmarks is not None:
        example.features.feature["landmarks"].float_list.value.extend(landmarks.reshape(-1).tolist())
    return example


def _text(value: Any) -> str:
    # String tensors come back as bytes over gRPC and as str over REST.
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _to_json(value: np.ndarray) -> Any:
    if value.dtype == object:
        return [{"b64": base64.b64encode(item).decode("ascii")} for item in value.tolist()]
    return value.tolist()


def _channel(target: str, tls: ClientTls | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
    return grpc.secure_channel(target, tls.channel_credentials(), options=_CHANNEL_OPTIONS)


def _signature_summary(signature_map: get_model_metadata_pb2.SignatureDefMap) -> dict[str, dict]:
    def tensors(infos) -> dict[str, dict]:
        return {name: {"dtype": tf.as_dtype(info.dtype).name,
                       "shape": None if info.tensor_shape.unknown_rank else
                       [None if dim.size < 0 else dim.size for dim in info.tensor_shape.dim]}
                for name, info in sorted(infos.items())}

    # __saved_model_init_op and similar entries are not signatures a client can call.
    return {name: {"method_name": signature.method_name, "inputs": tensors(signature.inputs),
                   "outputs": tensors(signature.outputs)}
            for name, signature in sorted(signature_map.signature_def.items()) if not name.startswith("__")}


class EmotionClient:
    """Predictions from a served emopy model, over gRPC (default) or TF Serving's REST API (`rest=True`).

    target: "host:port" of the gRPC port, or of the REST port with rest=True.
    timeout: deadline of every call in seconds (per attempt).
    retries: further attempts after a call fails with UNAVAILABLE, waiting backoff_seconds, then twice as
      long, and so on. Other failures are not retried.
    version: ask for this model version instead of the latest one the server has.
    tls: talk TLS (https over REST), verifying the server with `tls.ca_cert` (default: the system's roots) and
      showing `tls.client_cert` to a server that asks; its files are read here, and errors name them. A server
      whose certificate is not trusted, or one without TLS, fails every call with UNAVAILABLE.
    """

    def __init__(self, target: str, model_name: str = DEFAULT_MODEL_NAME, *, timeout: float = 10.0, retries: int = 3,
                 rest: bool = False, signature_name: str = DEFAULT_SIGNATURE_NAME, backoff_seconds: float = 0.2,
                 version: int | None = None, tls: ClientTls | None = None):
        if timeout <= 0 or retries < 0 or backoff_seconds < 0:
            raise ValueError("timeout must be positive, retries and backoff_seconds not negative")
        self.target = target
        self.model_name = model_name
        self.timeout = timeout
        self.retries = retries
        self.rest = rest
        self.signature_name = signature_name
        self.backoff_seconds = backoff_seconds
        self.version = version
        self.tls = tls
        self._ssl_context = tls.ssl_context() if rest and tls is not None else None
        self._channel = None if rest else _channel(target, tls)
        self._prediction = None if rest else prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = None if rest else model_service_pb2_grpc.ModelServiceStub(self._channel)

    # --- Public API ---

    def predict(self, crops: Crop | Sequence[Crop], landmarks: Any = None) -> dict[str, Any]:
        """Emotions of face crops through the bytes signature (`signature_name`, default serving_default).

        crops: one crop or a list of them; a crop is encoded image bytes or a uint8 array (HxW gray,
          HxWx3 RGB), sent as PNG. A 4-D array is a batch. Crops are what emopy_tfds.faces cuts.
        landmarks: for landmark models, [68, 2] for one crop or [B, 68, 2], in each crop's pixels.
        Returns a batch even for one crop: {"probabilities": float32 [B, K], "classes": list of B label
        names, "class_ids": int64 [B], "model_version": the version that answered (None over REST, whose
        responses do not say)}.
        """
        batch = [encode_crop(crop) for crop in _as_batch(crops)]
        inputs = {"image_bytes": np.array(batch, dtype=object)}
        if landmarks is not None:
            inputs["landmarks"] = _landmark_batch(landmarks, len(batch))
        return self._predict(self.signature_name, inputs)

    def predict_pixels(self, images: np.ndarray, landmarks: Any = None) -> dict[str, Any]:
        """Like `predict`, with uint8 face crops [B, S, S, C] at the model's size (cropped with its face spec)
        instead of bytes."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise TypeError(f"face crops must be uint8 pixels, got {images.dtype}")
        inputs = {"image": images if images.ndim == 4 else images[np.newaxis]}
        if landmarks is not None:
            inputs["landmarks"] = _landmark_batch(landmarks, len(inputs["image"]))
        return self._predict(PIXELS_SIGNATURE, inputs)

    def classify(self, crops: Crop | Sequence[Crop], landmarks: Any = None) -> list[dict[str, float]]:
        """Scores of every class for each crop, {label: score}, through TF Serving's Classify API (tf.Examples)."""
        batch = [encode_crop(crop) for crop in _as_batch(crops)]
        points = None if landmarks is None else _landmark_batch(landmarks, len(batch))
        examples = [_example(encoded, None if points is None else points[row]) for row, encoded in enumerate(batch)]
        if self.rest:
            body = {"signature_name": CLASSIFY_SIGNATURE_NAME,
                    "examples": [self._json_example(example) for example in examples]}
            response = self._rest("Classify", "POST", self._rest_model_path() + ":classify", body)
            return [{label: float(score) for label, score in result} for result in response["results"]]
        request = classification_pb2.ClassificationRequest()
        self._fill_model_spec(request.model_spec, CLASSIFY_SIGNATURE_NAME)
        request.input.example_list.examples.extend(examples)
        response = self._grpc("Classify", self._prediction.Classify, request)
        return [{entry.label: entry.score for entry in classifications.classes}
                for classifications in response.result.classifications]

    def model_assets(self) -> tuple[faces.FaceSpec, list[str]]:
        """The served model's FaceSpec and class names, as its export's assets hold them, through its `face_spec`
        signature (a ServingRequestError NOT_FOUND for an export made before emopy wrote one)."""
        outputs, _ = self._predict_outputs(FACE_SPEC_SIGNATURE, {"request": np.array([b""], dtype=object)})
        face_spec = _text(np.asarray(outputs["face_spec"]).tolist()[0])
        return faces.FaceSpec.from_json(face_spec), [_text(name) for name in np.asarray(outputs["class_names"])[0]]

    def predict_signals(self, values: Any, input_name: str = "features") -> dict[str, Any]:
        """A physiological model's states for windows (serving/signal_export.py), through `signature_name`:
        `values` are float32 features [B, num_features] (NaN where undefined) for input_name "features", or
        resampled signals [B, window_samples, channels] for "signals", as emopy_tfds.wesad.wesad_windows computes
        them. Returns what `predict` does."""
        return self._predict(self.signature_name, {input_name: np.asarray(values, dtype=np.float32)})

    def signal_assets(self) -> layout.SignalAssets:
        """The served physiological model's class names, signal spec and input spec, as its export's assets hold
        them, through its `signal_spec` signature (NOT_FOUND for a face model)."""
        from emopy import models  # Keras: only a client of a physiological model needs its InputSpec

        outputs, _ = self._predict_outputs(layout.SIGNAL_SPEC_SIGNATURE, {"request": np.array([b""], dtype=object)})
        first = {name: _text(np.asarray(outputs[name]).tolist()[0]) for name in ("signal_spec", "input_spec")}
        return layout.SignalAssets([_text(name) for name in np.asarray(outputs["class_names"])[0]],
                                   json.loads(first["signal_spec"]), models.InputSpec.from_json(first["input_spec"]))

    def metadata(self) -> dict[str, dict]:
        """Signatures of the served version: {name: {"method_name", "inputs", "outputs"}}, tensors as
        {name: {"dtype": "float32", "shape": [None, 7]}} (None for a dimension of any size)."""
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if self.rest:
            response = self._rest("GetModelMetadata", "GET", self._rest_model_path() + "/metadata")
            json_format.ParseDict(response["metadata"]["signature_def"], signature_map, ignore_unknown_fields=True)
        else:
            request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
            self._fill_model_spec(request.model_spec, "")
            response = self._grpc("GetModelMetadata", self._prediction.GetModelMetadata, request)
            response.metadata["signature_def"].Unpack(signature_map)
        return _signature_summary(signature_map)

    def status(self) -> dict[int, str]:
        """State of each version the server knows, {version: "AVAILABLE" | "LOADING" | "END" | ...}."""
        if self.rest:
            response = self._rest("GetModelStatus", "GET", self._rest_model_path())
            return {int(entry["version"]): entry["state"] for entry in response["model_version_status"]}
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        if self.version is not None:
            request.model_spec.version.value = self.version
        response = self._grpc("GetModelStatus", self._models.GetModelStatus, request)
        states = get_model_status_pb2.ModelVersionStatus.State
        return {entry.version: states.Name(entry.state) for entry in response.model_version_status}

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __enter__(self) -> "EmotionClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # --- Transport ---

    def _predict(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
        outputs, version = self._predict_outputs(signature_name, inputs)
        return {"probabilities": np.asarray(outputs["probabilities"], dtype=np.float32),
                "classes": [_text(label) for label in np.asarray(outputs["classes"]).tolist()],
                "class_ids": np.asarray(outputs["class_ids"], dtype=np.int64),
                "model_version": version}

    def _predict_outputs(self, signature_name: str, inputs: dict[str, np.ndarray]
                         ) -> tuple[dict[str, Any], int | None]:
        """A Predict call's outputs as they come (arrays over gRPC, JSON values over REST) and the version that
        answered (None over REST)."""
        if self.rest:
            body = {"signature_name": signature_name, "inputs": {name: _to_json(value) for name, value in inputs.items()}}
            return self._rest("Predict", "POST", self._rest_model_path() + ":predict", body)["outputs"], None
        request = predict_pb2.PredictRequest()
        self._fill_model_spec(request.model_spec, signature_name)
        for name, value in inputs.items():
            dtype = tf.string if value.dtype == object else tf.as_dtype(value.dtype)
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype=dtype, shape=value.shape))
        response = self._grpc("Predict", self._prediction.Predict, request)
        return ({name: tf.make_ndarray(proto) for name, proto in response.outputs.items()},
                response.model_spec.version.value)

    def _fill_model_spec(self, model_spec, signature_name: str) -> None:
        model_spec.name = self.model_name
        model_spec.signature_name = signature_name
        if self.version is not None:
            model_spec.version.value = self.version

    def _with_retries(self, call: Callable[[], Result]) -> Result:
        delay = self.backoff_seconds
        for attempt in range(self.retries + 1):
            try:
                return call()
            except ServingRequestError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _grpc(self, method: str, stub_method: Callable[..., Result], request: Any) -> Result:
        if self._channel is None:
            raise RuntimeError("EmotionClient is closed")

        def call() -> Result:
            try:
                return stub_method(request, timeout=self.timeout)
            except grpc.RpcError as error:
                raise ServingRequestError(error.code(), explain_mismatch(error.details() or "", self.tls),
                                          method=method, target=self.target) from error

        return self._with_retries(call)

    def _rest_model_path(self) -> str:
        path = f"/v1/models/{self.model_name}"
        return path if self.version is None else f"{path}/versions/{self.version}"

    def _rest(self, method: str, http_method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode("utf-8")

        def call() -> dict:
            scheme = "http" if self.tls is None else "https"
            request = urllib.request.Request(f"{scheme}://{self.target}{path}", data=data, method=http_method,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl_context) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                try:
                    details = json.loads(error.read()).get("error", "")
                except (ValueError, AttributeError):
                    details = error.reason
                code = _GRPC_CODE_BY_HTTP_STATUS.get(error.code, grpc.StatusCode.UNKNOWN)
                raise ServingRequestError(code, f"HTTP {error.code}: {details}", method=method,
                                          target=self.target) from error
            except (socket.timeout, TimeoutError) as error:
                raise ServingRequestError(grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer within {self.timeout} s",
                                          method=method, target=self.target) from error
            except OSError as error:  # URLError, a connection reset, or TLS failing as the answer is read
                reason = error.reason if isinstance(error, urllib.error.URLError) else error
                if isinstance(reason, (socket.timeout, TimeoutError)):
                    raise ServingRequestError(grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer within {self.timeout} s",
                                              method=method, target=self.target) from error
                raise ServingRequestError(grpc.StatusCode.UNAVAILABLE, explain_mismatch(str(reason), self.tls),
                                          method=method, target=self.target) from error

        return self._with_retries(call)

    @staticmethod
    def _json_example(example: example_pb2.Example) -> dict[str, Any]:
        features = {}
        for key, feature in example.features.feature.items():
            if feature.HasField("bytes_list"):
                features[key] = [{"b64": base64.b64encode(value).decode("ascii")} for value in feature.bytes_list.value]
            else:
                # Floats must stay floats in JSON, or TF Serving reads whole numbers as int64 features.
                features[key] = [float(value) for value in feature.float_list.value]
        return features
