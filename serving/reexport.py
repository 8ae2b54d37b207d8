"""`emopy export --from-export BASE/N`: an existing export's model as a new version, with today's signatures.

Exports made before the signatures refused decompression bombs (serving/pixel_limit.py) decode whatever image
TF Serving is sent, and their training runs may be long gone. This writes a new version around the old export's
own `pixels` signature, so the model is the same graph and weights, bit for bit, and gives the same probabilities
for the same crops. The assets, the TFLite copy of `pixels` and export.json's provenance come along as they were;
export.json gains the pixel limit and `reexported_by` (the emopy version and commit that wrote the signatures).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from emopy_tfds import faces
from emopy.serving import export, layout, provenance
from emopy.serving.layout import DEFAULT_MODEL_NAME, PIXELS_SIGNATURE

REEXPORT_KEY = "reexported_by"


def _record(version_dir: Path, max_image_pixels: int) -> dict:
    """The old export.json with the pixel limit and this re-export added ({} for an export without one)."""
    path = version_dir / layout.ASSETS / layout.EXPORT_ASSET
    try:
        record = json.loads(path.read_text()) if path.exists() else {}
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error}); nothing was exported") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a JSON object; nothing was exported")
    return {**record, layout.MAX_PIXELS_KEY: max_image_pixels,
            REEXPORT_KEY: {"emopy_version": provenance.emopy_version(), "git_commit": provenance.git_commit()}}


def reexport(source: str | os.PathLike, model_base_path: str | os.PathLike, version: int | None = None,
             model_name: str = DEFAULT_MODEL_NAME, max_image_pixels: int = faces.MAX_IMAGE_PIXELS,
             report: Callable[[str], object] = logging.info) -> Path:
    """Writes BASE/<version>/ (default: the next free version) from the export `source` (BASE/N, or BASE for its
    highest version), as export.export writes one from a run; returns its path."""
    export.check_max_pixels(max_image_pixels)
    source_dir = layout.resolve_export(source)
    base = Path(model_base_path).expanduser()
    server_config = export.read_model_config(base, model_name)
    assets = layout.read_assets(source_dir)
    record = _record(source_dir, max_image_pixels)
    loaded = tf.saved_model.load(str(source_dir))
    if PIXELS_SIGNATURE not in loaded.signatures:
        raise ValueError(f"{source_dir}: the SavedModel has no {PIXELS_SIGNATURE!r} signature to re-export "
                         f"(signatures: {', '.join(loaded.signatures)}); export its run again with --run")

    def probabilities(images: tf.Tensor, landmarks: tf.Tensor | None) -> tf.Tensor:
        feeds = {"image": images} if landmarks is None else {"image": images, "landmarks": landmarks}
        # Through `loaded`, which owns the variables, so the closure keeps it alive.
        return loaded.signatures[PIXELS_SIGNATURE](**feeds)["probabilities"]

    tflite_path = source_dir / layout.TFLITE_FILE
    tflite_model = tflite_path.read_bytes() if tflite_path.is_file() else None
    # The old module's own list of its weights where it has one (every emopy export since 82f5c67): saved in the same
    # order, the variables' data file comes out byte for byte the same.
    weights = getattr(loaded, "weights", None) or loaded.signatures[PIXELS_SIGNATURE].variables
    return export.write_export(base, version, model_name, server_config, probabilities, weights, assets, record,
                               tflite_model=tflite_model, report=report)
