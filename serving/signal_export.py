"""`emopy export` of a physiological run (physio_mlp, signal_cnn on WESAD): a SavedModel that TF Serving loads as it is.

The same layout as a face export (serving/layout.py), with the signal spec where a face export has its face spec:

  serving_default  features: float32 [batch, num_features], NaN where a feature is undefined (physio_mlp), or
                   signals: float32 [batch, window_samples, channels] (signal_cnn)
                   -> probabilities [batch, K], classes [batch], class_ids [batch], as the face models
  signal_spec      request: string [batch], ignored -> signal_spec [batch] (signal_spec.json's text), input_spec
                   [batch] (input_spec.json's), class_names [batch, K]: what the assets say, for a server's clients

Assets: labels.txt, signal_spec.json (feature names, channels, signal rate, window and shift), input_spec.json and
export.json (provenance); assets.extra/tf_serving_warmup_requests; BASE/models.config. No face signatures, face
spec or TFLite copy: there is no face to decode. The model normalises its inputs itself, so the signatures hand it
the features (or resampled signals) as the WESAD builder computes them.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from emopy import models
from emopy_tfds.images import MAX_IMAGE_PIXELS
from emopy.pipeline.run_dir import SIGNAL_SPEC_FILE, RunDir
from emopy.serving import export as face_export, layout, provenance
from emopy.serving.layout import DEFAULT_MODEL_NAME


def is_signal_run(run_dir: str | os.PathLike) -> bool:
    """Whether a run directory holds a physiological model (an error naming it if it is no run)."""
    return RunDir.open(run_dir).input_spec.uses_signals


def input_name(spec: models.InputSpec) -> str:
    """The one input of a physiological model and of its serving_default: "features" or "signals"."""
    (name,) = models.input_shapes(spec)
    return name


class SignalServingModule(tf.Module):
    """A physiological model with its label names and signal spec, as SavedModel signatures."""

    def __init__(self, model: keras.Model, spec: models.InputSpec, class_names: Sequence[str], signal_spec: str,
                 asset_dir: Path):
        super().__init__()
        # The weights are saved, not the Keras model, whose per-layer call traces no signature runs (as
        # face_export.keras_probabilities does for faces).
        self.weights = list(model.weights)
        self._run = functools.partial(model, training=False)
        self._name = input_name(spec)
        self.class_names = tf.constant(list(class_names))
        self.signal_spec_json = tf.constant(signal_spec)
        self.input_spec_json = tf.constant(spec.to_json())
        for attribute, asset in (("labels_asset", layout.LABELS_ASSET), ("signal_spec_asset", layout.SIGNAL_SPEC_ASSET),
                                 ("input_spec_asset", layout.INPUT_SPEC_ASSET), ("export_asset", layout.EXPORT_ASSET)):
            setattr(self, attribute, tf.saved_model.Asset(str(asset_dir / asset)))
        shape = [None, *models.input_shapes(spec)[self._name]]
        # The argument's name is the signature's input name, hence a method for each.
        if self._name == "features":
            self.serve = tf.function(self._features, input_signature=[tf.TensorSpec(shape, tf.float32)])
        else:
            self.serve = tf.function(self._signals, input_signature=[tf.TensorSpec(shape, tf.float32)])
        self.serve_spec = tf.function(self._spec, input_signature=[tf.TensorSpec([None], tf.string)])

    def _outputs(self, values: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = tf.cast(self._run({self._name: values}), tf.float32)
        class_ids = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "classes": tf.gather(self.class_names, class_ids),
                "class_ids": class_ids}

    def _features(self, features):
        return self._outputs(features)

    def _signals(self, signals):
        return self._outputs(signals)

    def _spec(self, request):
        # One row per entry of the request, which is otherwise ignored: TF Serving's batching splits every output.
        rows = tf.shape(request)[0]
        return {"signal_spec": tf.fill([rows], self.signal_spec_json),
                "input_spec": tf.fill([rows], self.input_spec_json),
                "class_names": tf.tile(self.class_names[None, :], [rows, 1])}


def warmup_records(spec: models.InputSpec, model_name: str) -> list[bytes]:
    """Serialized PredictionLog records, one per signature, that TF Serving replays before serving: a window of
    NaN features (the model's own normalisation must take them) or of flat signals."""
    name = input_name(spec)
    values = np.full((1, *models.input_shapes(spec)[name]), np.nan if name == "features" else 0.0, np.float32)
    records = []
    for signature, inputs in (("serving_default", {name: values}),
                              (layout.SIGNAL_SPEC_SIGNATURE, {"request": np.array([b""], dtype=object)})):
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name,
                                                                            signature_name=signature))
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        records.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())
    return records


def export(run_dirs: Sequence[str | os.PathLike], model_base_path: str | os.PathLike, version: int | None = None,
           model_name: str = DEFAULT_MODEL_NAME, *, test_time_flip: bool = False, int8_tflite: bool = False,
           max_image_pixels: int = MAX_IMAGE_PIXELS, report: Callable[[str], object] = logging.info) -> Path:
    """Writes BASE/<version>/ (default: the next free version) from one finished physiological run; returns its
    path. The face export's options (an ensemble, test-time flips, a TFLite copy) are refused by name.

    The version folder appears complete or not at all (written beside it, then renamed), as a face export's.
    """
    if len(run_dirs) != 1:
        raise ValueError("a physiological run is exported alone: ensembles are for face runs; nothing was exported")
    for flag, given in (("--test-time-flip", test_time_flip), ("--int8-tflite", int8_tflite),
                        ("--max-image-pixels", max_image_pixels != MAX_IMAGE_PIXELS)):
        if given:
            raise ValueError(f"{flag} is for face models (mirror images, a TFLite copy, images to decode); "
                             f"{run_dirs[0]} holds a physiological model; nothing was exported")
    run = RunDir.open(run_dirs[0])
    spec_path = run.path / SIGNAL_SPEC_FILE
    if not spec_path.exists():
        raise FileNotFoundError(f"{spec_path} does not exist: {run.path} is an incomplete `emopy train` run")
    signal_spec = json.loads(spec_path.read_text())
    base = Path(model_base_path).expanduser()
    server_config = face_export.read_model_config(base, model_name)
    model = run.load_model()
    record = provenance.export_record([run], test_time_flip=False)
    with face_export.staged_version(base, version) as (staging, asset_dir, target):
        spec_text = json.dumps(signal_spec, indent=2) + "\n"
        (asset_dir / layout.LABELS_ASSET).write_text("".join(name + "\n" for name in run.class_names))
        (asset_dir / layout.SIGNAL_SPEC_ASSET).write_text(spec_text)
        (asset_dir / layout.INPUT_SPEC_ASSET).write_text(run.input_spec.to_json() + "\n")
        (asset_dir / layout.EXPORT_ASSET).write_text(json.dumps(record, indent=2) + "\n")
        module = SignalServingModule(model, run.input_spec, run.class_names, spec_text, asset_dir)
        tf.saved_model.save(module, str(staging), signatures={
            "serving_default": module.serve.get_concrete_function(),
            layout.SIGNAL_SPEC_SIGNATURE: module.serve_spec.get_concrete_function()})
        face_export.write_warmup(staging, warmup_records(run.input_spec, model_name))
    for note in face_export.write_server_files(base, server_config, model_name):
        report(note)
    return target
