"""Benchmark of the shared face core: landmark fits and detections, with the ratio each is judged by.

Run: python benchmarks/faces.py [--repeats N]
Uses the sample photo shipped with emopy (no test extras needed). Single process, single thread.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import cv2
import dlib
import numpy as np

from emopy_tfds import faces
from emopy_tfds.data import sample_photo

FER2013_ROWS = 35_887
REAL_TIME_FPS = 30.0


def median_ms(call: Callable[[], object], repeats: int, per_repeat: int) -> float:
    """Median over `repeats` of the mean time of `per_repeat` calls, in milliseconds."""
    call()  # warm up: lazy model loads and caches stay out of the figures
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(per_repeat):
            call()
        samples.append((time.perf_counter() - started) / per_repeat * 1000)
    return statistics.median(samples)


def frame_640x480(photo: np.ndarray) -> np.ndarray:
    """The sample photo scaled to a 480-pixel-high webcam-sized frame, padded to 640x480."""
    scaled = cv2.resize(photo, (480, 480), interpolation=cv2.INTER_CUBIC)
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[:, 80:560] = scaled
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    started = time.perf_counter()
    faces._shape_predictor(str(faces.landmark_model_path()))
    model_load_s = time.perf_counter() - started

    frame = frame_640x480(faces.load_image(sample_photo()))
    (face,) = faces.find_faces(frame)
    crop48 = faces.align_face(frame, face.landmarks, faces.FaceSpec(crop_size=48)).image

    fit_crop = median_ms(lambda: faces.find_faces(crop48, already_cropped=True), args.repeats, 200)
    fit_real = median_ms(lambda: faces.fit_landmarks(frame, face.box), args.repeats, 200)
    detect_0 = median_ms(lambda: faces.detect_faces(frame, upsample=0), args.repeats, 10)
    detect_1 = median_ms(lambda: faces.detect_faces(frame, upsample=1), args.repeats, 3)
    frame_ms = median_ms(lambda: faces.find_faces(frame), args.repeats, 10)
    align_ms = median_ms(lambda: faces.align_face(frame, face.landmarks, faces.FaceSpec()), args.repeats, 200)

    print(f"emopy face core benchmark: dlib {dlib.__version__}, OpenCV {cv2.__version__}, one thread, "
          f"median of {args.repeats} runs")
    print(f"  landmark model load (once per process)        {model_load_s * 1000:8.1f} ms")
    print(f"  landmark fit, 48x48 crop (already cropped)     {fit_crop:8.3f} ms")
    print(f"  landmark fit, real-size face ({face.box.w} px box)      {fit_real:8.3f} ms"
          f"   ratio to 48x48: {fit_real / fit_crop:.2f} (ideal 1.00: dlib's fit samples a fixed pixel count)")
    print(f"  detection 640x480, no upsampling               {detect_0:8.1f} ms")
    print(f"  detection 640x480, upsample 1                  {detect_1:8.1f} ms"
          f"   ratio to no upsampling: {detect_1 / detect_0:.2f} (baseline 4.00: 4x the pixels)")
    print(f"  align + crop to 48x48                          {align_ms:8.3f} ms")
    fps = 1000.0 / frame_ms
    print(f"  detect + fit, one 640x480 frame                {frame_ms:8.1f} ms = {fps:.0f} fps"
          f"   ratio to real time ({REAL_TIME_FPS:.0f} fps): {fps / REAL_TIME_FPS:.2f}")
    print(f"  projected fer2013 landmarks ({FER2013_ROWS} rows), one core: {FER2013_ROWS * fit_crop / 1000:.1f} s")


if __name__ == "__main__":
    main()
