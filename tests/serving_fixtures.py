"""Tiny SavedModels in the export layout TF Serving loads, and real face crops, for the serving tests.

`write_test_model` writes `BASE/<version>/` with the same signatures, input names, dtypes, shapes, assets
and warmup file as `serving/export.py`, but a fixed linear layer instead of a trained network, so tests
build one in well under a second and know exactly what it computes.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from emopy_tfds import faces

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CROP_SIZE = 48
NUM_LANDMARKS = 68
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"


class _LinearEmotionModel(tf.Module):
    """softmax(pixels @ W + landmarks @ V + bias): deterministic weights, the export's signatures."""

    def __init__(self, *, landmarks: bool, bias: float, labels_path: str, face_spec_path: str):
        super().__init__()
        rng = np.random.default_rng(0)
        num_classes = len(LABELS)
        self.uses_landmarks = landmarks
        self.pixel_weights = tf.Variable(rng.normal(0, 0.05, (CROP_SIZE * CROP_SIZE, num_classes)), dtype=tf.float32)
        self.landmark_weights = tf.Variable(rng.normal(0, 0.01, (NUM_LANDMARKS * 2, num_classes)), dtype=tf.float32)
        # A bias that differs per class, so versions written with different `bias` predict differently.
        self.bias = tf.Variable(bias * np.linspace(-1.0, 1.0, num_classes), dtype=tf.float32)
        self.labels = tf.constant(LABELS)
        # Assets are copied into the SavedModel's assets/ folder, as the real export does.
        self.labels_asset = tf.saved_model.Asset(labels_path)
        self.face_spec_asset = tf.saved_model.Asset(face_spec_path)

    def scores(self, image: tf.Tensor, landmarks: tf.Tensor | None) -> dict[str, tf.Tensor]:
        flat = tf.reshape(tf.cast(image, tf.float32) / 255.0, [-1, CROP_SIZE * CROP_SIZE])
        logits = tf.matmul(flat, self.pixel_weights) + self.bias
        if landmarks is not None:
            logits += tf.matmul(tf.reshape(landmarks, [-1, NUM_LANDMARKS * 2]) / CROP_SIZE, self.landmark_weights)
        probabilities = tf.nn.softmax(logits)
        class_ids = tf.argmax(probabilities, axis=1)
        return {"probabilities": probabilities, "classes": tf.gather(self.labels, class_ids), "class_ids": class_ids}

    def decode(self, image_bytes: tf.Tensor) -> tf.Tensor:
        def one(encoded: tf.Tensor) -> tf.Tensor:
            image = tf.io.decode_image(encoded, channels=1, expand_animations=False)
            return tf.cast(tf.round(tf.image.resize(image, [CROP_SIZE, CROP_SIZE])), tf.uint8)

        return tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([CROP_SIZE, CROP_SIZE, 1], tf.uint8))

    def classify(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        features = {"image_bytes": tf.io.FixedLenFeature([], tf.string)}
        if self.uses_landmarks:
            features["landmarks"] = tf.io.FixedLenFeature([NUM_LANDMARKS * 2], tf.float32)
        examples = tf.io.parse_example(serialized, features)
        landmarks = tf.reshape(examples["landmarks"], [-1, NUM_LANDMARKS, 2]) if self.uses_landmarks else None
        probabilities = self.scores(self.decode(examples["image_bytes"]), landmarks)["probabilities"]
        classes = tf.tile(self.labels[tf.newaxis, :], [tf.shape(probabilities)[0], 1])
        return {"classes": classes, "scores": probabilities}

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
        pixels_spec = tf.TensorSpec([None, CROP_SIZE, CROP_SIZE, 1], tf.uint8, name="image")
        landmarks_spec = tf.TensorSpec([None, NUM_LANDMARKS, 2], tf.float32, name="landmarks")
        serialized_spec = tf.TensorSpec([None], tf.string, name="inputs")
        if self.uses_landmarks:
            serving_default = tf.function(lambda image_bytes, landmarks: self.scores(self.decode(image_bytes), landmarks))
            pixels = tf.function(lambda image, landmarks: self.scores(image, landmarks))
            concrete = {
                "serving_default": serving_default.get_concrete_function(image_bytes=bytes_spec, landmarks=landmarks_spec),
                "pixels": pixels.get_concrete_function(image=pixels_spec, landmarks=landmarks_spec),
            }
        else:
            serving_default = tf.function(lambda image_bytes: self.scores(self.decode(image_bytes), None))
            pixels = tf.function(lambda image: self.scores(image, None))
            concrete = {
                "serving_default": serving_default.get_concrete_function(image_bytes=bytes_spec),
                "pixels": pixels.get_concrete_function(image=pixels_spec),
            }
        concrete["classify"] = tf.function(lambda inputs: self.classify(inputs)).get_concrete_function(inputs=serialized_spec)
        return concrete


def set_signature_method_name(saved_model_dir: Path, signature_name: str, method_name: str) -> None:
    """Rewrites one SignatureDef's method_name in saved_model.pb (tf.saved_model.save always writes 'predict')."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = saved_model_dir / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    saved_model.meta_graphs[0].signature_def[signature_name].method_name = method_name
    path.write_bytes(saved_model.SerializeToString())


def face_crop(size: int = CROP_SIZE, *, shift: int = 0) -> np.ndarray:
    """A real face: the astronaut's face (scikit-image, NASA, public domain) as a uint8 RGB square."""
    from skimage import data

    top, left = 30 + shift, 160 + shift  # her face sits in rows ~30..230, columns ~160..330
    crop = data.astronaut()[top:top + 180, left:left + 180]
    import cv2

    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def face_png(size: int = CROP_SIZE, *, shift: int = 0) -> bytes:
    """`face_crop` encoded as PNG, as a client sends it."""
    return faces.encode_png(face_crop(size, shift=shift))


def face_landmarks(seed: int = 0, size: int = CROP_SIZE) -> np.ndarray:
    """68 plausible (x, y) points inside a crop of side `size`, float32 (68, 2)."""
    return np.random.default_rng(seed).uniform(0.1 * size, 0.9 * size, (NUM_LANDMARKS, 2)).astype(np.float32)


def _write_warmup_requests(version_dir: Path, model_name: str, *, landmarks: bool) -> None:
    # What TF Serving replays before it makes a version available: PredictionLog records in a TFRecord file.
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "serving_default"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([face_png()], dtype=tf.string, shape=[1]))
    if landmarks:
        request.inputs["landmarks"].CopyFrom(tf.make_tensor_proto(face_landmarks()[np.newaxis]))
    record = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    extra = version_dir / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / "tf_serving_warmup_requests")) as writer:
        writer.write(record.SerializeToString())


def write_test_model(base: Path, version: int, *, landmarks: bool = False, bias: float = 0.0,
                     model_name: str = "emotion") -> Path:
    """Writes BASE/<version>/ like serving/export.py does and returns that folder.

    Written into a sibling temporary folder and renamed into place, as an export should be, so a server
    polling BASE never sees half of it.
    """
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base))
    asset_sources = Path(tempfile.mkdtemp(prefix=".assets-", dir=base))
    labels_path = asset_sources / "labels.txt"
    labels_path.write_text("\n".join(LABELS) + "\n")
    face_spec_path = asset_sources / "face_spec.json"
    face_spec_path.write_text(json.dumps(json.loads(faces.FaceSpec(crop_size=CROP_SIZE).to_json()), indent=2))

    model = _LinearEmotionModel(landmarks=landmarks, bias=bias, labels_path=str(labels_path),
                                face_spec_path=str(face_spec_path))
    tf.saved_model.save(model, str(staging), signatures=model.signatures())
    set_signature_method_name(staging, "classify", CLASSIFY_METHOD_NAME)
    _write_warmup_requests(staging, model_name, landmarks=landmarks)

    for source in asset_sources.iterdir():
        source.unlink()
    asset_sources.rmdir()
    target = base / str(version)
    staging.rename(target)
    return target
