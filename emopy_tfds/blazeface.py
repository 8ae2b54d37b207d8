"""BlazeFace, MediaPipe's face detector, run through TensorFlow Lite: its anchors, box decoding and weighted
non-maximum suppression, written from the facts MediaPipe publishes in its graph configs and model card.

The short-range model ships in emopy_tfds/data/blazeface/ with its licence (Apache-2.0) and where it came from. It
reads an RGB image letterboxed into a 128 px square, values in [-1, 1], and regresses, for each of a fixed grid of
anchors, one score and a box with six keypoints relative to the anchor.
Boxes come back in image pixels as BlazeFace frames a face: detection.py maps them onto HOG's framing.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from emopy_tfds import tflite

MODEL_DIR = Path(__file__).parent / "data" / "blazeface"

# A 128x128 input costs about 2 ms through XNNPACK on one core; a second thread gains little and would compete
# with the landmark fit and the classifier.
MAX_THREADS = 1


class BlazeFaceModel(NamedTuple):
    """One BlazeFace model and its graph's options (MediaPipe's face_detection_*_range graphs).

    input_size: the square the image is letterboxed into. strides: one per SSD layer; consecutive layers with the
    same stride share a feature map. anchors_per_layer: 2 where the graph adds an interpolated-scale anchor to the
    aspect-ratio-1 one, else 1. Every anchor has a fixed unit size, so only its centre matters.
    min_score: the graph's score threshold.
    """

    file: str
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int
    min_score: float

    @property
    def path(self) -> Path:
        return MODEL_DIR / self.file


# Short range: faces within about 2 m of a phone's camera, a face filling a fifth of the frame or more: 896 anchors.
SHORT_RANGE = BlazeFaceModel("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2, 0.5)
# MediaPipe's full-range model (192 px input, one 48x48 map of 2304 anchors, threshold 0.6) is for faces far from
# the camera. It is not shipped: with 150 of wild_dev's photos shrunk into noisy 640x480 photos, it found 19, 61 and
# 85 % of faces about 50, 70 and 100 px tall (6 ms a photo), where HOG at the photo's size found 95, 97 and 94 %
# (24 ms), and auto runs HOG, on the photo doubled, wherever the short-range model finds nothing.

# The graphs' post-processing: raw scores clipped to +-100 before the sigmoid, and detections whose boxes overlap
# by more than this IoU merged into one, their boxes and keypoints averaged weighted by score.
SCORE_CLIP = 100.0
MERGE_OVERLAP = 0.3
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear_tragion", "left_ear_tragion")

# The graphs' threshold, 0.5, lets through a few face-like things in grey photos: skimage's coffee cup at 0.59, on
# wild_dev's 823 photos of one real face each 5 second boxes between 0.5 and 0.6, and the chin and neck of an
# upside-down head at 0.61. Their keypoints give them away: a face's mouth lies about 0.45 box widths from the
# midpoint of its eyes (wild_dev, 0.5th percentile 0.42), theirs 0.13-0.35. So a detection scoring under
# CONFIDENT_SCORE counts only with the mouth at least MIN_MOUTH_DISTANCE box widths from the eyes; 58 of the 60 real
# faces scoring under 0.6 have it, and every one between 0.6 and 0.7. (A turned head scoring 0.79, skimage's
# cameraman, has 0.395: above CONFIDENT_SCORE, the score alone decides.)
CONFIDENT_SCORE = 0.65
MIN_MOUTH_DISTANCE = 0.4


class Detection(NamedTuple):
    """One face as BlazeFace frames it, in image pixels: box left, top, width, height (floats), its score, and
    six keypoints (KEYPOINTS; "right" is the person's right) as a float32 (6, 2) array of (x, y)."""

    x: float
    y: float
    w: float
    h: float
    score: float
    keypoints: np.ndarray


def anchor_centres(model: BlazeFaceModel) -> np.ndarray:
    """The model's anchor centres [N, 2] (x, y) in [0, 1], in its output order: row by row over each feature
    map, every anchor of a cell together."""
    centres = []
    layer = 0
    while layer < len(model.strides):
        stride = model.strides[layer]
        shared = 1
        while layer + shared < len(model.strides) and model.strides[layer + shared] == stride:
            shared += 1
        side = -(-model.input_size // stride)
        rows, columns = np.mgrid[0:side, 0:side]
        cells = np.stack([(columns + 0.5) / side, (rows + 0.5) / side], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(cells, shared * model.anchors_per_layer, axis=0))
        layer += shared
    return np.concatenate(centres).astype(np.float32)


class Letterbox(NamedTuple):
    """Where an image went in the model's square input: scaled by `scale`, its top left corner at (left, top)."""

    scale: float
    left: float
    top: float

    def to_image(self, points: np.ndarray, input_size: int) -> np.ndarray:
        """Points in [0, 1] of the model's input, in the image's pixels."""
        return (points * input_size - (self.left, self.top)) / self.scale


def letterbox(image: np.ndarray, input_size: int) -> tuple[np.ndarray, Letterbox]:
    """`image` (grey or RGB uint8) scaled to fit an input_size square, centred on a zero border, as the model's
    float32 input [1, S, S, 3] in [-1, 1]; and where it went."""
    height, width = image.shape[:2]
    scale = input_size / max(height, width)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    # Area averaging when shrinking, so that a large photo's fine texture does not alias into the small input.
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_width, new_height), interpolation=method)
    if resized.ndim == 2:
        resized = resized[:, :, np.newaxis]  # one grey channel, broadcast over the input's three
    left, top = (input_size - new_width) // 2, (input_size - new_height) // 2
    tensor = np.zeros((1, input_size, input_size, 3), np.float32)
    tensor[0, top:top + new_height, left:left + new_width] = resized[:, :, :3] / np.float32(127.5) - 1
    return tensor, Letterbox(scale, left, top)


def decode(regressors: np.ndarray, logits: np.ndarray, model: BlazeFaceModel, anchors: np.ndarray,
           min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The anchors scoring at least `min_score`: their boxes [M, 4] (x_min, y_min, x_max, y_max), keypoints
    [M, 6, 2] and scores [M], in [0, 1] of the model's input.

    regressors [N, 16]: box centre offset from the anchor, box width and height, then each keypoint's offset
    from the anchor, all (x, y) in input pixels. logits [N]: one raw score per anchor.
    """
    scores = 1 / (1 + np.exp(-np.clip(logits.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
    keep = scores >= min_score
    values, centres = regressors[keep] / model.input_size, anchors[keep]
    middle, size = values[:, 0:2] + centres, values[:, 2:4]
    boxes = np.concatenate([middle - size / 2, middle + size / 2], axis=1)
    keypoints = values[:, 4:16].reshape(-1, len(KEYPOINTS), 2) + centres[:, None, :]
    return boxes, keypoints, scores[keep]


def overlaps(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x_min, y_min, x_max, y_max) box with each of `boxes`."""
    low, high = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    intersection = np.prod(np.clip(high - low, 0, None), axis=1)
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = np.prod(box[2:] - box[:2]) + areas - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)


def weighted_merge(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                   overlap: float = MERGE_OVERLAP) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """BlazeFace's alternative to non-maximum suppression: from the best-scoring detection down, each one and all
    the others overlapping it by more than `overlap` become one, their boxes and keypoints averaged weighted by
    score, keeping the best score. Neighbouring anchors see the same face; averaging them steadies the box."""
    merged = []
    remaining = np.argsort(-scores, kind="stable")
    while remaining.size:
        best = remaining[0]
        together = overlaps(boxes[best], boxes[remaining]) > overlap
        together[0] = True  # a degenerate box still counts itself
        group = remaining[together]
        weights = scores[group] / scores[group].sum()
        merged.append((np.tensordot(weights, boxes[group], 1), np.tensordot(weights, keypoints[group], 1),
                       float(scores[best])))
        remaining = remaining[~together]
    return merged


def face_like(found: Detection) -> bool:
    """Whether a detection is sure enough to be a face: a confident score, or a face's proportions."""
    if found.score >= CONFIDENT_SCORE:
        return True
    eyes = found.keypoints[:2].mean(axis=0)
    return bool(np.linalg.norm(found.keypoints[3] - eyes) >= MIN_MOUTH_DISTANCE * found.w)


class BlazeFace:
    """One BlazeFace model, callable on an image: its faces, best first. Each thread runs its own interpreter."""

    def __init__(self, model: BlazeFaceModel = SHORT_RANGE):
        self.model = model
        self._flatbuffer = model.path.read_bytes()
        self._anchors = anchor_centres(model)
        self._per_thread = threading.local()

    def _interpreter(self):
        if not hasattr(self._per_thread, "interpreter"):
            runner = tflite.interpreter(self._flatbuffer, MAX_THREADS)
            (image,) = runner.get_input_details()
            outputs = sorted(runner.get_output_details(), key=lambda detail: -detail["shape"][-1])
            # Two outputs: the regressors [1, N, 16] and the scores [1, N, 1]; their names differ between models.
            self._per_thread.interpreter = (runner, image["index"], outputs[0]["index"], outputs[1]["index"])
        return self._per_thread.interpreter

    def load(self) -> None:
        """Makes the calling thread's interpreter now (for a Beam DoFn's setup), not on first use."""
        self._interpreter()

    def __call__(self, image: np.ndarray, min_score: float | None = None) -> list[Detection]:
        """The faces in a grey or RGB uint8 image, best first: those scoring at least `min_score` (default: the
        model's) that are face_like."""
        runner, image_index, regressors_index, scores_index = self._interpreter()
        tensor, placed = letterbox(image, self.model.input_size)
        runner.set_tensor(image_index, tensor)
        runner.invoke()
        boxes, keypoints, scores = decode(runner.get_tensor(regressors_index)[0],
                                          runner.get_tensor(scores_index)[0, :, 0], self.model, self._anchors,
                                          self.model.min_score if min_score is None else min_score)
        found = []
        for box, points, score in weighted_merge(boxes, keypoints, scores):
            (left, top), (right, bottom) = placed.to_image(box.reshape(2, 2), self.model.input_size)
            face = Detection(float(left), float(top), float(right - left), float(bottom - top), score,
                             placed.to_image(points, self.model.input_size).astype(np.float32))
            if face_like(face):
                found.append(face)
        return found
