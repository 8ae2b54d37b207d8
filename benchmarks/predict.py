"""Benchmark of `emopy predict`: end-to-end latency per photo against detection alone, video and directory rates.

Run: python benchmarks/predict.py [--repeats 30] [--export BASE|NAME] [--workdir DIR]

1. The model: --export BASE (an `emopy export` base path, or one of its BASE/N) or a shipped model's name, else
   the default shipped model (serving.shipped), cropped with its own face_spec.json.
2. The picture: the head and shoulders of emopy's sample photo (the astronaut, no test extras needed), 1.8x, on
   a gray 640x480 frame, so the face is about 105 px (dlib's box), as a webcam's would be.
3. Measured, in the same run:
   - per 640x480 photo, p50 of --repeats runs each, the two interleaved so that load from other processes
     falls on both alike: end to end, Recognizer.from_export(BASE).predict_frame(rgb) (detect, 68 landmarks,
     align, classify through the Recognizer's classifier, the table), against detection alone
     (faces.detect_faces, dlib's HOG detector, no upsampling, which every frame needs whatever comes after);
     and the stages between: detect + landmarks (faces.find_faces), align, the Recognizer's classifier (the export's
     TFLite copy of `pixels`, serving/tflite.py) beside the SavedModel's `pixels` signature, which TF Serving runs;
   - frames per second on a video: 60 frames of 640x480 (the face shifting 1 px a frame), written with
     cv2.VideoWriter to a temp .mp4, read by Recognizer.predict_video(path, every=1) (decoding included), which
     classifies up to predict.FRAMES_IN_FLIGHT frames at once on worker threads; and, as its baseline, the same
     frames one after another through predict_frame (decoded in memory beforehand);
   - images per second on a directory: 30 640x480 photos (PNG, one face each, 2 px apart), each through
     Recognizer.predict(file) (reading and decoding included), as `emopy predict DIR` does per file;
   - per detector (hog, blazeface, auto, cnn): video fps through predict_video on the same video (cnn on its first
     CNN_VIDEO_FRAMES frames), and under auto on a hard video: the same face with its mouth covered from the middle
     on, which HOG loses (BlazeFace still finds it; before BlazeFace, the CNN detector paid for every such frame).
   - the HOG path end to end: the same photo through a Recognizer with detector="hog", as emopy predicted before
     `auto` began with BlazeFace.
Targets: end-to-end p50 under `auto` at most half the HOG path's; end to end <= 1.3x detection alone (HOG): the
model and alignment add at most 30% to what finding the face cost; classifying one face at most 3 ms; video under
auto at least 10x real time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

# Run as a script, this folder comes first on sys.path, and benchmarks/serving.py would hide the serving package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

TARGET_RATIO = 1.3
MAX_CLASSIFY_MS = 3.0
REAL_TIME_FPS = 30.0
VIDEO_FRAMES, VIDEO_FPS = 60, 30.0
DIRECTORY_PHOTOS = 30
CNN_VIDEO_FRAMES = 10
AUTO_VIDEO_TARGET = 10.0
HOG_PATH_TARGET = 2.0


def frame_640x480(photo: np.ndarray, shift: int = 0) -> np.ndarray:
    """The sample photo's head and shoulders, 1.8x, centred on a gray 640x480 frame and `shift` px right (-80..80).

    Head and shoulders only: lower down, the chest of the suit passes for a second face at some shifts.
    """
    top = photo[:200, 30:290]
    scaled = cv2.resize(top, None, fx=1.8, fy=1.8, interpolation=cv2.INTER_CUBIC)
    height, width = scaled.shape[:2]
    frame = np.full((480, 640, 3), 128, np.uint8)
    y, x = (480 - height) // 2, (640 - width) // 2 + shift
    frame[y:y + height, x:x + width] = scaled
    return frame


def p50_ms(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median time of each call over `repeats` rounds, the calls interleaved within a round, in ms."""
    for call in calls.values():  # warm up: lazy model loads, tf.function traces and caches stay out
        call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def write_video(path: Path, photo: np.ndarray, frames: int = VIDEO_FRAMES, cover_from: int | None = None) -> None:
    """`frames` frames of the shifting face; from frame `cover_from` on, its nose and mouth covered."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (640, 480))
    if not writer.isOpened():
        sys.exit(f"cv2.VideoWriter cannot write {path}")
    for index in range(frames):
        frame = frame_640x480(photo, index - VIDEO_FRAMES // 2)
        if cover_from is not None and index >= cover_from:
            (face,) = faces_in(frame)
            frame[face.y + face.h // 2:face.y + face.h, face.x:face.x + face.w] = 90
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def faces_in(frame: np.ndarray) -> list:
    from emopy_tfds import faces

    return faces.detect_faces(frame, detector="hog")


def measured_video_fps(recognizer, path: Path, frames: int) -> tuple[float, int]:
    """Frames per second of predict_video on `path`, and the rows it gave."""
    started = time.perf_counter()
    rows = len(recognizer.predict_video(path, every=1))
    return frames / (time.perf_counter() - started), rows


def write_photos(folder: Path, photo: np.ndarray) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(DIRECTORY_PHOTOS):
        path = folder / f"face_{index:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(frame_640x480(photo, 2 * index - DIRECTORY_PHOTOS), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--export", help="an export (BASE or BASE/N) or a shipped model's name (default: the default)")
    parser.add_argument("--workdir", help="keep the video and photos here (default: a temp dir)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="emopy-bench-predict-"))

    import dlib
    import tensorflow as tf

    from emopy_tfds import faces
    from emopy_tfds.data import sample_photo
    from emopy.serving import predict, shipped, tflite

    base = shipped.resolve_model(args.export)
    started = time.perf_counter()
    recognizer = predict.Recognizer.from_export(base)
    load_s = time.perf_counter() - started
    hog_path = predict.Recognizer.from_export(base, detector="hog")

    photo = faces.load_image(sample_photo())
    frame = frame_640x480(photo)
    (face,) = faces.find_faces(frame)
    aligned = faces.align_face(frame, face.landmarks, recognizer.crop_spec)
    pixels = aligned.image[np.newaxis]
    points = aligned.landmarks[None].astype(np.float32) if recognizer.inputs.uses_landmarks else None
    signature = tf.saved_model.load(str(predict.resolve_export(base))).signatures[predict.PIXELS_SIGNATURE]
    feeds = {"image": tf.constant(pixels)} | ({} if points is None else {"landmarks": tf.constant(points)})
    how = "TFLite copy" if isinstance(recognizer._classify, tflite.PixelsClassifier) else "SavedModel"
    table = recognizer.predict_frame(frame)
    if len(table) != 1:
        sys.exit(f"expected one face in the benchmark frame, found {len(table)}")

    p50 = p50_ms({
        "detect": lambda: faces.detect_faces(frame, detector="hog"),
        "detect, auto": lambda: faces.detect_faces(frame),
        "end to end": lambda: recognizer.predict_frame(frame),
        "end to end, hog": lambda: hog_path.predict_frame(frame),
        "detect + landmarks": lambda: faces.find_faces(frame),
        "align": lambda: faces.align_face(frame, face.landmarks, recognizer.crop_spec),
        "classify": lambda: recognizer._classify(pixels, points),
        "classify by signature": lambda: signature(**feeds),
    }, args.repeats)

    video = workdir / "shifting.mp4"
    write_video(video, photo)
    recognizer.predict_video(video, every=1)  # warm up the decoder and the worker threads' detectors
    started = time.perf_counter()
    video_table = recognizer.predict_video(video, every=1)
    video_fps = VIDEO_FRAMES / (time.perf_counter() - started)
    frames = [frame_640x480(photo, index - VIDEO_FRAMES // 2) for index in range(VIDEO_FRAMES)]
    started = time.perf_counter()
    for frame_index, rgb in enumerate(frames):
        recognizer.predict_frame(rgb, frame=frame_index)
    one_by_one_fps = VIDEO_FRAMES / (time.perf_counter() - started)

    photos = write_photos(workdir / "photos", photo)
    started = time.perf_counter()
    photo_rows = sum(len(recognizer.predict(path)) for path in photos)
    photos_s = time.perf_counter() - started
    photos_per_s = len(photos) / photos_s

    detect_fps, frame_fps = 1000 / p50["detect"], 1000 / p50["end to end"]
    ratio = p50["end to end"] / p50["detect"]
    print(f"\nemopy predict benchmark: TensorFlow {tf.__version__}, dlib {dlib.__version__}, OpenCV {cv2.__version__}, "
          f"{os.cpu_count()} cores; model {predict.resolve_export(base)} ({recognizer.face_spec.framing} framing)")
    print(f"  Recognizer.from_export (load the model, once)        {load_s * 1000:8.1f} ms")
    print(f"  one 640x480 photo, one {face.box.w} px face, p50 of {args.repeats} runs each:")
    print(f"    detection alone (HOG, no upsampling)               {p50['detect']:8.2f} ms   (baseline)")
    print(f"    detection alone (auto: BlazeFace finds it)          {p50['detect, auto']:8.2f} ms"
          f"   ratio to HOG: {p50['detect, auto'] / p50['detect']:.2f}")
    print(f"    detect + 68 landmarks                              {p50['detect + landmarks']:8.2f} ms")
    print(f"    align + crop to 48x48                              {p50['align']:8.3f} ms")
    print(f"    classify through the SavedModel's signature        {p50['classify by signature']:8.2f} ms"
          f"   (what TF Serving runs)")
    print(f"    classify, batch 1 (the Recognizer's: {how + ')':<13}{p50['classify']:8.2f} ms"
          f"   (target <= {MAX_CLASSIFY_MS:.0f} ms: {'met' if p50['classify'] <= MAX_CLASSIFY_MS else 'NOT met'};"
          f" ratio to the signature {p50['classify'] / p50['classify by signature']:.2f})")
    print(f"    end to end (predict_frame)                         {p50['end to end']:8.2f} ms"
          f"   ratio to detection alone: {ratio:.2f}")
    speedup = p50["end to end, hog"] / p50["end to end"]
    print(f"    end to end, the HOG path (detector='hog')          {p50['end to end, hog']:8.2f} ms"
          f"   auto is {speedup:.2f}x as fast (target >= {HOG_PATH_TARGET:.0f}x: "
          f"{'met' if speedup >= HOG_PATH_TARGET else 'NOT met'})")
    print(f"  video, {VIDEO_FRAMES} frames 640x480:")
    print(f"    one after another (predict_frame per frame)        {one_by_one_fps:8.1f} fps   (baseline)")
    print(f"    predict_video, every=1, {predict.FRAMES_IN_FLIGHT} frames in flight          "
          f"{video_fps:8.1f} fps   ({len(video_table)} rows; ratio to one after another"
          f" {video_fps / one_by_one_fps:.2f}, to detection alone {video_fps / detect_fps:.2f},"
          f" to real time {video_fps / REAL_TIME_FPS:.2f})")
    print(f"  directory, {len(photos)} PNGs 640x480 (predict per file)        {photos_per_s:8.1f} images/s"
          f"   ({photo_rows} rows; ratio to in-memory end to end {photos_per_s / frame_fps:.2f})")
    print(f"  detectors on video ({predict.FRAMES_IN_FLIGHT} frames in flight), ratio to real time "
          f"({REAL_TIME_FPS:.0f} fps):")
    short = workdir / "short.mp4"
    write_video(short, photo, frames=CNN_VIDEO_FRAMES)
    hard = workdir / "covered.mp4"
    write_video(hard, photo, cover_from=VIDEO_FRAMES // 2)
    for name, path, frames in (("hog", video, VIDEO_FRAMES), ("blazeface", video, VIDEO_FRAMES),
                               ("auto", video, VIDEO_FRAMES),
                               ("cnn", short, CNN_VIDEO_FRAMES), ("auto", hard, VIDEO_FRAMES)):
        with predict.Recognizer.from_export(base, detector=name) as by_detector:
            by_detector.predict_video(short, every=1)  # warm up: each worker thread's detectors
            fps, rows = measured_video_fps(by_detector, path, frames)
        what = f"{name}, {path.name} ({frames} frames)"
        target = (f"; target >= {AUTO_VIDEO_TARGET:.0f}x: {'met' if fps / REAL_TIME_FPS >= AUTO_VIDEO_TARGET else 'NOT met'}"
                  if (name, path) == ("auto", video) else "")
        print(f"    {what:<50} {fps:8.1f} fps   ({rows} rows; {fps / REAL_TIME_FPS:.2f}x real time{target})")
    print(f"end to end / detection alone: {ratio:.2f} "
          f"(target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'})")


if __name__ == "__main__":
    main()
