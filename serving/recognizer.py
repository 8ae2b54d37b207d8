"""The Recognizer: the emotion of every face in photos, videos and capture streams, from an export or a server.

Every frame goes through the steps training went through, so the model sees faces as it learnt them:

1. detect faces and their 68 landmarks (emopy_tfds.faces, dlib);
2. crop and align each face with the FaceSpec saved in the model's assets;
3. classify the uint8 crops (and their landmarks) through the export's `pixels` signature (locally with
   tf.saved_model.load, or over gRPC through serving.client.EmotionClient); the model scales them itself.

Results are serving.tables prediction tables, one row per face per frame; videos and streams keep face ids
across frames with serving.tracking and read and write frames with serving.video.

    recognizer = Recognizer.from_export("exports/emotion")           # BASE/N, or BASE for its highest N
    table = recognizer.predict("group.jpg")                          # photos and videos alike
    for rows in recognizer.stream(cv2.VideoCapture(0), every=3, smoothing=0.6):
        ...                                                          # one DataFrame per sampled frame
"""

from __future__ import annotations

import dataclasses
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TextIO

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from emopy_tfds import faces, labels
from emopy.pipeline import overlay
from emopy.serving import layout, shipped, tflite
from emopy.serving.layout import DEFAULT_MODEL_NAME, FACE_SPEC_SIGNATURE, PIXELS_SIGNATURE
from emopy.serving.tables import LEADING_COLUMNS, TRAILING_COLUMNS, concat_tables, empty_table, face_table
from emopy.serving.tls import ClientTls
from emopy.serving.tracking import FaceTracker
from emopy.serving.video import (FALLBACK_FPS, FRAMES_IN_FLIGHT, FULL_SCAN_SECONDS, LIVE_WINDOW, QUIT_KEYS, Capture, VideoError,
                           _classified_ahead, _frame_rate, _read_frames, _VideoSink, has_gui, is_video)


# Probabilities [B, K] of B aligned crops: uint8 pixels [B, S, S, C] and, for models that take them,
# landmarks [B, 68, 2] in crop pixels (None otherwise).
Classifier = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


# --- The model's input --------------------------------------------------------------------------------


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

# --- Exports and servers ------------------------------------------------------------------------------


def _landmark_ring(size: int) -> np.ndarray:
    # 68 distinct points on a circle inside a crop: a harmless landmark input for a call made only to learn
    # the class names (coincident points would make the landmark features divide by zero).
    angles = np.linspace(0.0, 2.0 * np.pi, faces.NUM_LANDMARKS, endpoint=False)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32) * size / 3 + size / 2


# --- Drawing ------------------------------------------------------------------------------------------


def caption(row: pd.Series) -> str:
    """A face's label on annotated pictures: id, top emotion and its probability."""
    return f"#{int(row['face_id'])} {row['top_emotion']} {float(row[row['top_emotion']]):.0%}"


def annotate(rgb: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    """A copy of an RGB image or frame with each row's box, landmark points and caption drawn on it."""
    found = [faces.Face(faces.Box(*row["box"]), np.asarray(row["landmarks"])) for _, row in table.iterrows()]
    return overlay.draw_faces(rgb, found, [caption(row) for _, row in table.iterrows()])


# --- Recognizer ---------------------------------------------------------------------------------------


class Recognizer:
    """Faces in, emotions out: detection, the model's own crop and alignment, and a classifier (local or served).

    Build one with `default()` (a model emopy ships), `from_export` or `from_server`; call `close()` (or use
    `with`) when done with a server.
    upsample: doubles the image before HOG or the CNN detector looks this many times (smaller faces found, ~4x
      slower each); BlazeFace always looks at a 128x128 copy.
    detector: "auto", "blazeface", "hog" or "cnn" (faces.DETECTORS); None takes the one the face spec records ("auto"
      unless the model's dataset was built with another). On video, `auto`'s fallbacks (HOG doubled, then the CNN
      detector) run only on the first frame without a face and where BlazeFace loses a face it was tracking.
    cropped: each image already is one face crop (fer2013's, another detector's output): no detection, the whole
      image is the face, framed as the fer2013 builder frames such crops (faces.crop_as_given).
    max_pixels: photos (files, bytes) whose header declares more pixels are refused before decoding; from_export
      takes the limit the export's signatures apply (layout.max_image_pixels).
    """

    def __init__(self, classify: Classifier, classes: Sequence[str], face_spec: faces.FaceSpec, inputs: ModelInput,
                 *, upsample: int = 0, detector: str | None = None, landmark_model: str | os.PathLike | None = None,
                 cropped: bool = False, close: Callable[[], None] | None = None,
                 max_pixels: int = faces.MAX_IMAGE_PIXELS):
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
        self.max_pixels = max_pixels
        self._close = close
        self._workers: ThreadPoolExecutor | None = None

    @classmethod
    def default(cls, name: str | None = None, **options: Any) -> "Recognizer":
        """A model emopy ships, by name (serving.shipped.SHIPPED; None: the default one); options as for
        from_export."""
        return cls.from_export(shipped.base_path(name), **options)

    @classmethod
    def from_export(cls, path: str | os.PathLike, *, upsample: int = 0, detector: str | None = None,
                    landmark_model: str | os.PathLike | None = None, cropped: bool = False) -> "Recognizer":
        """From a local export: BASE/N, or BASE (its highest version). Runs the `pixels` signature in-process,
        so crops go to the model as arrays, never encoded: through the export's TFLite copy of it where there is
        one (serving/tflite.py: the same probabilities, 3x as fast at batch 1), else through the SavedModel."""
        version_dir = layout.resolve_export(path)
        class_names, face_spec, _ = layout.read_assets(version_dir)
        max_pixels = layout.max_image_pixels(version_dir)
        fast = tflite.classifier(version_dir)
        if fast is not None:
            return cls(fast, class_names, face_spec, model_input(fast.input_shapes), upsample=upsample,
                       detector=detector, landmark_model=landmark_model, cropped=cropped, max_pixels=max_pixels)

        import tensorflow as tf  # tensorflow: heavy, needed only for a local export

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
                   landmark_model=landmark_model, cropped=cropped, max_pixels=max_pixels)

    @classmethod
    def from_server(cls, target: str, model_name: str = DEFAULT_MODEL_NAME, *, face_spec: faces.FaceSpec | None = None,
                    class_names: Sequence[str] | None = None, timeout: float = 10.0, upsample: int = 0,
                    detector: str | None = None, landmark_model: str | os.PathLike | None = None,
                    cropped: bool = False, tls: ClientTls | None = None,
                    max_pixels: int = faces.MAX_IMAGE_PIXELS) -> "Recognizer":
        """From TF Serving (or `emopy serve`) at "host:port" (gRPC, over TLS with `tls`), classifying through the
        `pixels` signature.

        It does not learn the server's pixel limit (its export's `--max-image-pixels`): TF Serving's API does not
        tell it, and the `pixels` signature it calls takes face crops, to which no limit applies. Photos are read
        here, and refused here when their header declares more than `max_pixels` (default: the photo reader's
        limit, faces.MAX_IMAGE_PIXELS); pass the export's limit (layout.max_image_pixels) to refuse what it does.

        A server does not hand out an export's assets, so what they hold comes from elsewhere:
        - the crop size, channels and landmark input: from GetModelMetadata (the `pixels` signature's shapes);
        - the FaceSpec and the class names: `face_spec` and `class_names` if given, else the export's own, from
          its `face_spec` signature (EmotionClient.model_assets).
        Exports made before emopy wrote that signature lack it; for them the class names come from one Classify
        call on a blank crop, whose answer lists every class in the model's order (the scores are ignored), and
        the FaceSpec is FaceSpec(crop_size=S, grayscale=C == 1) with the default margin and alignment, which is
        what `emopy train` uses unless a dataset was built with another: pass the export's own
        (layout.read_assets, or `--model DIR` with `--server`) to be sure.
        """
        from emopy.serving.client import EmotionClient  # the client: grpc and tensorflow, needed only for a server

        client = EmotionClient(target, model_name, timeout=timeout, tls=tls)
        try:
            signatures = client.metadata()
            if PIXELS_SIGNATURE not in signatures:
                raise ValueError(f"model {model_name!r} at {target} has no {PIXELS_SIGNATURE!r} signature "
                                 f"(signatures: {', '.join(signatures)})")
            inputs = model_input({name: tensor["shape"]
                                  for name, tensor in signatures[PIXELS_SIGNATURE]["inputs"].items()})
            if (face_spec is None or class_names is None) and FACE_SPEC_SIGNATURE in signatures:
                served_spec, served_names = client.model_assets()
                face_spec, class_names = face_spec or served_spec, class_names or served_names
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
                   landmark_model=landmark_model, cropped=cropped, max_pixels=max_pixels, close=client.close)

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

    def classify_faces(self, rgb: np.ndarray, *, detector: str | None = None, fallback: bool = True,
                       near: Sequence[faces.Box] = (), upsample: int | None = None
                       ) -> tuple[list[faces.Face], np.ndarray]:
        """The faces of an RGB image, largest first, and their probabilities [B, K].

        detector, upsample: this call's instead of the Recognizer's; fallback=False keeps `auto` to BlazeFace alone.
        near: where faces were in a recent frame of the same video, to look there first (faces.find_faces).
        """
        if self.cropped:
            face, aligned = faces.crop_as_given(rgb, self.face_spec, landmark_model=self.landmark_model)
            return [face], self.classify_crops([aligned.image], aligned.landmarks[np.newaxis])
        found, crops, points = [], [], []
        upsample = self.upsample if upsample is None else upsample
        for face in faces.find_faces(rgb, upsample=upsample, detector=detector or self.detector,
                                     fallback=fallback, near=near, landmark_model=self.landmark_model):
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
        probabilities = self._classify(np.stack(crops), points)
        return np.asarray(probabilities, dtype=np.float64)

    def predict_frame(self, image: faces.ImageLike, *, file: str = "<image>", frame: int = 0,
                      seconds: float = 0.0) -> pd.DataFrame:
        """Rows for the faces of one image (path, bytes or RGB array); face ids 0, 1, ... largest first."""
        found, probabilities = self.classify_faces(faces.load_image(image, max_pixels=self.max_pixels))
        return face_table(found, probabilities, range(len(found)), self.classes, file=file, frame=frame,
                          seconds=seconds)

    def predict_image(self, path: str | os.PathLike, *, annotate_to: str | os.PathLike | None = None) -> pd.DataFrame:
        """Rows for the faces of a photo; raises faces.ImageError naming the file if it cannot be read."""
        rgb = faces.load_image(path, max_pixels=self.max_pixels)
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
        frame's table comes once the next FRAMES_IN_FLIGHT - 1 sampled frames have been read and started. Faces
        are followed: HOG looks for each only near where the latest tabled frame had it, and the whole frame is
        searched every FULL_SCAN_SECONDS of video, and wherever a followed face is not found near its last box.

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
        scan_every = max(1, round(FULL_SCAN_SECONDS * (fps or FALLBACK_FPS)))
        last_scan = -scan_every

        def start(index: int, bgr: np.ndarray) -> Future:
            # Where faces are being followed, HOG looks for them near their last boxes only (a seventh of the
            # cost), and scans the whole frame for new faces every FULL_SCAN_SECONDS.
            nonlocal last_scan
            near = tracker.visible_boxes() if index - last_scan < scan_every else []
            if not near:
                last_scan = index
            return self._worker_pool().submit(self._classify_bgr, bgr, near=near)

        # Classifying ahead pays because dlib and TensorFlow Lite let go of the GIL: the next frames' faces are
        # found while this one's are tracked, tabled and drawn.
        ahead = _classified_ahead(_read_frames(capture, fps, max_frames, bar), every, start,
                                  all_frames=sink is not None or show)
        try:
            for index, seconds, bgr, classified in ahead:
                if classified is not None:
                    found, probabilities = classified.result()
                    if self.detector == "auto":
                        found, probabilities = self._rescue(bgr, index, tracker, found, probabilities)
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

    def _classify_bgr(self, bgr: np.ndarray, detector: str | None = None, near: Sequence[faces.Box] = (),
                      upsample: int | None = None) -> tuple[list[faces.Face], np.ndarray]:
        # Frames classified ahead use BlazeFace alone under `auto`; stream() decides where the fallbacks look.
        return self.classify_faces(faces.load_image(bgr, channel_order="bgr"), detector=detector, fallback=False,
                                   near=near, upsample=upsample)

    def _rescue(self, bgr: np.ndarray, index: int, tracker: FaceTracker, found: list[faces.Face],
                probabilities: np.ndarray) -> tuple[list[faces.Face], np.ndarray]:
        """`auto`'s fallbacks on a video frame, in auto's order, while BlazeFace has lost a face it was following,
        or found none on the first frame; each looks near where the faces were first, as BlazeFace does."""
        for detector, more in faces.detection.AUTO_ORDER[1:]:
            if len(found) >= tracker.visible() and (index or found):
                break
            rescued = self._classify_bgr(bgr, detector=detector, near=tracker.visible_boxes(),
                                         upsample=self.upsample + more)
            found, probabilities = max((found, probabilities), rescued, key=lambda f: len(f[0]))
        return found, probabilities

    def predict(self, path: str | os.PathLike, **video_options: Any) -> pd.DataFrame:
        """A photo's or a video's rows, told apart by the file's extension (video options: see predict_video)."""
        if is_video(path):
            return self.predict_video(path, **video_options)
        return self.predict_image(path, annotate_to=video_options.get("annotate_to"))
