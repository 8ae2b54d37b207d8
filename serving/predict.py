"""`emopy predict`: the emotion of every face in photos, videos and webcam streams, from an export or a server.

Every frame goes through the steps training went through, so the model sees faces as it learnt them:

1. detect faces and their 68 landmarks (emopy_tfds.faces, dlib);
2. crop and align each face with the FaceSpec saved in the model's assets;
3. classify the uint8 crops (and their landmarks) through the export's `pixels` signature (locally with
   tf.saved_model.load, or over gRPC through serving.client.EmotionClient); the model scales them itself.

Results are pandas DataFrames with one row per face per frame, columns in this order:

    file, frame, time, face_id, box, landmarks, <one probability column per class, named by the class>,
    top_emotion, valence, arousal, coarse_label

`box` is (x, y, w, h) and `landmarks` a float32 (68, 2) array, both in pixels of the original image or frame.
`time` is in seconds (0 for photos). `valence` and `arousal` are the probability-weighted circumplex
coordinates of emopy_tfds.labels, and `coarse_label` the top emotion's polarity (positive, negative or
neutral); a coarse-scheme model's class is its own coarse label and has no valence or arousal (NaN), and a
model whose classes are no known emotion label set (FACS action units) has neither (NaN, None).

    recognizer = Recognizer.from_export("exports/emotion")           # BASE/N, or BASE for its highest N
    table = recognizer.predict("group.jpg")                          # photos and videos alike
    for rows in recognizer.stream(cv2.VideoCapture(0), every=3, smoothing=0.6):
        ...                                                          # one DataFrame per sampled frame
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import importlib.util
import json
import math
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence, TextIO

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from emopy_tfds import faces, labels
from pipeline import overlay

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
OUTPUT_SUFFIXES = (".json", ".csv", ".parquet")
PIXELS_SIGNATURE = "pixels"
DEFAULT_MODEL_NAME = "emotion"

LEADING_COLUMNS = ("file", "frame", "time", "face_id", "box", "landmarks")
TRAILING_COLUMNS = ("top_emotion", "valence", "arousal", "coarse_label")

# Between two sampled frames a face moves a fraction of its size, so its boxes overlap far more than this;
# two different faces side by side overlap not at all.
MIN_TRACK_OVERLAP = 0.3
# Sampled frames a face may go undetected (turned away, blinked past the detector) and keep its id.
MAX_MISSED_FRAMES = 5
# A video that does not say its frame rate is written back at this rate when annotated.
FALLBACK_FPS = 25.0
LIVE_WINDOW = "emopy"
QUIT_KEYS = (ord("q"), 27)  # q or Esc closes the live window
# Sampled video frames being classified at once: one per core keeps both dlib and TensorFlow busy; more would
# only hold frames in memory and delay the rows.
FRAMES_IN_FLIGHT = max(2, min(4, os.cpu_count() or 1))


class VideoError(faces.ImageError):
    """A video that cannot be opened or has no readable frame."""


class Capture(Protocol):
    """What `Recognizer.stream` reads from: cv2.VideoCapture, or anything with the same three methods."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


# Probabilities [B, K] of B aligned crops: uint8 pixels [B, S, S, C] and, for models that take them,
# landmarks [B, 68, 2] in crop pixels (None otherwise).
Classifier = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


# --- The model's input and labels ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelInput:
    """What the `pixels` signature takes: square crops of `size` pixels with `channels`, and maybe landmarks."""

    size: int
    channels: int
    uses_landmarks: bool


def model_input(shapes: dict[str, Sequence[int | None] | None]) -> ModelInput:
    """The model input that the `pixels` signature's input shapes describe ({name: [None, S, S, C], ...}).

    Read from the signature rather than input_spec.json so that a local export and a server, whose assets
    a client cannot reach, are described the same way.
    """
    image = shapes.get("image")
    if image is None:
        raise ValueError(f"the model's {PIXELS_SIGNATURE!r} signature has no 'image' input (inputs: {sorted(shapes)})")
    if len(image) == 5:
        raise ValueError("this is a sequence model (it classifies clips of frames); emopy predict needs a model "
                         "that classifies single faces")
    if len(image) != 4 or image[1] is None or image[1] != image[2] or image[3] not in (1, 3):
        raise ValueError(f"the model's 'image' input should be [batch, S, S, 1 or 3], not {list(image)}")
    return ModelInput(size=int(image[1]), channels=int(image[3]), uses_landmarks="landmarks" in shapes)


def affect(probabilities: np.ndarray, classes: Sequence[str]
           ) -> tuple[list[str], np.ndarray, np.ndarray, list[str | None]]:
    """Top emotion, valence, arousal and coarse label of each row of probabilities [B, K]."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1, len(classes))
    top = [classes[i] for i in np.argmax(probabilities, axis=1)] if len(probabilities) else []
    missing = np.full(len(probabilities), np.nan)
    label_set = labels.label_set_of(classes)
    if label_set is None:  # FACS action units, or classes of no known scheme
        return top, missing, missing.copy(), [None] * len(top)
    if labels.SCHEMES[label_set].coarse:  # the class already is the coarse label
        return top, missing, missing.copy(), list(top)
    coordinates = labels.expected_valence_arousal(probabilities, label_set).reshape(-1, 2)
    polarity = labels.SCHEMES["pos_neg_neu"]
    return top, coordinates[:, 0], coordinates[:, 1], [polarity.class_of(name) for name in top]


def model_pixels(crops: Sequence[np.ndarray], channels: int) -> np.ndarray:
    """Aligned uint8 crops (S, S, C) as the uint8 batch [B, S, S, channels] that training fed."""
    batch = np.stack(crops)
    if batch.shape[-1] == 1 and channels == 3:
        batch = np.repeat(batch, 3, axis=-1)  # as pipeline.data does for gray datasets and RGB models
    return batch


# --- Exports and servers ------------------------------------------------------------------------------


def resolve_export(path: str | os.PathLike) -> Path:
    """The SavedModel folder: PATH itself if it holds saved_model.pb, else PATH's highest numeric version."""
    path = Path(path).expanduser()
    if (path / "saved_model.pb").is_file():
        return path
    versions = [child for child in path.iterdir() if child.name.isdigit() and (child / "saved_model.pb").is_file()] \
        if path.is_dir() else []
    if not versions:
        raise FileNotFoundError(f"{path}: neither a SavedModel nor a base path with numeric version folders "
                                f"(BASE/N, as `emopy export` writes)")
    return max(versions, key=lambda child: int(child.name))


def read_export_assets(export_dir: str | os.PathLike) -> tuple[list[str], faces.FaceSpec]:
    """Class names (assets/labels.txt) and FaceSpec (assets/face_spec.json) of an export version folder."""
    assets = Path(export_dir) / "assets"
    try:
        class_names = (assets / "labels.txt").read_text().splitlines()
        face_spec = faces.FaceSpec.from_json((assets / "face_spec.json").read_text())
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{export_dir}: not an emopy export (missing {error.filename})") from None
    return class_names, face_spec


def _landmark_ring(size: int) -> np.ndarray:
    # 68 distinct points on a circle inside a crop: a harmless landmark input for a call made only to learn
    # the class names (coincident points would make the landmark features divide by zero).
    angles = np.linspace(0.0, 2.0 * np.pi, faces.NUM_LANDMARKS, endpoint=False)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32) * size / 3 + size / 2


# --- Face tracking across frames ----------------------------------------------------------------------


def match_boxes(tracked: dict[int, faces.Box], boxes: Sequence[faces.Box], min_overlap: float = MIN_TRACK_OVERLAP
                ) -> list[int | None]:
    """For each box, the id of the tracked box it continues (greedy by overlap, each id once), or None."""
    pairs = sorted(((faces.box_overlap(box, previous), index, face_id)
                    for index, box in enumerate(boxes) for face_id, previous in tracked.items()), reverse=True)
    matched: list[int | None] = [None] * len(boxes)
    used: set[int] = set()
    for overlap, index, face_id in pairs:
        if overlap < min_overlap:
            break
        if matched[index] is None and face_id not in used:
            matched[index] = face_id
            used.add(face_id)
    return matched


def smooth(previous: np.ndarray | None, current: np.ndarray, smoothing: float) -> np.ndarray:
    """Exponential moving average of probabilities: smoothing * previous + (1 - smoothing) * current."""
    return current if previous is None else smoothing * previous + (1.0 - smoothing) * current


@dataclasses.dataclass
class _Track:
    box: faces.Box
    probabilities: np.ndarray
    missed: int = 0


class FaceTracker:
    """Gives faces ids that stay the same from frame to frame (by box overlap) and smooths their probabilities.

    One tracker follows one video or stream. `smoothing` in [0, 1): 0 keeps each frame's probabilities as they
    are; closer to 1 averages over more past frames (an exponential moving average per face id).
    """

    def __init__(self, smoothing: float = 0.0, *, min_overlap: float = MIN_TRACK_OVERLAP,
                 max_missed: int = MAX_MISSED_FRAMES):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self.min_overlap = min_overlap
        self.max_missed = max_missed
        self._tracks: dict[int, _Track] = {}
        self._next_id = 0

    def visible(self) -> int:
        """How many faces the latest frame had."""
        return sum(track.missed == 0 for track in self._tracks.values())

    def update(self, boxes: Sequence[faces.Box], probabilities: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Ids of this frame's faces and their smoothed probabilities [B, K]."""
        matched = match_boxes({i: track.box for i, track in self._tracks.items()}, boxes, self.min_overlap)
        ids, smoothed = [], []
        for box, face_id, current in zip(boxes, matched, probabilities):
            previous = None
            if face_id is None:
                face_id, self._next_id = self._next_id, self._next_id + 1
            else:
                previous = self._tracks[face_id].probabilities
            value = smooth(previous, np.asarray(current, dtype=np.float64), self.smoothing)
            self._tracks[face_id] = _Track(box, value)
            ids.append(face_id)
            smoothed.append(value)
        for face_id in [i for i in self._tracks if i not in ids]:
            self._tracks[face_id].missed += 1
            if self._tracks[face_id].missed > self.max_missed:
                del self._tracks[face_id]
        # A frame without faces keeps its [0, K] shape (reshaping an empty array to (0, -1) is an error).
        return ids, np.array(smoothed) if smoothed else np.zeros(np.shape(probabilities))


# --- Tables -------------------------------------------------------------------------------------------


def empty_table(classes: Sequence[str]) -> pd.DataFrame:
    """A table with the prediction columns and no rows."""
    return pd.DataFrame({name: pd.Series(dtype=object) for name in (*LEADING_COLUMNS, *classes, *TRAILING_COLUMNS)})


def probability_columns(table: pd.DataFrame) -> list[str]:
    """The class columns of a prediction table, in the model's class order."""
    return [name for name in table.columns if name not in LEADING_COLUMNS and name not in TRAILING_COLUMNS]


def face_table(found: Sequence[faces.Face], probabilities: np.ndarray, ids: Sequence[int], classes: Sequence[str],
               *, file: str, frame: int = 0, seconds: float = 0.0) -> pd.DataFrame:
    """One frame's rows: its faces, their ids and probabilities [B, K]."""
    if not found:
        return empty_table(classes)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    top, valence, arousal, coarse = affect(probabilities, classes)
    count = len(found)
    columns: dict[str, Any] = {
        "file": _cells([file] * count),
        "frame": np.full(count, frame, dtype=np.int64),
        "time": np.full(count, seconds, dtype=np.float64),
        "face_id": np.asarray(ids, dtype=np.int64),
        "box": _cells([tuple(int(v) for v in face.box) for face in found]),
        "landmarks": _cells([np.asarray(face.landmarks, dtype=np.float32) for face in found]),
    }
    columns.update({name: probabilities[:, k] for k, name in enumerate(classes)})
    columns.update({"top_emotion": _cells(top), "valence": valence, "arousal": arousal, "coarse_label": _cells(coarse)})
    # Every column is already an array of its final type, so pandas only wraps them: a table per video frame
    # costs a third of what building it from lists and Series does.
    return pd.DataFrame(columns, copy=False)


def _cells(values: Sequence[Any]) -> np.ndarray:
    # One object per cell, filled one by one: handed a list of arrays, NumPy would make a 3-D array of them.
    cells = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        cells[index] = value
    return cells


def concat_tables(tables: Iterable[pd.DataFrame], classes: Sequence[str]) -> pd.DataFrame:
    """Tables one after another, renumbered 0..n-1; the empty table if there is no row."""
    rows = [table for table in tables if len(table)]
    return pd.concat(rows, ignore_index=True) if rows else empty_table(classes)


def _plain(value: Any) -> Any:
    # JSON has no NaN: a missing valence or arousal is null.
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def to_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-able rows: box [x, y, w, h], landmarks [[x, y] * 68], probabilities {label: p}, NaN as None."""
    classes = probability_columns(table)
    records = []
    for row in table.to_dict("records"):
        record = {name: _plain(row[name]) for name in LEADING_COLUMNS[:4]}
        record["box"] = [int(v) for v in row["box"]]
        record["landmarks"] = np.asarray(row["landmarks"], dtype=np.float64).tolist()
        record["probabilities"] = {name: float(row[name]) for name in classes}
        record.update({name: _plain(row[name]) for name in TRAILING_COLUMNS})
        records.append(record)
    return records


def check_output_path(path: str | os.PathLike) -> None:
    """Raises ValueError, before any work is done, if predictions could not be written to `path`."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"{path}: the output must end in {', '.join(OUTPUT_SUFFIXES)}")
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ValueError(f"{path}: writing Parquet needs pyarrow, which is not installed "
                         f"(`pip install pyarrow`), or write .json or .csv instead")


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Writes predictions as .json (a list of row objects), .csv (box and landmarks as JSON text) or .parquet."""
    check_output_path(path)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        path.write_text(json.dumps(to_records(table), indent=1) + "\n")
        return
    flat = table.copy()
    # CSV cells are text, Parquet cells nested lists: neither stores numpy arrays or tuples as they are.
    boxes = [[int(v) for v in box] for box in flat["box"]]
    points = [np.asarray(p, dtype=np.float64).tolist() for p in flat["landmarks"]]
    if suffix == ".csv":
        flat["box"] = [json.dumps(box) for box in boxes]
        flat["landmarks"] = [json.dumps(p) for p in points]
        flat.to_csv(path, index=False)
    else:
        flat["box"], flat["landmarks"] = pd.Series(boxes, dtype=object), pd.Series(points, dtype=object)
        flat.to_parquet(path, index=False)


def table_lines(table: pd.DataFrame, file_width: int = 0) -> list[str]:
    """One readable line per face: file, frame, face id, top emotion and its probability."""
    return [f"{row['file']:<{file_width}}  frame {int(row['frame']):>5}  face {int(row['face_id']):>2}  "
            f"{row['top_emotion']:<10} {float(row[row['top_emotion']]):.3f}"
            for _, row in table.iterrows()]


# --- Drawing ------------------------------------------------------------------------------------------


def caption(row: pd.Series) -> str:
    """A face's label on annotated pictures: id, top emotion and its probability."""
    return f"#{int(row['face_id'])} {row['top_emotion']} {float(row[row['top_emotion']]):.0%}"


def annotate(rgb: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    """A copy of an RGB image or frame with each row's box, landmark points and caption drawn on it."""
    found = [faces.Face(faces.Box(*row["box"]), np.asarray(row["landmarks"])) for _, row in table.iterrows()]
    return overlay.draw_faces(rgb, found, [caption(row) for _, row in table.iterrows()])


def annotation_path(out: str | os.PathLike, source: str, *, several: bool, video: bool) -> Path:
    """Where a source's annotated copy goes: OUT (as .png, or .mp4 for videos), or OUT-<stem> for several."""
    out_path, suffix = Path(out), ".mp4" if video else ".png"
    if several:
        return out_path.with_name(f"{out_path.stem}-{Path(source).stem}{suffix}")
    return out_path if out_path.suffix.lower() == suffix else out_path.with_suffix(suffix)


def has_gui() -> bool:
    """Whether this OpenCV can open windows (opencv-python-headless cannot)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() != "NONE"
    return True  # an unusual build: let cv2.namedWindow say


class _VideoSink:
    """Annotated frames into an MP4 (mp4v) file, opened on the first frame, when it is known how large they are."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps, self._writer = path, fps, None

    def write(self, bgr: np.ndarray) -> None:
        if self._writer is None:
            height, width = bgr.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: cannot write a video there (check the folder exists)")
        self._writer.write(bgr)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def _frame_rate(capture: Capture) -> float | None:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if fps and math.isfinite(fps) and fps > 0 else None


def _read_frames(capture: Capture, fps: float | None, max_frames: int | None, bar: tqdm
                 ) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, seconds, BGR frame) until the capture ends or `max_frames` have been read."""
    start, index = time.monotonic(), 0
    while max_frames is None or index < max_frames:
        ok, bgr = capture.read()
        if not ok or bgr is None:
            return
        bar.update()
        yield index, (index / fps if fps else time.monotonic() - start), bgr
        index += 1


def _classified_ahead(frames: Iterable[tuple[int, float, np.ndarray]], every: int, workers: ThreadPoolExecutor,
                      classify: Callable[[np.ndarray], Any], *, all_frames: bool
                      ) -> Iterator[tuple[int, float, np.ndarray, Future | None]]:
    """Frames in order (every one with `all_frames`, else only every `every`-th) with, for every `every`-th,
    the Future of its classification, started up to FRAMES_IN_FLIGHT sampled frames before it is handed out."""
    waiting: collections.deque = collections.deque()
    in_flight = 0
    try:
        for index, seconds, bgr in frames:
            sampled = index % every == 0
            if not (sampled or all_frames):
                continue
            waiting.append((index, seconds, bgr, workers.submit(classify, bgr) if sampled else None))
            in_flight += sampled
            while in_flight >= FRAMES_IN_FLIGHT:
                frame = waiting.popleft()
                in_flight -= frame[3] is not None
                yield frame
        while waiting:
            yield waiting.popleft()
    finally:  # a stream that ended early leaves frames classified ahead of it
        for *_, classified in waiting:
            if classified is not None:
                classified.cancel()


# --- Recognizer ---------------------------------------------------------------------------------------


class Recognizer:
    """Faces in, emotions out: detection, the model's own crop and alignment, and a classifier (local or served).

    Build one with `default()` (the model emopy ships), `from_export` or `from_server`; call `close()` (or use
    `with`) when done with a server.
    upsample: doubles the image before detecting this many times (smaller faces found, ~4x slower each).
    detector: "auto", "hog" or "cnn" (faces.DETECTORS); None takes the one the face spec records ("auto" unless
      the model's dataset was built with another). On video, `auto` calls the CNN detector only on the first frame
      without a face and where HOG loses a face it was tracking.
    cropped: each image already is one face crop (fer2013's, another detector's output): no detection, the whole
      image is the face, framed as the fer2013 builder frames such crops (faces.crop_as_given).
    """

    def __init__(self, classify: Classifier, classes: Sequence[str], face_spec: faces.FaceSpec, inputs: ModelInput,
                 *, upsample: int = 0, detector: str | None = None, landmark_model: str | os.PathLike | None = None,
                 cropped: bool = False, close: Callable[[], None] | None = None):
        clashes = set(classes) & {*LEADING_COLUMNS, *TRAILING_COLUMNS}
        if clashes:
            raise ValueError(f"class names {sorted(clashes)} clash with the prediction table's columns")
        if face_spec.crop_size != inputs.size:
            raise ValueError(f"the FaceSpec crops {face_spec.crop_size} px faces but the model takes {inputs.size} px")
        if face_spec.channels == 3 and inputs.channels == 1:
            raise ValueError("the FaceSpec crops colour faces but the model takes gray ones")
        self._classify = classify
        self.classes = tuple(classes)
        self.face_spec = face_spec
        self.inputs = inputs
        self.label_set = labels.label_set_of(self.classes)
        # An image-only model never sees a crop's landmarks: refitting them on the crop (fer2013's framing) would
        # cost a second 68-point fit per face for nothing.
        self.crop_spec = face_spec if inputs.uses_landmarks else dataclasses.replace(face_spec, landmarks="photo")
        self.upsample = upsample
        self.detector = faces.detection.check_detector(detector or face_spec.detector)
        self.landmark_model = landmark_model
        self.cropped = cropped
        self._close = close
        self._workers: ThreadPoolExecutor | None = None

    @classmethod
    def default(cls, **options: Any) -> "Recognizer":
        """The model emopy ships (serving.default_model), trained on real fer2013; options as for from_export."""
        from serving import default_model

        return cls.from_export(default_model.base_path(), **options)

    @classmethod
    def from_export(cls, path: str | os.PathLike, *, upsample: int = 0, detector: str | None = None,
                    landmark_model: str | os.PathLike | None = None, cropped: bool = False) -> "Recognizer":
        """From a local export: BASE/N, or BASE (its highest version). Runs the `pixels` signature in-process,
        so crops go to the model as arrays, never encoded."""
        import tensorflow as tf

        version_dir = resolve_export(path)
        class_names, face_spec = read_export_assets(version_dir)
        loaded = tf.saved_model.load(str(version_dir))
        if PIXELS_SIGNATURE not in loaded.signatures:
            raise ValueError(f"{version_dir}: the SavedModel has no {PIXELS_SIGNATURE!r} signature")
        signature = loaded.signatures[PIXELS_SIGNATURE]
        _, specs = signature.structured_input_signature
        inputs = model_input({name: spec.shape.as_list() for name, spec in specs.items()})

        def classify(pixels: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
            feeds = {"image": tf.constant(pixels)}
            if landmarks is not None:
                feeds["landmarks"] = tf.constant(landmarks)
            # `loaded` owns the variables the signature reads; the closure keeps it alive.
            return loaded.signatures[PIXELS_SIGNATURE](**feeds)["probabilities"].numpy()

        return cls(classify, class_names, face_spec, inputs, upsample=upsample, detector=detector,
                   landmark_model=landmark_model, cropped=cropped)

    @classmethod
    def from_server(cls, target: str, model_name: str = DEFAULT_MODEL_NAME, *, face_spec: faces.FaceSpec | None = None,
                    class_names: Sequence[str] | None = None, timeout: float = 10.0, upsample: int = 0,
                    detector: str | None = None, landmark_model: str | os.PathLike | None = None,
                    cropped: bool = False) -> "Recognizer":
        """From TF Serving (or `emopy serve`) at "host:port" (gRPC), classifying through the `pixels` signature.

        A server does not hand out an export's assets, so what they hold comes from elsewhere:
        - the crop size, channels and landmark input: from GetModelMetadata (the `pixels` signature's shapes);
        - the class names: `class_names`, else one Classify call on a blank crop, whose answer lists every
          class in the model's order (the scores are ignored);
        - the FaceSpec: `face_spec`, else FaceSpec(crop_size=S, grayscale=C == 1) with the default margin and
          alignment, which is what `emopy train` uses unless a dataset was built with another. Pass the export's
          own (read_export_assets, or `--model DIR` with `--server`) to be sure.
        """
        from serving.client import EmotionClient

        client = EmotionClient(target, model_name, timeout=timeout)
        try:
            signatures = client.metadata()
            if PIXELS_SIGNATURE not in signatures:
                raise ValueError(f"model {model_name!r} at {target} has no {PIXELS_SIGNATURE!r} signature "
                                 f"(signatures: {', '.join(signatures)})")
            inputs = model_input({name: tensor["shape"]
                                  for name, tensor in signatures[PIXELS_SIGNATURE]["inputs"].items()})
            if class_names is None:
                blank = np.zeros((inputs.size, inputs.size, inputs.channels), np.uint8)
                ring = _landmark_ring(inputs.size) if inputs.uses_landmarks else None
                class_names = list(client.classify(blank, ring)[0])
        except BaseException:
            client.close()
            raise
        face_spec = face_spec or faces.FaceSpec(crop_size=inputs.size, grayscale=inputs.channels == 1)

        def classify(pixels: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
            return np.asarray(client.predict_pixels(pixels, landmarks)["probabilities"])

        return cls(classify, class_names, face_spec, inputs, upsample=upsample, detector=detector,
                   landmark_model=landmark_model, cropped=cropped, close=client.close)

    def close(self) -> None:
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
            self._workers = None
        if self._close is not None:
            self._close()
            self._close = None

    def _worker_pool(self) -> ThreadPoolExecutor:
        # Kept from one video to the next: each worker thread makes its own dlib detector once (0.3 s).
        if self._workers is None:
            self._workers = ThreadPoolExecutor(max_workers=FRAMES_IN_FLIGHT, thread_name_prefix="emopy-predict")
        return self._workers

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # --- One picture ---

    def classify_faces(self, rgb: np.ndarray, *, detector: str | None = None, fallback: bool = True
                       ) -> tuple[list[faces.Face], np.ndarray]:
        """The faces of an RGB image, largest first, and their probabilities [B, K].

        detector: this call's detector instead of the Recognizer's; fallback=False keeps `auto` to HOG alone.
        """
        if self.cropped:
            face, aligned = faces.crop_as_given(rgb, self.face_spec, landmark_model=self.landmark_model)
            return [face], self.classify_crops([aligned.image], aligned.landmarks[np.newaxis])
        found, crops, points = [], [], []
        for face in faces.find_faces(rgb, upsample=self.upsample, detector=detector or self.detector,
                                     fallback=fallback, landmark_model=self.landmark_model):
            try:
                aligned = faces.align_face(rgb, face.landmarks, self.crop_spec, landmark_model=self.landmark_model)
            except ValueError:  # a fit with both eyes on one point: no face to speak of
                continue
            found.append(face)
            crops.append(aligned.image)
            points.append(aligned.landmarks)
        if not found:
            return [], np.zeros((0, len(self.classes)))
        return found, self.classify_crops(crops, np.stack(points))

    def classify_crops(self, crops: Sequence[np.ndarray], landmarks: np.ndarray | None = None) -> np.ndarray:
        """Probabilities [B, K] of face crops already cut as `face_spec` says: uint8 (S, S, C) each, with their
        landmarks [B, 68, 2] in crop pixels for models that take landmarks."""
        if self.inputs.uses_landmarks and landmarks is None:
            raise ValueError("this model takes landmarks: pass each crop's 68 landmarks in crop pixels")
        points = np.asarray(landmarks, dtype=np.float32) if self.inputs.uses_landmarks else None
        probabilities = self._classify(model_pixels(crops, self.inputs.channels), points)
        return np.asarray(probabilities, dtype=np.float64)

    def predict_frame(self, image: faces.ImageLike, *, file: str = "<image>", frame: int = 0,
                      seconds: float = 0.0) -> pd.DataFrame:
        """Rows for the faces of one image (path, bytes or RGB array); face ids 0, 1, ... largest first."""
        found, probabilities = self.classify_faces(faces.load_image(image))
        return face_table(found, probabilities, range(len(found)), self.classes, file=file, frame=frame,
                          seconds=seconds)

    def predict_image(self, path: str | os.PathLike, *, annotate_to: str | os.PathLike | None = None) -> pd.DataFrame:
        """Rows for the faces of a photo; raises faces.ImageError naming the file if it cannot be read."""
        rgb = faces.load_image(path)
        table = self.predict_frame(rgb, file=str(path))
        if annotate_to is not None:
            overlay.save_rgb(str(annotate_to), annotate(rgb, table))
        return table

    # --- Videos and streams ---

    def predict_video(self, path: str | os.PathLike, *, every: int = 1, smoothing: float = 0.0,
                      annotate_to: str | os.PathLike | None = None, progress: bool = False,
                      progress_file: TextIO | None = None) -> pd.DataFrame:
        """Rows for every `every`-th frame of a video file, face ids stable across frames.

        Raises VideoError naming the file if it cannot be opened or has no readable frame.
        """
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            capture.release()
            raise VideoError(f"{path}: cannot open video (missing, corrupt or unsupported format)")
        tables = list(self.stream(capture, every=every, smoothing=smoothing, name=str(path), annotate_to=annotate_to,
                                  progress=progress, progress_file=progress_file))
        if not tables:
            raise VideoError(f"{path}: no readable video frame (corrupt or unsupported format)")
        return concat_tables(tables, self.classes)

    def stream(self, capture: Capture, *, every: int = 1, smoothing: float = 0.0, name: str = "webcam",
               annotate_to: str | os.PathLike | None = None, show: bool = False, max_frames: int | None = None,
               progress: bool = False, progress_file: TextIO | None = None) -> Iterator[pd.DataFrame]:
        """One table per sampled frame (every `every`-th, from the first), as frames arrive; empty without faces.

        Sampled frames are classified on the Recognizer's worker threads, up to FRAMES_IN_FLIGHT at once, so a
        frame's table comes once the next FRAMES_IN_FLIGHT - 1 sampled frames have been read and started.

        capture: cv2.VideoCapture(index or path) or anything with read()/get()/release(); released at the end.
        smoothing: per face id, an exponential moving average of probabilities (see FaceTracker).
        annotate_to: also write every frame, with the latest sampled frame's faces drawn, to this MP4.
        show: a live window with the same overlays (q or Esc ends the stream); needs an OpenCV with a GUI.
        max_frames: stop after reading this many frames (a webcam never ends by itself).
        `time` is the frame's index over the capture's frame rate, or, if it has none, the seconds from the start
        to when the frame was read.
        """
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        if show and not has_gui():
            raise RuntimeError("this OpenCV has no GUI (opencv-python-headless) and cannot show a live window: "
                               "stream without it, or install opencv-python")
        tracker = FaceTracker(smoothing)
        fps = _frame_rate(capture)
        sink = None if annotate_to is None else _VideoSink(Path(annotate_to), fps or FALLBACK_FPS)
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        bar = tqdm(total=total if total > 0 else None, desc=Path(name).name, unit="frame", leave=False,
                   file=progress_file or sys.stderr, disable=not progress)
        latest = empty_table(self.classes)
        # Classifying ahead pays because dlib and TensorFlow let go of the GIL: the next frames' faces are found
        # while this one's are tracked, tabled and drawn.
        ahead = _classified_ahead(_read_frames(capture, fps, max_frames, bar), every, self._worker_pool(),
                                  self._classify_bgr, all_frames=sink is not None or show)
        try:
            for index, seconds, bgr, classified in ahead:
                if classified is not None:
                    found, probabilities = classified.result()
                    if self.detector == "auto" and (tracker.visible() > len(found) or (index == 0 and not found)):
                        # HOG lost a face it was following, or found none to start from: the CNN detector looks.
                        found, probabilities = max(
                            (found, probabilities), self._classify_bgr(bgr, detector="cnn"), key=lambda f: len(f[0]))
                    ids, probabilities = tracker.update([face.box for face in found], probabilities)
                    latest = face_table(found, probabilities, ids, self.classes, file=name, frame=index,
                                        seconds=seconds)
                    yield latest
                if sink is None and not show:
                    continue  # only sampled frames come
                # Frames between samples keep the last sample's overlays, so the annotated video keeps its pace.
                drawn = cv2.cvtColor(annotate(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), latest), cv2.COLOR_RGB2BGR)
                if sink is not None:
                    sink.write(drawn)
                if show:
                    cv2.imshow(LIVE_WINDOW, drawn)
                    if cv2.waitKey(1) & 0xFF in QUIT_KEYS:
                        break
        finally:
            ahead.close()
            bar.close()
            capture.release()
            if sink is not None:
                sink.close()
            if show:
                cv2.destroyWindow(LIVE_WINDOW)

    def _classify_bgr(self, bgr: np.ndarray, detector: str | None = None) -> tuple[list[faces.Face], np.ndarray]:
        # Frames classified ahead use HOG alone under `auto`; stream() decides where the CNN detector looks.
        return self.classify_faces(faces.load_image(bgr, channel_order="bgr"), detector=detector, fallback=False)

    def predict(self, path: str | os.PathLike, **video_options: Any) -> pd.DataFrame:
        """A photo's or a video's rows, told apart by the file's extension (video options: see predict_video)."""
        if is_video(path):
            return self.predict_video(path, **video_options)
        return self.predict_image(path, annotate_to=video_options.get("annotate_to"))


# --- Inputs -------------------------------------------------------------------------------------------


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _is_media(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES


def expand_inputs(inputs: Sequence[str]) -> tuple[list[str], list[str], bool]:
    """The files that inputs name (files as given; directories' images and videos; glob matches), errors for
    inputs that name nothing, and whether any input was a directory. Files in a directory or glob that are
    neither image nor video are left out; a file named on its own is always tried."""
    files, errors, from_directory = [], [], False
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            from_directory = True
            found = sorted(str(child) for child in path.iterdir() if _is_media(child))
            files += found
            if not found:
                errors.append(f"{item}: no images or videos in this directory")
        elif path.exists() or not glob.has_magic(item):
            files.append(str(path) if path.exists() else item)
        else:
            found = sorted(match for match in glob.glob(str(path), recursive=True) if _is_media(Path(match)))
            files += found
            if not found:
                errors.append(f"{item}: no images or videos match")
    return files, errors, from_directory


def _one_line(error: BaseException, name: str) -> str:
    text = " ".join(str(error).split())
    return text if text.startswith(name) else f"{name}: {text}"


# --- `emopy predict` ----------------------------------------------------------------------------------


def _recognizer(model: str | None, server: str | None, model_name: str, **options: Any) -> Recognizer:
    if server:
        class_names, face_spec = read_export_assets(resolve_export(model)) if model else (None, None)
        return Recognizer.from_server(server, model_name, face_spec=face_spec, class_names=class_names, **options)
    return Recognizer.from_export(model, **options) if model else Recognizer.default(**options)


def run(
    inputs: Sequence[str],
    *,
    model: str | None = None,
    server: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    webcam: int | None = None,
    output: str | None = None,
    annotate_to: str | None = None,
    every: int = 1,
    smoothing: float = 0.0,
    show: bool = False,
    upsample: int = 0,
    detector: str | None = None,
    landmark_model: str | None = None,
    cropped: bool = False,
    progress: bool | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Runs `emopy predict`; returns the exit status: 0, 1 if some input could not be read (each one named in
    one line on stderr, the others still processed), 2 if nothing could be done (bad model, output or options).

    progress: tqdm bars on stderr for videos and directories; None shows them when stderr is a terminal.
    """
    import grpc

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    progress = stderr.isatty() if progress is None else progress

    def fail(message: str) -> int:
        print(f"emopy: error: {message}", file=stderr)
        return 2

    if bool(inputs) == (webcam is not None):
        return fail("give INPUT files, directories or globs, or --webcam N (not both)")
    if every < 1:
        return fail(f"--every must be at least 1, got {every}")
    if not 0.0 <= smoothing < 1.0:
        return fail(f"--smoothing must be in [0, 1), got {smoothing}")
    if show and webcam is None:
        return fail("--show is for --webcam")
    if show and not has_gui():
        return fail("this OpenCV has no GUI (opencv-python-headless) and cannot show a live window: "
                    "leave out --show to stream rows, or install opencv-python")
    try:
        if output:
            check_output_path(output)
        recognizer = _recognizer(model, server, model_name, upsample=upsample, detector=detector,
                                 landmark_model=landmark_model, cropped=cropped)
    except (ValueError, OSError, grpc.RpcError) as error:
        return fail(" ".join(str(error).split()))

    tables: list[pd.DataFrame] = []
    failures = 0
    try:
        with recognizer:
            if webcam is not None:
                capture = cv2.VideoCapture(webcam)
                if not capture.isOpened():
                    capture.release()
                    return fail(f"cannot open webcam {webcam}")
                name = f"webcam:{webcam}"
                annotated = annotation_path(annotate_to, name, several=False, video=True) if annotate_to else None
                try:
                    for table in recognizer.stream(capture, every=every, smoothing=smoothing, name=name,
                                                   annotate_to=annotated, show=show):
                        tables.append(table)
                        if not output:
                            for line in table_lines(table):
                                print(line, file=stdout, flush=True)
                except KeyboardInterrupt:  # how a headless stream ends; what came so far is kept
                    pass
            else:
                files, errors, from_directory = expand_inputs(inputs)
                for message in errors:
                    print(f"emopy: error: {message}", file=stderr)
                failures += len(errors)
                width = max((len(f) for f in files), default=0)
                for path in tqdm(files, unit="file", file=stderr, disable=not (progress and from_directory)):
                    video = is_video(path)
                    annotated = (annotation_path(annotate_to, path, several=len(files) > 1, video=video)
                                 if annotate_to else None)
                    try:
                        if video:
                            table = recognizer.predict_video(path, every=every, smoothing=smoothing,
                                                             annotate_to=annotated, progress=progress,
                                                             progress_file=stderr)
                        else:
                            table = recognizer.predict_image(path, annotate_to=annotated)
                    except faces.LandmarkModelNotFoundError:
                        raise
                    except (faces.ImageError, OSError) as error:
                        print(f"emopy: error: {_one_line(error, path)}", file=stderr)
                        failures += 1
                        continue
                    tables.append(table)
                    if not output:
                        lines = table_lines(table, width) or [f"{path:<{width}}  no face found"]
                        print("\n".join(lines), file=stdout, flush=True)
    except (faces.LandmarkModelNotFoundError, grpc.RpcError) as error:  # no input would fare better
        return fail(" ".join(str(error).split()))
    if output:
        try:
            write_table(concat_tables(tables, recognizer.classes), output)
        except OSError as error:
            return fail(_one_line(error, output))
    return 1 if failures else 0
