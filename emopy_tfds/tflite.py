"""TensorFlow Lite interpreters, made one way for the face detector (BlazeFace) and the classifier (pixels.tflite)."""

from __future__ import annotations

import os
import warnings
from typing import Any


def interpreter(model: bytes, max_threads: int) -> Any:
    """A TFLite interpreter of the flatbuffer `model`, using at most `max_threads` of this machine's cores, its
    tensors allocated. Interpreters are not safe to share between threads: each thread makes its own."""
    import tensorflow as tf  # tensorflow: heavy, needed only to run

    # tf.lite.Interpreter warns that it will move to the ai-edge-litert package; it is still the one in the
    # TensorFlow emopy pins, so the warning would only be noise for users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        runner = tf.lite.Interpreter(model_content=model, num_threads=min(max_threads, os.cpu_count() or 1))
    runner.allocate_tensors()
    return runner
