"""An export's `pixels` signature as TensorFlow Lite: converted when exporting, run by the Recognizer in-process.

The SavedModel stays the model: TF Serving, `emopy serve` and `emopy evaluate` load it. The TFLite copy is the same
graph with the same weights (float32; probabilities agree within 1e-5), converted once by `emopy export` into
BASE/N/assets.extra/pixels.tflite, and run by LiteRT's interpreter (emopy_tfds.tflite), as BlazeFace is. It is
there for speed: through the XNNPACK kernels a two-member `vgg_small` ensemble classifies a face at batch 1 in about
1.8 ms on 2 cores, against about 6 ms through the SavedModel's signature, whose per-call overhead dwarfs a 48x48
face (benchmarks/default_model.py).

`emopy export --int8-tflite` stores the copy's weights as int8 instead (dynamic-range quantisation: activations
stay float, weights are scaled per channel). The copy is then 4x smaller and 2.4-4.7x faster, and its
probabilities move by up to about 0.02: on the shipped ferplus ensemble no answer changed on wild_dev's 823
real photos, and 6 of 3,410 FER+ PublicTest faces did, 82.26 -> 82.20 % (benchmarks/int8_tflite.py). It is what
lets a third member fit the shipped model's size and time.

TFLite interpreters are not safe to share between threads, so each thread gets its own. XNNPACK does not gain
from batching a 48x48 face (batch 8 costs 8 times batch 1), so faces go through one at a time and the
interpreter never has to be resized.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from emopy_tfds import quiet, tflite
from emopy.serving.layout import PIXELS_SIGNATURE, TFLITE_FILE

# Threads one interpreter may use: 2 halves the latency of one face on 2 cores; more gains nothing at 48x48.
MAX_THREADS = 4


def convert(version_dir: str | os.PathLike, int8_weights: bool = False) -> bytes:
    """The `pixels` signature of the SavedModel in `version_dir` as a TFLite flatbuffer: float32, or with its
    weights quantised to int8 (dynamic range)."""
    import tensorflow as tf  # tensorflow: heavy, needed only to convert or run

    converter = tf.lite.TFLiteConverter.from_saved_model(str(version_dir), signature_keys=[PIXELS_SIGNATURE])
    if int8_weights:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: weights only
    with quiet.stderr_held_back():  # the MLIR converter logs each pass it runs
        return converter.convert()


class PixelsClassifier:
    """Probabilities [B, K] of uint8 crops [B, S, S, C] (and landmarks [B, 68, 2]) through pixels.tflite."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._model = self.path.read_bytes()
        self._per_thread = threading.local()
        runner = self._runner()
        # As the SavedModel's signature states them, an unknown size as None: {"image": [None, S, S, C], ...}.
        self.input_shapes = {name: [None if size < 0 else int(size) for size in detail["shape_signature"]]
                             for name, detail in runner["inputs"].items()}

    def _runner(self) -> dict[str, Any]:
        if not hasattr(self._per_thread, "runner"):
            interpreter = tflite.interpreter(self._model, MAX_THREADS)
            signature = interpreter.get_signature_runner(PIXELS_SIGNATURE)
            probabilities = signature.get_output_details()["probabilities"]
            self._per_thread.runner = {"interpreter": interpreter, "inputs": signature.get_input_details(),
                                       "probabilities": probabilities["index"],
                                       "classes": int(probabilities["shape_signature"][-1])}
        return self._per_thread.runner

    def __call__(self, pixels: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        runner = self._runner()
        interpreter, inputs = runner["interpreter"], runner["inputs"]
        rows = []
        for index in range(len(pixels)):
            interpreter.set_tensor(inputs["image"]["index"], pixels[index:index + 1])
            if "landmarks" in inputs:
                interpreter.set_tensor(inputs["landmarks"]["index"], landmarks[index:index + 1])
            interpreter.invoke()
            rows.append(interpreter.get_tensor(runner["probabilities"])[0])
        return np.array(rows) if rows else np.zeros((0, runner["classes"]), np.float32)


def classifier(version_dir: str | os.PathLike) -> PixelsClassifier | None:
    """The export's TFLite classifier, or None if it has no pixels.tflite (exported before emopy wrote one, or a
    model that did not convert)."""
    path = Path(version_dir) / TFLITE_FILE
    return PixelsClassifier(path) if path.is_file() else None
