"""Following faces from frame to frame, for dataset sequences and video alike: the one face tracker.

`FaceTracks` gives each face an id that stays with it while its boxes overlap from one frame to the next, and keeps
an id through a few frames without its face. `track_face` follows one face through a sequence (a CK+ recording):
each frame's 68-point fit is seeded where the previous frame's landmarks put the face, and the detector runs again
only when a fit drifts, taking the detection that continues the track. Prediction on video uses `FaceTracks` for
its face ids (serving/tracking.py adds the smoothing of probabilities).
"""

from __future__ import annotations

import os
from typing import NamedTuple, Sequence

from emopy_tfds import detection, faces
from emopy_tfds.detection import DEFAULT_DETECTOR, Box

# Between two sampled frames a face moves a fraction of its size, so its boxes overlap far more than this;
# two different faces side by side overlap not at all.
MIN_TRACK_OVERLAP = 0.3
# Sampled frames a face may go undetected (turned away, blinked past the detector) and keep its id.
MAX_MISSED_FRAMES = 5
# Below this overlap between the box a fit was seeded with and the box its landmarks imply, the fit has
# slid off the face (or the face moved fast): detect again. The implied box depends on the eyes only, so
# expressions barely move it; between video frames it overlaps its seed by 0.8 or more (0.82 against the
# detector's own box on the first frame), while a fit seeded where the face no longer is lands near 0.65.
REDETECT_BELOW_OVERLAP = 0.7


def match_boxes(tracked: dict[int, Box], boxes: Sequence[Box], min_overlap: float = MIN_TRACK_OVERLAP
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


class FaceTracks:
    """Face ids that stay the same from frame to frame, by box overlap; one FaceTracks follows one video or sequence.

    A face unseen for more than `max_missed` updates loses its id; if it comes back, it gets a new one.
    """

    def __init__(self, *, min_overlap: float = MIN_TRACK_OVERLAP, max_missed: int = MAX_MISSED_FRAMES):
        self.min_overlap = min_overlap
        self.max_missed = max_missed
        self._boxes: dict[int, Box] = {}
        self._missed: dict[int, int] = {}
        self._next_id = 0

    def __contains__(self, face_id: int) -> bool:
        return face_id in self._boxes

    def visible(self) -> int:
        """How many faces the latest frame had."""
        return sum(missed == 0 for missed in self._missed.values())

    def visible_boxes(self) -> list[Box]:
        """The boxes of the faces the latest frame had."""
        return [box for face_id, box in self._boxes.items() if self._missed[face_id] == 0]

    def update(self, boxes: Sequence[Box]) -> list[int]:
        """The ids of this frame's faces, one per box: a tracked face's id, or a new one."""
        ids = []
        for box, face_id in zip(boxes, match_boxes(self._boxes, boxes, self.min_overlap)):
            if face_id is None:
                face_id, self._next_id = self._next_id, self._next_id + 1
            self._boxes[face_id], self._missed[face_id] = box, 0
            ids.append(face_id)
        for face_id in [i for i in self._boxes if i not in ids]:
            self._missed[face_id] += 1
            if self._missed[face_id] > self.max_missed:
                del self._boxes[face_id], self._missed[face_id]
        return ids


class Track(NamedTuple):
    """A face followed through a sequence: one Face per frame (None where it was lost), and how it went."""

    faces: list
    detections: int
    used_fallback: bool


def track_face(
    frames,
    *,
    upsample: int = 0,
    detector: str = DEFAULT_DETECTOR,
    fallback_box: Box | None = None,
    landmark_model: str | os.PathLike | None = None,
) -> Track:
    """Follows the largest face of the first frame through a sequence of frames (paths, bytes or arrays).

    The detector runs on the first frame only; each later frame's fit is seeded with the box the previous
    frame's landmarks imply, and the detector runs again only when a fit's landmarks drift from their seed; the
    detection that continues the track (match_boxes, as FaceTracks matches) then reseeds it, the largest if none
    does.
    With no face on the first frame, `fallback_box` (e.g. from a dataset's own landmarks) seeds the fits.
    Under `auto`, the fallbacks (HOG doubled, then the CNN detector) run where BlazeFace finds nothing, but only
    once before a face is first found: a sequence without a face costs one CNN pass, not one a frame.
    """
    tracked, detections, used_fallback, seed = [], 0, False, None
    for frame in frames:
        gray = faces.gray_image(frame)
        if seed is None:
            detections += 1
            found = detection.detect(gray, detector, upsample=upsample, fallback=detections == 1)
            if found:
                seed = found[0]
            elif fallback_box is not None:
                seed, used_fallback = fallback_box, True
            else:
                tracked.append(None)
                continue
        landmarks = faces.fit_landmarks(gray, seed, landmark_model=landmark_model)
        implied = faces.box_from_landmarks(landmarks)
        if faces.box_overlap(seed, implied) < REDETECT_BELOW_OVERLAP and not used_fallback:
            detections += 1
            found = detection.detect(gray, detector, upsample=upsample)
            if found:
                # The seed is where the face was a frame ago: the detection overlapping it most continues the track.
                continues = match_boxes({0: seed}, found)
                seed = found[continues.index(0)] if 0 in continues else found[0]
                landmarks = faces.fit_landmarks(gray, seed, landmark_model=landmark_model)
                implied = faces.box_from_landmarks(landmarks)
        tracked.append(faces.Face(seed, landmarks))
        seed = implied
    return Track(tracked, detections, used_fallback)
