"""Face detection: MediaPipe's BlazeFace, dlib's HOG and CNN detectors, and `auto`, which runs them in that order,
each only where the one before found nothing.

Every detector returns boxes framed as the HOG detector frames a face, because the 68-point landmark model was
trained on HOG's boxes: BlazeFace's and the CNN detector's boxes are mapped onto them (BLAZEFACE_TO_HOG,
CNN_TO_HOG), so a face's landmarks and crop do not depend on which detector found it.

dlib's detectors and TFLite interpreters keep scratch state and are not safe to share between threads: each thread
makes its own.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import dlib
import numpy as np

from emopy_tfds import blazeface

# blazeface: MediaPipe's short-range BlazeFace (about 3 ms a photo of any size: it looks at a 128x128 copy; turned,
# shadowed and tightly cropped faces too, down to about a seventh of the photo's longer side). hog: dlib's HOG frontal
# detector (~25 ms a 640x480 photo on 2 cores; upright, mostly frontal faces of 80 px and more). cnn: dlib's MMOD
# CNN detector (turned, tilted, covered and shadowed faces too; about 100 times as slow as HOG). auto: BlazeFace,
# then HOG on the image doubled (faces down to 40 px), then the CNN detector, each only where the one before found
# nothing.
DETECTORS = ("auto", "blazeface", "hog", "cnn")
DEFAULT_DETECTOR = "auto"
# auto's order: each detector, with how many more times than asked the image is doubled for it.
AUTO_ORDER = (("blazeface", 0), ("hog", 1), ("cnn", 0))
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

# BlazeFace's keypoints place a face better than its box does: HOG's box is mapped from the eyes and the mouth. Its
# centre lies `centre` of the way from the eyes' midpoint to the mouth, and its side is `eyes` eye distances plus
# `mouth` eye-to-mouth distances: a median and a least-squares fit over every other one of the 649 of wild_dev's
# 823 real photos where both BlazeFace and HOG find a face (`benchmarks/faces.py --measure-box-mapping blazeface`).
# On the other half, landmarks fitted on the mapped box lie a median 0.59% of the box side from those fitted on
# HOG's own box (90th percentile 1.4%); mapping BlazeFace's box by medians, as CNN_TO_HOG does, gave 0.67% (1.6%),
# and on fer2013 faces scaled into photos 7.8% at the 90th percentile against 4.6%.
BLAZEFACE_TO_HOG = {"centre": 0.468, "eyes": 0.953, "mouth": 1.149}

# BlazeFace finds faces lying on their side or upside down too, but the 68-point model, trained on upright faces in
# HOG's upright boxes, cannot fit them: such a face's landmarks would be noise, and its crop a wrong face. HOG and
# the CNN detector find faces up to about 30-45 degrees off level; BlazeFace's are kept up to this.
MAX_ROLL_DEGREES = 60.0

# dlib's detectors miss faces under about 80 px (HOG) and 40 px (CNN), so an image that is itself small, a face
# crop or a thumbnail of 40-100 px, shows none. Where none is found in an image whose short side is under this, the
# detectors look again in a copy scaled up to it (cubic): 2.5 times HOG's smallest face, room for a crop's margins.
SMALL_IMAGE_SIDE = 200

# A face seen in a recent video frame is looked for again only in a window this many box sides wider on each side
# (detect_near): room for a face to move half its width between the frame its box came from and this one. HOG on
# that window costs about a seventh of a 640x480 frame (4 ms against 28 for a 105 px face).
NEAR_MARGIN = 0.5


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
    def square(cls, centre_x: float, centre_y: float, side: float) -> "Box":
        """The square of `side` centred on (centre_x, centre_y), in whole pixels."""
        return cls(int(round(centre_x - side / 2)), int(round(centre_y - side / 2)), int(round(side)),
                   int(round(side)))

    @classmethod
    def from_dlib(cls, rect: dlib.rectangle) -> "Box":
        return cls(int(rect.left()), int(rect.top()), int(rect.width()), int(rect.height()))


def box_overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    width = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    height = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    intersection = width * height
    return intersection / float(a.area + b.area - intersection)


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


@functools.cache
def _blazeface() -> blazeface.BlazeFace:
    # One per process (the model's bytes and anchors); each thread runs its own interpreter inside it.
    return blazeface.BlazeFace(blazeface.SHORT_RANGE)


def load(detector: str = DEFAULT_DETECTOR) -> None:
    """Creates the calling thread's detectors now (for a Beam DoFn's setup), not on first use."""
    if check_detector(detector) in ("auto", "blazeface"):
        _blazeface().load()
    if detector != "blazeface":
        _frontal_face_detector()
    if detector in ("auto", "cnn"):
        _cnn_face_detector()


def largest_first(boxes) -> list[Box]:
    return sorted(boxes, key=lambda box: box.area, reverse=True)


def hog_boxes(gray: np.ndarray, upsample: int = 0) -> list[Box]:
    """Boxes from dlib's HOG frontal detector, largest first; each `upsample` doubles the image first."""
    return largest_first(Box.from_dlib(rect) for rect in _frontal_face_detector()(gray, upsample))


def window_around(box: Box, image_shape: tuple[int, ...], margin: float = NEAR_MARGIN) -> Box:
    """`box` grown by `margin` times its side on every side, clipped to the image."""
    height, width = image_shape[:2]
    x, y = max(0, int(box.x - margin * box.w)), max(0, int(box.y - margin * box.h))
    right, bottom = min(width, int(box.x + box.w * (1 + margin))), min(height, int(box.y + box.h * (1 + margin)))
    return Box(x, y, max(0, right - x), max(0, bottom - y))


def detect_near(gray: np.ndarray, seen: Sequence[Box], detector: str = DEFAULT_DETECTOR, *, upsample: int = 0,
                margin: float = NEAR_MARGIN) -> list[Box] | None:
    """Boxes of the faces last seen at `seen`, each looked for only in a window around where it was, largest
    first; None if any of them is not found there, so that the caller searches the whole image.

    BlazeFace looks under `blazeface` and `auto` (auto's fallbacks are the caller's to decide), HOG under `hog`, the
    CNN detector under `cnn`.
    Each window keeps the detection that overlaps the face's last box most (a neighbour's face that fits in the
    window does not overlap it); a face that two boxes of `seen` both lead to counts once.
    """
    search = AUTO_ORDER[0][0] if check_detector(detector) == "auto" else detector
    found: list[Box] = []
    for last in seen:
        window = window_around(last, gray.shape, margin)
        if not window.area:  # the face's last box lies outside this frame
            return None
        inside = boxes_by(search, np.ascontiguousarray(gray[window.y:window.y + window.h,
                                                            window.x:window.x + window.w]), upsample)
        candidates = [Box(box.x + window.x, box.y + window.y, box.w, box.h) for box in inside]
        overlap, best = max(((box_overlap(box, last), box) for box in candidates), default=(0.0, None))
        if not overlap:
            return None
        if all(box_overlap(best, other) < 0.5 for other in found):
            found.append(best)
    return largest_first(found)


def cnn_to_hog(rect: dlib.rectangle, scale: float = 1.0) -> Box:
    """A CNN detection (in an image shrunk by `scale`) as the HOG-style box around the same face."""
    side = (rect.width() + rect.height()) / 2 / scale
    centre_x = (rect.left() + rect.right() + 1) / 2 / scale + CNN_TO_HOG["dx"] * side
    centre_y = (rect.top() + rect.bottom() + 1) / 2 / scale + CNN_TO_HOG["dy"] * side
    return Box.square(centre_x, centre_y, CNN_TO_HOG["scale"] * side)


def blazeface_to_hog(found: blazeface.Detection, mapping: dict[str, float] = BLAZEFACE_TO_HOG) -> Box:
    """A BlazeFace detection as the HOG-style box around the same face, placed by its eyes and mouth."""
    eyes, mouth = found.keypoints[:2].astype(np.float64).mean(axis=0), found.keypoints[3].astype(np.float64)
    side = (mapping["eyes"] * np.linalg.norm(found.keypoints[1] - found.keypoints[0])
            + mapping["mouth"] * np.linalg.norm(mouth - eyes))
    centre_x, centre_y = eyes + mapping["centre"] * (mouth - eyes)
    return Box.square(centre_x, centre_y, side)


def roll_degrees(found: blazeface.Detection) -> float:
    """How far a BlazeFace detection's eye line turns from level, in degrees (-180..180; 0: upright)."""
    (right_x, right_y), (left_x, left_y) = found.keypoints[:2]
    return float(np.degrees(np.arctan2(left_y - right_y, left_x - right_x)))


def blazeface_boxes(gray: np.ndarray, upsample: int = 0) -> list[Box]:
    """Boxes from BlazeFace mapped to HOG's framing, largest first, of the faces whose eye line is within
    MAX_ROLL_DEGREES of level. BlazeFace sees every image at 128x128, so `upsample` (taken to match the dlib
    detectors' signature) changes nothing."""
    return largest_first(blazeface_to_hog(found) for found in _blazeface()(gray)
                         if abs(roll_degrees(found)) <= MAX_ROLL_DEGREES)


def cnn_detections(gray: np.ndarray, upsample: int = 0, scale: float = CNN_SCALE) -> list[dlib.rectangle]:
    """dlib's CNN detector's own rectangles in the image resized by `scale` (then doubled `upsample` times)."""
    small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return [found.rect for found in _cnn_face_detector()(small, upsample)]


def cnn_boxes(gray: np.ndarray, upsample: int = 0, scale: float = CNN_SCALE) -> list[Box]:
    """Boxes from dlib's CNN detector mapped to HOG's framing, largest first (see cnn_detections)."""
    return largest_first(cnn_to_hog(rect, scale) for rect in cnn_detections(gray, upsample, scale))


def boxes_by(detector: str, gray: np.ndarray, upsample: int = 0) -> list[Box]:
    """Boxes from one detector alone ("blazeface", "hog" or "cnn"), largest first."""
    if detector == "blazeface":
        return blazeface_boxes(gray, upsample)
    if detector == "hog":
        return hog_boxes(gray, upsample)
    return cnn_boxes(gray, upsample)


def detect(gray: np.ndarray, detector: str = DEFAULT_DETECTOR, *, upsample: int = 0, fallback: bool = True) -> list[Box]:
    """Face boxes in a grayscale image, largest first, all framed as HOG frames them.

    Under `auto`, HOG on the image doubled runs only where BlazeFace finds nothing, and the CNN detector only where
    that finds nothing too; both only if `fallback`: a video passes False on frames where no face was lost, so the
    fallbacks run only when BlazeFace cannot find a tracked face again. `upsample` doubles the image that many more
    times for HOG and the CNN detector.
    A small image where nothing is found is searched again scaled up (SMALL_IMAGE_SIDE), also only if `fallback`.
    """
    found = _detect_at_size(gray, detector, upsample, fallback)
    scale = SMALL_IMAGE_SIDE / min(gray.shape[:2])
    if found or not fallback or scale <= 1.0:
        return found
    larger = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return [Box(*(int(round(value / scale)) for value in box))
            for box in _detect_at_size(larger, detector, upsample, fallback)]


def _detect_at_size(gray: np.ndarray, detector: str, upsample: int, fallback: bool) -> list[Box]:
    order = AUTO_ORDER if check_detector(detector) == "auto" else ((detector, 0),)
    for name, more in order if fallback else order[:1]:
        found = boxes_by(name, gray, upsample + more)
        if found:
            break
    return found
