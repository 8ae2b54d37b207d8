"""emopy's Python API: the emotions of the faces in a photo, an array or a video, in one call.

    import emopy
    table = emopy.predict("photo.jpg")                 # the shipped default model
    table = emopy.predict(rgb_array, model="fer2013")  # a shipped model by name, or an export's path
    with emopy.Recognizer.default("ferplus") as recognizer:
        table = recognizer.predict("clip.mp4", every=5)

`emopy.predict` returns the DataFrame `emopy predict` writes, with the same columns. The installed parts are
`emopy.models`, `emopy.pipeline`, `emopy.serving` and `emopy_tfds`. Importing emopy loads none of them:
TensorFlow, dlib and OpenCV load on first use.
"""

from __future__ import annotations

import os
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for type checkers: the real imports wait for first use
    import numpy as np
    import pandas as pd

    from emopy.serving.recognizer import Recognizer

try:
    __version__ = metadata.version("emopy")
except metadata.PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = ["Recognizer", "predict", "labels", "SHIPPED_MODELS", "__version__"]

# The models emopy ships, by name (serving/shipped.py is their home; this list is checked against it by the
# tests, so naming them here costs no import).
SHIPPED_MODELS = ("ferplus", "fer2013")

# One Recognizer per model for emopy.predict: loading a model costs far more than classifying a photo.
_recognizers: dict[tuple[str, str | None], "Recognizer"] = {}


def _recognizer(model: str | os.PathLike | None, detector: str | None) -> "Recognizer":
    from emopy.serving.recognizer import Recognizer
    from emopy.serving.shipped import resolve_model

    key = (str(resolve_model(model)), detector)
    if key not in _recognizers:
        _recognizers[key] = Recognizer.from_export(key[0], detector=detector)
    return _recognizers[key]


def predict(source: "str | os.PathLike | bytes | np.ndarray", model: str | os.PathLike | None = None, *,
            detector: str | None = None, **video_options: Any) -> "pd.DataFrame":
    """The emotion of every face in a photo or video file (a path), encoded image bytes, or an RGB array
    (height x width x 3, uint8): the rows `emopy predict` writes, one per face (and frame), with the same columns.

    model: a shipped model's name (SHIPPED_MODELS; None: the default), or an `emopy export` folder (BASE or BASE/N).
    detector: who finds the faces, as `emopy predict --detector` ("auto", "blazeface", "hog" or "cnn"); None: the
      one the model's face spec records (`auto`: BlazeFace, then HOG on the image doubled, then dlib's CNN detector).
    video_options: for a video, as Recognizer.predict_video takes them (every=N, smoothing=...).
    """
    recognizer = _recognizer(model, detector)
    if isinstance(source, (str, os.PathLike)):
        return recognizer.predict(source, **video_options)
    if video_options:
        raise TypeError(f"emopy.predict: {', '.join(video_options)} apply to video files only, not to an image "
                        f"given as {type(source).__name__}")
    return recognizer.predict_frame(source)


def __getattr__(name: str) -> Any:
    # Loaded on first use, so `import emopy` stays fast.
    if name == "Recognizer":
        from emopy.serving.recognizer import Recognizer

        return Recognizer
    if name == "labels":
        from emopy_tfds import labels

        return labels
    raise AttributeError(f"module 'emopy' has no attribute {name!r}")
