"""Video in and out: reading frames, classifying sampled frames ahead on worker threads, writing annotated MP4s."""

from __future__ import annotations

import collections
import math
import os
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import cv2
import numpy as np
from tqdm import tqdm

from emopy_tfds import faces

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
# A video that does not say its frame rate is written back at this rate when annotated.
FALLBACK_FPS = 25.0
LIVE_WINDOW = "emopy"
QUIT_KEYS = (ord("q"), 27)  # q or Esc closes the live window
# Sampled video frames being classified at once: one per core keeps both dlib and TensorFlow busy; more would
# only hold frames in memory and delay the rows.
FRAMES_IN_FLIGHT = max(2, min(4, os.cpu_count() or 1))
# While faces are followed from frame to frame, only the windows around them are searched; the whole frame is
# searched again this often (in seconds of video), so that a face coming into view is found within it.
FULL_SCAN_SECONDS = 0.5


class VideoError(faces.ImageError):
    """A video that cannot be opened or has no readable frame."""


class Capture(Protocol):
    """What `Recognizer.stream` reads from: cv2.VideoCapture, or anything with the same three methods."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


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


def _classified_ahead(frames: Iterable[tuple[int, float, np.ndarray]], every: int,
                      start: Callable[[int, np.ndarray], Future], *, all_frames: bool
                      ) -> Iterator[tuple[int, float, np.ndarray, Future | None]]:
    """Frames in order (every one with `all_frames`, else only every `every`-th) with, for every `every`-th,
    the Future of its classification, which `start(index, frame)` begins up to FRAMES_IN_FLIGHT sampled frames
    before the frame is handed out (so `start` sees what the frames handed out before then left behind)."""
    waiting: collections.deque = collections.deque()
    in_flight = 0
    try:
        for index, seconds, bgr in frames:
            sampled = index % every == 0
            if not (sampled or all_frames):
                continue
            waiting.append((index, seconds, bgr, start(index, bgr) if sampled else None))
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
