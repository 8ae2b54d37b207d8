"""What `emopy export` writes, for the serving tests to serve, and real face crops to send it.

`write_test_model` puts in BASE/<version>/ an `emopy export` of a small untrained model of fer2013's classes (cnn,
or multi_input with landmarks): the real signatures, assets, warmup file and TFLite copy, so the servers under
test load exactly what users serve. Each kind is exported once a session (seconds) and copied into place.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from emopy_tfds import faces, labels

LABELS = labels.FER2013
CROP_SIZE = 48
NUM_LANDMARKS = 68

@functools.cache
def _exports_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="emopy-test-exports-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.cache
def _exported(landmarks: bool, bias: float, model_name: str) -> Path:
    """The version folder `emopy export` wrote for this kind of model, exported the first time it is asked for."""
    from emopy import models
    from emopy.pipeline import cli, run_dir

    folder = Path(tempfile.mkdtemp(prefix="export-", dir=_exports_folder()))
    # A run directory as `emopy train` leaves it, holding an untrained model (as tests/test_predict.py makes one).
    run = folder / "run"
    run.mkdir()
    architecture = "multi_input" if landmarks else "cnn"
    spec = models.InputSpec(kind="image_landmarks" if landmarks else "image", image_size=CROP_SIZE, channels=1)
    model = models.build(architecture, spec, len(LABELS))
    # A bias that differs per class on the output layer, so versions written with different `bias` predict
    # differently.
    head = [layer for layer in model.layers if getattr(layer, "bias", None) is not None][-1]
    head.bias.assign(head.bias.numpy() + bias * np.linspace(-1.0, 1.0, len(LABELS)))
    model.save(str(run / run_dir.MODEL_FILE))
    (run / run_dir.CONFIG_FILE).write_text(json.dumps({"input_spec": spec.__dict__, "class_names": list(LABELS),
                                                     "train": {"model": architecture}}))
    (run / run_dir.LABELS_FILE).write_text("".join(f"{name}\n" for name in LABELS))
    (run / run_dir.FACE_SPEC_FILE).write_text(faces.FaceSpec(crop_size=CROP_SIZE).to_json() + "\n")
    code = cli.main(["export", "--run", str(run), "--model-base-path", str(folder / "base"), "--version", "1",
                     "--model-name", model_name])
    assert code == 0, f"emopy export of {run} failed"
    return folder / "base" / "1"


def _drop_signature(version_dir: Path, name: str) -> None:
    """Removes one signature from saved_model.pb and its requests from the warmup file, as an export made before
    emopy wrote that signature lacks them."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    from emopy.serving import layout

    path = version_dir / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    del saved_model.meta_graphs[0].signature_def[name]
    path.write_bytes(saved_model.SerializeToString())
    warmup = version_dir / layout.WARMUP_FILE
    records = [record.numpy() for record in tf.data.TFRecordDataset(str(warmup))]
    with tf.io.TFRecordWriter(str(warmup)) as writer:
        for record in records:
            log = prediction_log_pb2.PredictionLog.FromString(record)
            if getattr(log, log.WhichOneof("log_type")).request.model_spec.signature_name != name:
                writer.write(record)


def write_test_model(base: Path, version: int, *, landmarks: bool = False, bias: float = 0.0,
                     model_name: str = "emotion", face_spec_signature: bool = True) -> Path:
    """Writes BASE/<version>/ as `emopy export` does and returns that folder.

    face_spec_signature=False: without the `face_spec` signature, as exports made before emopy wrote it.
    Copied into a sibling temporary folder and renamed into place, as `emopy export` does, so a server polling
    BASE never sees half of it.
    """
    from emopy.serving import layout

    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base))
    shutil.copytree(_exported(landmarks, bias, model_name), staging, dirs_exist_ok=True)
    if not face_spec_signature:
        _drop_signature(staging, layout.FACE_SPEC_SIGNATURE)
    target = base / str(version)
    staging.rename(target)
    return target


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
