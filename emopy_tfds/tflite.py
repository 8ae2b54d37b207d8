"""TensorFlow Lite interpreters, made one way for the face detector (BlazeFace) and the classifier (pixels.tflite):
LiteRT's, the interpreter without TensorFlow, so that finding faces never loads TensorFlow."""

from __future__ import annotations

import os
from typing import Any

from emopy_tfds import quiet


def interpreter(model: bytes, max_threads: int) -> Any:
    """A TFLite interpreter of the flatbuffer `model`, using at most `max_threads` of this machine's cores, its
    tensors allocated. Interpreters are not safe to share between threads: each thread makes its own."""
    from ai_edge_litert.interpreter import Interpreter

    # The first interpreter of a process prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++:
    # held back, unless making it fails.
    with quiet.stderr_held_back():
        runner = Interpreter(model_content=model, num_threads=min(max_threads, os.cpu_count() or 1))
        runner.allocate_tensors()
    return runner
