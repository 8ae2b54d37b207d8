"""`emopy export`: a trained run as a versioned SavedModel that TensorFlow Serving loads as it is.

It writes the layout serving/layout.py describes, plus BASE/batching_parameters.txt for tensorflow_model_server's
--enable_batching --batching_parameters_file. Both BASE files may hold other models and the user's edits: this
model's entry is merged into models.config, and batching parameters already there are kept.

Signatures (DESIGN.md, "Serving contract"):
  serving_default  image_bytes: string [batch] encoded face crops of any size (+ landmarks: float [batch, 68, 2],
                   in the pixels of the crop sent) -> probabilities [batch, K], classes [batch], class_ids [batch]
  pixels           image: uint8 [batch, S, S, C] face crops at the model's size, cropped with its face_spec.json
                   (+ landmarks in those pixels) -> the same outputs
  classify         inputs: serialized tf.Example [batch] with image_bytes (+ landmarks, 136 floats)
                   -> classes [batch, K], scores [batch, K]: what TF Serving's Classify API calls
  face_spec        request: string [batch], ignored -> face_spec [batch] (the FaceSpec's JSON), class_names
                   [batch, K]: what the assets say, for clients of a server, which cannot read them
Sequence models take [batch, T] bytes, [batch, T, S, S, C] pixels and [batch, T, 68, 2] landmarks, and have no
classify signature (a tf.Example has no natural place for a clip).

Every signature hands the Keras model what training fed it, uint8 crops and landmarks in crop pixels; the
model's own first layers scale the pixels and compute the landmark features (models.preprocessing).

Every signature that decodes images (serving_default, classify) first reads each image's size from its header and
refuses one over `max_image_pixels` (serving/pixel_limit.py), which assets/export.json records.
`emopy export --from-export BASE/N` (serving/reexport.py) writes these signatures around an older export's model.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2, model_pb2, predict_pb2, prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from emopy import models
from emopy_tfds import faces
from emopy_tfds.data import sample_photo
from emopy.models import test_time
from emopy.pipeline.run_dir import RunDir
from emopy.serving import layout, pixel_limit, provenance, tflite
from emopy.serving.layout import DEFAULT_MODEL_NAME

BATCHING_FILE = "batching_parameters.txt"

# tensorflow_model_server --enable_batching: batches of up to 32 inputs (faces, or a physiological model's windows),
# waiting at most 2 ms to fill one.
BATCHING_PARAMETERS = """\
max_batch_size { value: 32 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 4 }
"""


def _decode_crop(encoded: tf.Tensor, size: int, channels: int, max_pixels: int,
                 which: Callable[[], tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """One encoded crop -> uint8 [size, size, channels], and its original (height, width); one whose header declares
    more than max_pixels pixels is refused, naming it by which(), before it is decoded."""
    image = pixel_limit.decode_image(encoded, max_pixels, which)
    image.set_shape([None, None, 3])
    original = tf.cast(tf.shape(image)[:2], tf.float32)
    if channels == 1:
        # The same weights as OpenCV's RGB2GRAY, which made the training crops (faces.align_face).
        image = tf.image.rgb_to_grayscale(image)
    # Antialiased bilinear: area-like when shrinking, bilinear when enlarging, the identity at the model's size.
    pixels = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
    return tf.cast(tf.round(tf.clip_by_value(pixels, 0, 255)), tf.uint8), original


# Probabilities [batch(, T), K] of uint8 crops [batch(, T), S, S, C] and landmarks in their pixels (None for models
# without): what the signatures wrap, a Keras model's call (keras_probabilities) or an older export's `pixels`.
Probabilities = Callable[[tf.Tensor, "tf.Tensor | None"], tf.Tensor]


def keras_probabilities(model, spec: models.InputSpec) -> Probabilities:
    # A partial and a lambda are not tracked: ServingModule saves the model's weights, not the Keras model, whose
    # per-layer call traces no signature runs (40 % of saved_model.pb; more for ensembles).
    run = functools.partial(model, training=False)
    return lambda pixels, landmarks: run(models.named_inputs(spec, pixels, landmarks))


class ServingModule(tf.Module):
    """A model with its preprocessing and label names, as SavedModel signatures.

    probabilities: what the model computes (Probabilities); weights: the variables it reads, which are saved.
    max_pixels: the most pixels an image's header may declare in the signatures that decode images.
    """

    def __init__(self, probabilities: Probabilities, weights: Sequence[tf.Variable], spec: models.InputSpec,
                 class_names: list[str], face_spec: faces.FaceSpec, asset_dir: Path, max_pixels: int):
        super().__init__()
        self.weights = list(weights)
        self._probabilities = probabilities
        self.max_pixels = max_pixels
        self.spec = spec
        self.class_names = tf.constant(class_names)
        self.face_spec_json = tf.constant(face_spec.to_json())
        self.labels_asset = tf.saved_model.Asset(str(asset_dir / layout.LABELS_ASSET))
        self.face_spec_asset = tf.saved_model.Asset(str(asset_dir / layout.FACE_SPEC_ASSET))
        self.input_spec_asset = tf.saved_model.Asset(str(asset_dir / layout.INPUT_SPEC_ASSET))
        self.export_asset = tf.saved_model.Asset(str(asset_dir / layout.EXPORT_ASSET))
        time = (None,) if spec.is_sequence else ()
        image_shape = (None, *time, spec.image_size, spec.image_size, spec.channels)
        bytes_spec = tf.TensorSpec([None, *time], tf.string, name="image_bytes")
        pixels_spec = tf.TensorSpec(image_shape, tf.uint8, name="image")
        landmarks_spec = tf.TensorSpec([None, *time, spec.num_landmarks, 2], tf.float32, name="landmarks")
        if spec.uses_landmarks:
            # Landmark-only models take the crop too: its size says what the landmarks' pixels are.
            self.serve_bytes = tf.function(self._bytes_with_landmarks, input_signature=[bytes_spec, landmarks_spec])
            self.serve_pixels = tf.function(self._pixels_with_landmarks, input_signature=[pixels_spec, landmarks_spec])
        else:
            self.serve_bytes = tf.function(self._bytes, input_signature=[bytes_spec])
            self.serve_pixels = tf.function(self._pixels, input_signature=[pixels_spec])
        if not spec.is_sequence:
            self.classify = tf.function(self._classify, input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        self.serve_face_spec = tf.function(self._face_spec, input_signature=[tf.TensorSpec([None], tf.string,
                                                                                           name="request")])

    # --- preprocessing shared by every signature ---------------------------------------------------------

    def _decode(self, image_bytes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Encoded crops [batch(, T)] -> pixels [batch(, T), S, S, C] and each crop's (height, width)."""
        size, channels = self.spec.image_size, self.spec.channels
        flat = tf.reshape(image_bytes, [-1])
        leading = tf.shape(image_bytes)
        # One image at a time: a crop of 200 px costs little either way, but an image near the pixel limit costs
        # ~19 bytes a pixel while it is decoded, grayed and resized (1.5 GB at 9000x9000), and map_fn's default of
        # 10 at once would make a batch of them cost ten times that.
        pixels, originals = tf.map_fn(
            lambda item: _decode_crop(item[0], size, channels, self.max_pixels,
                                      lambda: pixel_limit.image_name(item[1], leading)),
            (flat, tf.range(tf.size(flat))), parallel_iterations=1,
            fn_output_signature=(tf.TensorSpec([size, size, channels], tf.uint8), tf.TensorSpec([2], tf.float32)))
        pixels = tf.reshape(pixels, tf.concat([leading, [size, size, channels]], 0))
        originals = tf.reshape(originals, tf.concat([leading, [2]], 0))
        return pixels, originals

    def _outputs(self, pixels: tf.Tensor, landmarks: tf.Tensor | None) -> dict[str, tf.Tensor]:
        probabilities = tf.cast(self._probabilities(pixels, landmarks), tf.float32)
        class_ids = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "classes": tf.gather(self.class_names, class_ids),
                "class_ids": class_ids}

    @staticmethod
    def _to_model_pixels(landmarks: tf.Tensor, originals: tf.Tensor, size: int) -> tf.Tensor:
        """Landmarks in the pixels of the crop sent -> in the pixels of the model's input (centres aligned)."""
        scale = size / originals[..., ::-1]  # (x, y) scale from (height, width)
        return faces.rescale_points(landmarks, scale[..., None, :])

    # --- signatures ------------------------------------------------------------------------------------

    def _bytes(self, image_bytes):
        pixels, _ = self._decode(image_bytes)
        return self._outputs(pixels, None)

    def _bytes_with_landmarks(self, image_bytes, landmarks):
        pixels, originals = self._decode(image_bytes)
        landmarks = self._to_model_pixels(landmarks, originals, self.spec.image_size)
        return self._outputs(pixels, landmarks)

    def _pixels(self, image):
        return self._outputs(image, None)

    def _pixels_with_landmarks(self, image, landmarks):
        return self._outputs(image, landmarks)

    def _face_spec(self, request):
        # A server does not hand out its assets, yet its clients must cut faces as training did. The request's
        # entries are ignored; there is one row per entry because TF Serving's batching splits every output.
        rows = tf.shape(request)[0]
        return {"face_spec": tf.fill([rows], self.face_spec_json),
                "class_names": tf.tile(self.class_names[None, :], [rows, 1])}

    def _classify(self, inputs):
        features = {"image_bytes": tf.io.FixedLenFeature([], tf.string)}
        if self.spec.uses_landmarks:
            features["landmarks"] = tf.io.FixedLenFeature([self.spec.num_landmarks * 2], tf.float32)
        parsed = tf.io.parse_example(inputs, features)
        if self.spec.uses_landmarks:
            points = tf.reshape(parsed["landmarks"], [-1, self.spec.num_landmarks, 2])
            outputs = self._bytes_with_landmarks(parsed["image_bytes"], points)
        else:
            outputs = self._bytes(parsed["image_bytes"])
        scores = outputs["probabilities"]
        classes = tf.tile(self.class_names[None, :], [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}


def _set_classify_method(export_dir: Path) -> None:
    """TF2's saver marks every signature as Predict; TF Serving's Classify API wants its own method name."""
    path = export_dir / layout.SAVED_MODEL_FILE
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if "classify" in meta_graph.signature_def:
            meta_graph.signature_def["classify"].method_name = layout.CLASSIFY_METHOD
    path.write_bytes(saved_model.SerializeToString())


def sample_face(face_spec: faces.FaceSpec) -> faces.AlignedFace:
    """The shipped sample photo's face, cropped as the model expects (the run's FaceSpec has the model's
    input size): what warmup requests send."""
    (face, aligned), *_ = faces.preprocess(sample_photo(), face_spec)
    return aligned


def warmup_records(spec: models.InputSpec, face: faces.AlignedFace, model_name: str) -> list[bytes]:
    """Serialized PredictionLog records, one per signature, that TF Serving replays before serving."""
    length = (spec.sequence_length,) if spec.is_sequence else ()
    encoded = faces.encode_png(face.image)
    image_bytes = np.full((1, *length), encoded, dtype=object)
    pixels = np.broadcast_to(face.image, (1, *length, *face.image.shape)).copy()
    landmarks = np.broadcast_to(face.landmarks, (1, *length, *face.landmarks.shape)).astype(np.float32)
    records = []
    for signature, inputs in (
        ("serving_default", {"image_bytes": image_bytes, "landmarks": landmarks}),
        (layout.PIXELS_SIGNATURE, {"image": pixels, "landmarks": landmarks}),
        (layout.FACE_SPEC_SIGNATURE, {"request": np.array([b""], dtype=object)}),
    ):
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name,
                                                                            signature_name=signature))
        for name, value in inputs.items():
            if name != "landmarks" or spec.uses_landmarks:
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log.SerializeToString())
    if not spec.is_sequence:
        example = tf.train.Example(features=tf.train.Features(feature={
            "image_bytes": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
            **({"landmarks": tf.train.Feature(float_list=tf.train.FloatList(value=face.landmarks.reshape(-1)))}
               if spec.uses_landmarks else {}),
        }))
        request = classification_pb2.ClassificationRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name="classify"),
            input=input_pb2.Input(example_list=input_pb2.ExampleList(examples=[example])))
        log = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))
        records.append(log.SerializeToString())
    return records


def model_config(existing: str | None, model_base_path: Path,
                 model_name: str) -> model_server_config_pb2.ModelServerConfig:
    """The ModelServerConfig that serves BASE under `model_name`: `existing` (a models.config's text, or None) with
    that name's entry added, or pointed at BASE with its other settings (version policy, labels) kept, and every
    other model's entry as it was. Raises ValueError for a text that is not a ModelServerConfig with a model list."""
    config = model_server_config_pb2.ModelServerConfig()
    if existing is not None:
        try:
            text_format.Parse(existing, config)
        except text_format.ParseError as error:
            raise ValueError(f"not a TF Serving ModelServerConfig: {error}") from None
        if config.WhichOneof("config") == "custom_model_config":
            raise ValueError("it holds a custom_model_config, which has no model list to add this model to")
    entries = config.model_config_list.config
    entry = next((each for each in entries if each.name == model_name), None) or entries.add(name=model_name)
    entry.base_path = str(model_base_path.resolve())
    entry.model_platform = "tensorflow"
    return config


def read_model_config(base: Path, model_name: str) -> model_server_config_pb2.ModelServerConfig:
    """BASE/models.config merged with this model's entry (model_config); an error naming the file if it is not a
    ModelServerConfig, which `export` raises before it writes anything."""
    path = base / layout.MODEL_CONFIG_FILE
    try:
        return model_config(path.read_text() if path.exists() else None, base, model_name)
    except ValueError as error:
        raise ValueError(f"{path}: {error}. Fix it, or move it away for a new one naming only this model; "
                         f"nothing was exported") from None


def write_server_files(base: Path, config: model_server_config_pb2.ModelServerConfig, model_name: str) -> list[str]:
    """Writes BASE/models.config, and BASE/batching_parameters.txt unless one is there (it may hold the user's
    own tuning); returns a line for each file saying what it holds now."""
    config_path, batching_path = base / layout.MODEL_CONFIG_FILE, base / BATCHING_FILE
    config_path.write_text(text_format.MessageToString(config))
    others = len(config.model_config_list.config) - 1
    notes = [f"{config_path}: serves {base} as {model_name!r}"
             + (f", and {others} other model{'s' if others > 1 else ''} as before" if others else "")]
    if batching_path.exists():
        notes.append(f"{batching_path}: kept as it was (delete it for emopy's defaults)")
    else:
        batching_path.write_text(BATCHING_PARAMETERS)
        notes.append(f"{batching_path}: batches of up to 32 inputs (faces or windows), 2 ms timeout")
    return notes


def _write_tflite(version_dir: Path, int8_weights: bool) -> None:
    """assets.extra/pixels.tflite, for the Recognizer's speed; a model that does not convert goes without (the
    Recognizer then runs the SavedModel), with a warning that says why."""
    try:
        model = tflite.convert(version_dir, int8_weights)
    except Exception as error:  # the converter raises its own ConverterError and plain errors alike
        logging.warning("%s: no TFLite copy of the %r signature (the Recognizer will run the SavedModel): %s",
                        version_dir, layout.PIXELS_SIGNATURE, str(error).splitlines()[0] if str(error) else error)
        return
    (version_dir / layout.TFLITE_FILE).write_bytes(model)


def _runs(run_dir: str | os.PathLike | Sequence[str | os.PathLike]) -> list[RunDir]:
    """The run, or the runs of an ensemble, which must agree on everything but their weights."""
    runs = [RunDir.open(path) for path in ([run_dir] if isinstance(run_dir, (str, os.PathLike)) else run_dir)]
    if not runs:
        raise ValueError("export needs a run directory")
    first = runs[0]
    for run in runs[1:]:
        for what in ("class_names", "input_spec", "face_spec"):
            if getattr(run, what) != getattr(first, what):
                raise ValueError(f"{run.path} cannot join {first.path} in an ensemble: their {what} differ "
                                 f"({getattr(run, what)} against {getattr(first, what)})")
    return runs


def check_max_pixels(limit: int) -> int:
    """The pixel limit, if it is one (a positive whole number); else a ValueError naming the flag."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"{pixel_limit.FLAG} must be a positive whole number of pixels, not {limit!r}; nothing was "
                         f"exported")
    return limit


def export(run_dir: str | os.PathLike | Sequence[str | os.PathLike], model_base_path: str | os.PathLike,
           version: int | None = None, model_name: str = DEFAULT_MODEL_NAME, test_time_flip: bool = False,
           max_image_pixels: int = faces.MAX_IMAGE_PIXELS, int8_tflite: bool = False,
           report: Callable[[str], object] = logging.info) -> Path:
    """Writes BASE/<version>/ (default: the next free version) from a finished run; returns its path.

    run_dir: one run, or several runs (of the same classes, inputs and face framing) to serve as an ensemble:
    the mean of their models' probabilities (models.test_time.ensemble_averaged).
    test_time_flip: serve the mean of the model's probabilities over each face and its mirror image
    (models.test_time.flip_averaged; image-only models). assets/export.json records it, and where the runs
    came from (serving/provenance.py).
    max_image_pixels: the signatures that decode images refuse one whose header declares more pixels, before
    decoding it (default: the photo reader's limit); assets/export.json records it, for the Recognizer.
    int8_tflite: the TFLite copy, which the Recognizer runs, stores its weights as int8 (serving/tflite.py): 4x
    smaller and 2-5x as fast, probabilities within about 0.02 of the SavedModel's; recorded in
    assets/export.json. The SavedModel keeps float32.
    report: called with a line for each of BASE's TF Serving files, saying what became of it (`emopy export`
    prints them).
    """
    check_max_pixels(max_image_pixels)
    runs = _runs(run_dir)
    run = runs[0]
    base = Path(model_base_path).expanduser()
    server_config = read_model_config(base, model_name)
    model = run.load_model() if len(runs) == 1 else test_time.ensemble_averaged([each.load_model() for each in runs])
    if test_time_flip:
        model = test_time.flip_averaged(model)
    record = {**provenance.export_record(runs, test_time_flip, int8_tflite), layout.MAX_PIXELS_KEY: max_image_pixels}
    return write_export(base, version, model_name, server_config, keras_probabilities(model, run.input_spec),
                        model.weights, layout.ExportAssets(run.class_names, run.face_spec, run.input_spec), record,
                        report=report)


class StagedVersion(NamedTuple):
    """Where a new version is written: `folder` (the SavedModel), `assets` (what the SavedModel copies in), and
    `target`, BASE/<version>, which `folder` becomes."""

    folder: Path
    assets: Path
    target: Path


@contextlib.contextmanager
def staged_version(base: Path, version: int | None) -> Iterator[StagedVersion]:
    """Folders to write version `version` of BASE in (None: the next free one). Leaving the block without an error
    renames the folder BASE/<version>: a version appears complete or not at all, since a server polling BASE may
    load it the moment it appears. What is left beside it is removed either way."""
    version = layout.next_version(base) if version is None else version
    if version < 1:
        raise ValueError(f"versions are positive integers, not {version}")
    target = base / str(version)
    if target.exists():
        raise FileExistsError(f"{target} already exists: choose another --version, or leave it out for the next")
    base.mkdir(parents=True, exist_ok=True)
    staged = StagedVersion(base / f".{version}.partial", base / f".{version}.partial-assets", target)
    for leftover in (staged.folder, staged.assets):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        staged.assets.mkdir(parents=True)
        yield staged
        staged.folder.rename(target)
    finally:
        shutil.rmtree(staged.folder, ignore_errors=True)
        shutil.rmtree(staged.assets, ignore_errors=True)


def write_warmup(version_dir: Path, records: Sequence[bytes]) -> None:
    """assets.extra/tf_serving_warmup_requests: the requests TF Serving replays before it serves a version."""
    (version_dir / layout.WARMUP_FILE).parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(version_dir / layout.WARMUP_FILE)) as writer:
        for record in records:
            writer.write(record)


def write_export(base: Path, version: int | None, model_name: str,
                 server_config: model_server_config_pb2.ModelServerConfig, probabilities: Probabilities,
                 weights: Sequence[tf.Variable], assets: layout.ExportAssets, record: dict,
                 tflite_model: bytes | None = None, report: Callable[[str], object] = logging.info) -> Path:
    """Writes BASE/<version>/ around a model (its probabilities and weights), with its assets and `record` as
    assets/export.json (whose max_image_pixels the signatures apply), then BASE's TF Serving files; returns the
    version folder. tflite_model: the `pixels` signature as TensorFlow Lite, if it is known (else converted, with
    int8 weights if the record's int8_tflite says so).

    The version folder appears complete or not at all (written beside it, then renamed), since a server
    polling BASE may load it the moment it appears.
    """
    class_names, face_spec, spec = assets
    limit = check_max_pixels(record[layout.MAX_PIXELS_KEY])
    with staged_version(base, version) as (staging, asset_dir, target):
        (asset_dir / layout.LABELS_ASSET).write_text("".join(name + "\n" for name in class_names))
        (asset_dir / layout.FACE_SPEC_ASSET).write_text(face_spec.to_json() + "\n")
        (asset_dir / layout.INPUT_SPEC_ASSET).write_text(spec.to_json() + "\n")
        (asset_dir / layout.EXPORT_ASSET).write_text(json.dumps(record, indent=2) + "\n")
        module = ServingModule(probabilities, weights, spec, class_names, face_spec, asset_dir, limit)
        signatures = {"serving_default": module.serve_bytes.get_concrete_function(),
                      layout.PIXELS_SIGNATURE: module.serve_pixels.get_concrete_function(),
                      layout.FACE_SPEC_SIGNATURE: module.serve_face_spec.get_concrete_function()}
        if not spec.is_sequence:
            signatures["classify"] = module.classify.get_concrete_function()
        tf.saved_model.save(module, str(staging), signatures=signatures)
        _set_classify_method(staging)
        write_warmup(staging, warmup_records(spec, sample_face(face_spec), model_name))
        if tflite_model is not None:
            (staging / layout.TFLITE_FILE).write_bytes(tflite_model)
        elif not spec.is_sequence:  # the Recognizer classifies single faces only
            _write_tflite(staging, record.get(layout.INT8_TFLITE_KEY, False))
    for note in write_server_files(base, server_config, model_name):
        report(note)
    return target
