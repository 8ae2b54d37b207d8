"""Face tracking across video frames: ids that follow each face by box overlap, and smoothed probabilities."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from emopy_tfds import faces

# Between two sampled frames a face moves a fraction of its size, so its boxes overlap far more than this;
# two different faces side by side overlap not at all.
MIN_TRACK_OVERLAP = 0.3
# Sampled frames a face may go undetected (turned away, blinked past the detector) and keep its id.
MAX_MISSED_FRAMES = 5


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
