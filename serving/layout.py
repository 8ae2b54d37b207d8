"""The layout of an `emopy export` base path, and the names TF Serving expects: the one place that knows them.

    BASE/models.config                  a TF Serving model config naming BASE
    BASE/<version>/saved_model.pb       one folder per version, 1, 2, ...; the highest is served
    BASE/<version>/assets/              labels.txt, face_spec.json, input_spec.json, export.json (provenance, and
                                        max_image_pixels: the most pixels an image's header may declare); a
                                        physiological model's has signal_spec.json instead of face_spec.json
    BASE/<version>/assets.extra/tf_serving_warmup_requests
    BASE/<version>/assets.extra/pixels.tflite   the `pixels` signature for TensorFlow Lite (serving/tflite.py)

`emopy export` writes it; the local server, `emopy predict`, `emopy evaluate` and the client read it from here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from emopy_tfds import faces

if TYPE_CHECKING:
    from emopy import models

DEFAULT_MODEL_NAME = "emotion"
SAVED_MODEL_FILE = "saved_model.pb"
MODEL_CONFIG_FILE = "models.config"
ASSETS = "assets"
LABELS_ASSET, FACE_SPEC_ASSET, INPUT_SPEC_ASSET, EXPORT_ASSET = (
    "labels.txt", "face_spec.json", "input_spec.json", "export.json")
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
# TF Serving reads only the warmup file from assets.extra, so the TFLite copy can sit beside it.
TFLITE_FILE = Path("assets.extra") / "pixels.tflite"
# What TF Serving's Classify API checks a signature's method name against.
CLASSIFY_METHOD = "tensorflow/serving/classify"
# The signature that takes crops already cut as the export's face_spec.json says (see serving/export.py).
PIXELS_SIGNATURE = "pixels"
# The signature that hands a server's clients what its assets hold: the face spec and the class names.
FACE_SPEC_SIGNATURE = "face_spec"
# A physiological model's counterpart of face_spec.json (feature names, channels, signal rate, window and shift, as
# its run's signal_spec.json has them), and the signature that hands it to a server's clients.
SIGNAL_SPEC_ASSET = "signal_spec.json"
SIGNAL_SPEC_SIGNATURE = "signal_spec"
# export.json's entry for the most pixels an image's header may declare in the signatures that decode images.
MAX_PIXELS_KEY = "max_image_pixels"
# export.json's entry saying whether the TFLite copy's weights are int8 (serving/tflite.py).
INT8_TFLITE_KEY = "int8_tflite"


class ExportAssets(NamedTuple):
    """What an export carries besides its SavedModel: class names in output order, the FaceSpec its faces are cut
    with, and the models.InputSpec of what its model takes."""

    class_names: list[str]
    face_spec: faces.FaceSpec
    input_spec: "models.InputSpec"


def versions(base: str | os.PathLike) -> list[int]:
    """The numeric version folders under BASE that hold a SavedModel, in ascending order ([] if none)."""
    base = Path(base).expanduser()
    if not base.is_dir():
        return []
    return sorted(int(child.name) for child in base.iterdir()
                  if child.name.isdigit() and (child / SAVED_MODEL_FILE).is_file())


def next_version(base: str | os.PathLike) -> int:
    """One more than the highest numeric folder under BASE, with a SavedModel or not (1 for an empty base)."""
    base = Path(base).expanduser()
    taken = [int(child.name) for child in base.iterdir() if child.is_dir() and child.name.isdigit()] \
        if base.is_dir() else []
    return max(taken, default=0) + 1


def resolve_export(path: str | os.PathLike) -> Path:
    """The SavedModel folder: PATH itself if it holds saved_model.pb, else PATH's highest numeric version."""
    path = Path(path).expanduser()
    if (path / SAVED_MODEL_FILE).is_file():
        return path
    found = versions(path)
    if not found:
        raise FileNotFoundError(f"{path}: neither a SavedModel nor a base path with numeric version folders "
                                f"(BASE/N, as `emopy export` writes)")
    return path / str(found[-1])


def read_assets(version_dir: str | os.PathLike) -> ExportAssets:
    """The assets of an export version folder; a clear error naming what is missing."""
    # models imports Keras (TensorFlow), which a client of a remote server need not load to read assets.
    from emopy import models

    assets = Path(version_dir) / ASSETS
    if (assets / SIGNAL_SPEC_ASSET).is_file():
        raise ValueError(f"{version_dir} holds a physiological model, which reads signals, not faces: use "
                         f"`emopy predict-signals FILE --model {version_dir}`")
    try:
        return ExportAssets((assets / LABELS_ASSET).read_text().splitlines(),
                            faces.FaceSpec.from_json((assets / FACE_SPEC_ASSET).read_text()),
                            models.InputSpec.from_json((assets / INPUT_SPEC_ASSET).read_text()))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{version_dir}: not an emopy export (missing {error.filename})") from None


class SignalAssets(NamedTuple):
    """What a physiological export carries besides its SavedModel: class names in output order, its signal spec
    (signal_spec.json's keys: feature_names, channels, signal_rate, window_seconds, shift_seconds, ...) and the
    models.InputSpec of what its model takes."""

    class_names: list[str]
    signal_spec: dict
    input_spec: "models.InputSpec"


def is_signal_export(version_dir: str | os.PathLike) -> bool:
    """Whether an export version folder holds a physiological model (signal_spec.json, not face_spec.json)."""
    return (Path(version_dir) / ASSETS / SIGNAL_SPEC_ASSET).is_file()


def read_signal_assets(version_dir: str | os.PathLike) -> SignalAssets:
    """The assets of a physiological export's version folder; a clear error naming what is missing."""
    from emopy import models  # see read_assets

    assets = Path(version_dir) / ASSETS
    if (assets / FACE_SPEC_ASSET).is_file() and not (assets / SIGNAL_SPEC_ASSET).is_file():
        raise ValueError(f"{version_dir}: an export of a face model (face_spec.json), not of a physiological one: "
                         f"use `emopy predict` on photos")
    try:
        return SignalAssets((assets / LABELS_ASSET).read_text().splitlines(),
                            json.loads((assets / SIGNAL_SPEC_ASSET).read_text()),
                            models.InputSpec.from_json((assets / INPUT_SPEC_ASSET).read_text()))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{version_dir}: not an emopy export (missing {error.filename})") from None


def max_image_pixels(version_dir: str | os.PathLike) -> int:
    """The pixel limit an export's signatures apply to images (assets/export.json), which the Recognizer applies
    to photos too; the photo reader's own limit for exports made before it was recorded (whose signatures have
    none: `emopy export --from-export` adds it)."""
    path = Path(version_dir) / ASSETS / EXPORT_ASSET
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return faces.MAX_IMAGE_PIXELS
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    limit = record.get(MAX_PIXELS_KEY, faces.MAX_IMAGE_PIXELS) if isinstance(record, dict) else None
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"{path}: {MAX_PIXELS_KEY} must be a positive whole number, not {limit!r}")
    return limit
