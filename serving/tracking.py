"""Prediction's face ids across video frames: the face core's tracker (emopy_tfds.tracking), with each face's
probabilities smoothed over the frames it is seen in."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from emopy_tfds.detection import Box
from emopy_tfds.tracking import MAX_MISSED_FRAMES, MIN_TRACK_OVERLAP, FaceTracks


def smooth(previous: np.ndarray | None, current: np.ndarray, smoothing: float) -> np.ndarray:
    """Exponential moving average of probabilities: smoothing * previous + (1 - smoothing) * current."""
    return current if previous is None else smoothing * previous + (1.0 - smoothing) * current


class FaceTracker:
    """Gives faces ids that stay the same from frame to frame (FaceTracks: by box overlap) and smooths their
    probabilities.

    One tracker follows one video or stream. `smoothing` in [0, 1): 0 keeps each frame's probabilities as they
    are; closer to 1 averages over more past frames (an exponential moving average per face id).
    """

    def __init__(self, smoothing: float = 0.0, *, min_overlap: float = MIN_TRACK_OVERLAP,
                 max_missed: int = MAX_MISSED_FRAMES):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self.tracks = FaceTracks(min_overlap=min_overlap, max_missed=max_missed)
        self._probabilities: dict[int, np.ndarray] = {}

    def visible(self) -> int:
        """How many faces the latest frame had."""
        return self.tracks.visible()

    def visible_boxes(self) -> list[Box]:
        """Where the latest frame's faces were."""
        return self.tracks.visible_boxes()

    def update(self, boxes: Sequence[Box], probabilities: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Ids of this frame's faces and their smoothed probabilities [B, K]."""
        ids = self.tracks.update(boxes)
        smoothed = [smooth(self._probabilities.get(face_id), np.asarray(current, dtype=np.float64), self.smoothing)
                    for face_id, current in zip(ids, probabilities)]
        self._probabilities = {face_id: value for face_id, value in self._probabilities.items()
                               if face_id in self.tracks}
        self._probabilities.update(zip(ids, smoothed))
        # A frame without faces keeps its [0, K] shape (reshaping an empty array to (0, -1) is an error).
        return ids, np.array(smoothed) if smoothed else np.zeros(np.shape(probabilities))
