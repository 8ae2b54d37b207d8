"""Writes CK+ trees in each layout users have, from a real face: dummy_data/, tests and benchmarks.

Run `python -m emopy_tfds.ck_plus.dummy_data_generation` to rewrite dummy_data/ (uses the sample photo
shipped with emopy). Frames are 640x490 like CK+'s, with the face composited in and moving slightly from
frame to frame; label, FACS and landmark files use CK+'s number format ('   3.0000000e+00').
"""

from __future__ import annotations

import dataclasses
import shutil
import zipfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from emopy_tfds import faces
from emopy_tfds.ck_plus import ck_plus_files
from emopy_tfds.data import sample_photo

FRAME_SIZE = (490, 640)  # height, width
LAYOUTS = ("zips", "folders", "emopy")
DUMMY_DATA = Path(__file__).parent / "dummy_data"


@dataclasses.dataclass(frozen=True)
class SequenceSpec:
    subject: str
    sequence: str
    frames: int
    emotion: int | None = None  # None: unlabelled (an empty Emotion folder, as in the real data)
    facs: tuple[tuple[int, int], ...] = ()
    colour: bool = False  # some CK+ frames are 3-channel
    face: str = "upright"  # "upright", "none" (blank frames) or "upside-down" (the detector cannot find it)
    ck_landmarks: bool = True


def head(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photo's face with some margin, scaled so the face is about 120 px, and its dlib landmarks."""
    face = faces.find_faces(photo)[0]
    x, y, w, h = face.box
    scale = 120.0 / w
    top, left = max(0, int(y - 0.6 * h)), max(0, int(x - 0.5 * w))
    patch = photo[top : int(y + 1.5 * h), left : int(x + 1.5 * w)]
    patch = cv2.resize(patch, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return patch, (face.landmarks - [left, top]) * scale


def render(patch: np.ndarray, landmarks: np.ndarray, spec: SequenceSpec, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One 640x490 frame of a sequence and the face's landmarks in it."""
    height, width = FRAME_SIZE
    frame = np.full((height, width, 3), 120, np.uint8)
    shift = np.array([200 + 3 * index, 90 + 2 * index])  # the head drifts a little, frame to frame
    h, w = patch.shape[:2]
    region = frame[shift[1] : shift[1] + h, shift[0] : shift[0] + w]
    moved = landmarks + shift
    if spec.face == "upright":
        region[:] = patch[: region.shape[0], : region.shape[1]]
    elif spec.face == "upside-down":
        region[:] = patch[::-1, ::-1][: region.shape[0], : region.shape[1]]
        moved = np.array([shift[0] + w - 1, shift[1] + h - 1]) - landmarks
    return frame if spec.colour else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), moved


def _number(value: float) -> str:
    return f"   {value:.7e}"


def write_tree(folder: Path, specs: Sequence[SequenceSpec], *, layout: str = "folders", seed: int = 0,
               photo: np.ndarray | None = None) -> Path:
    """Writes a CK+ tree in `layout` (the official zips, their folders, or the original Emopy layout)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    photo = faces.load_image(sample_photo()) if photo is None else photo
    patch, landmarks = head(photo)
    rng = np.random.default_rng(seed)
    staging = folder / "_staging" if layout == "zips" else folder
    roots = ({kind: staging / ck_plus_files.EMOPY_FOLDER for kind in ck_plus_files.FOLDERS} if layout == "emopy"
             else {kind: staging / name for kind, name in ck_plus_files.FOLDERS.items()})
    for spec in specs:
        where = {kind: root / spec.subject / spec.sequence for kind, root in roots.items()}
        for path in where.values():
            path.mkdir(parents=True, exist_ok=True)
        stem = f"{spec.subject}_{spec.sequence}"
        for index in range(spec.frames):
            frame, points = render(patch, landmarks, spec, index)
            name = f"{stem}_{index + 1:08d}"
            written = cv2.imwrite(str(where["images"] / f"{name}.png"),
                                  cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if frame.ndim == 3 else frame)
            assert written, where["images"]
            if spec.ck_landmarks:
                noisy = points + rng.normal(0, 1.0, points.shape)
                text = "\n".join(_number(x) + _number(y) for x, y in noisy) + "\n"
                (where["landmarks"] / f"{name}_landmarks.txt").write_text(text)
        peak = f"{stem}_{spec.frames:08d}"
        if spec.emotion is not None:
            (where["emotion"] / f"{peak}_emotion.txt").write_text(_number(spec.emotion) + "\n")
        if spec.facs:
            (where["facs"] / f"{peak}_facs.txt").write_text(
                "".join(_number(au) + _number(intensity) + "\n" for au, intensity in spec.facs))
        (where["images"] / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # what macOS leaves behind
    if layout == "zips":
        for kind, zip_name in ck_plus_files.ZIPS.items():
            with zipfile.ZipFile(folder / zip_name, "w", zipfile.ZIP_STORED) as archive:
                for path in sorted(roots[kind].rglob("*")):
                    archive.write(path, path.relative_to(staging))
        shutil.rmtree(staging)
    return folder


DUMMY_SEQUENCES = (
    SequenceSpec("S005", "001", frames=5, emotion=3, facs=((9, 2), (17, 3))),
    SequenceSpec("S010", "002", frames=3, emotion=None, facs=((1, 0), (2, 0), (5, 0))),
    SequenceSpec("S011", "001", frames=4, emotion=5, facs=((6, 3), (12, 4)), colour=True),
)


def main() -> None:
    shutil.rmtree(DUMMY_DATA, ignore_errors=True)
    write_tree(DUMMY_DATA, DUMMY_SEQUENCES, layout="folders")
    print(f"wrote {DUMMY_DATA}")


if __name__ == "__main__":
    main()
