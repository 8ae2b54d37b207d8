"""Drawing faces onto pictures for people to look at: boxes, landmark points and optional captions, and the
names of the annotated copies `emopy landmarks` and `emopy predict` write."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from emopy_tfds.faces import Face

BOX_COLOUR = (0, 220, 0)
POINT_COLOUR = (255, 40, 40)
TEXT_COLOUR = (255, 255, 255)


def draw_faces(image: np.ndarray, faces: Sequence[Face], captions: Sequence[str] | None = None) -> np.ndarray:
    """A copy of an RGB image with each face's box, its 68 points and, if given, a caption above the box."""
    canvas = np.ascontiguousarray(image).copy()
    # Line widths follow the picture's size so overlays stay visible on large photos and small crops alike.
    unit = max(1, round(max(canvas.shape[:2]) / 400))
    for index, face in enumerate(faces):
        x, y, w, h = face.box
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), BOX_COLOUR, unit, cv2.LINE_AA)
        for px, py in np.round(face.landmarks).astype(int):
            cv2.circle(canvas, (int(px), int(py)), unit, POINT_COLOUR, -1, cv2.LINE_AA)
        if captions:
            _caption(canvas, captions[index], (x, y), unit)
    return canvas


def _caption(canvas: np.ndarray, text: str, corner: tuple[int, int], unit: int) -> None:
    scale = 0.45 * unit
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, unit)
    x, y = corner
    top = max(0, y - height - baseline - 2 * unit)
    cv2.rectangle(canvas, (x, top), (x + width + 2 * unit, top + height + baseline + 2 * unit), BOX_COLOUR, -1)
    cv2.putText(canvas, text, (x + unit, top + height + unit), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, unit,
                cv2.LINE_AA)


def save_rgb(path: str, image: np.ndarray) -> None:
    """Writes an RGB array to an image file whose format follows the extension; raises OSError on failure."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 and image.shape[2] == 3 else image
    try:
        written = cv2.imwrite(str(path), bgr)
    except cv2.error:
        written = False
    if not written:
        raise OSError(f"{path}: cannot write image (check the folder exists and the extension is an image type)")


def annotation_paths(out: str | os.PathLike, sources: Sequence[str], suffixes: Sequence[str]) -> list[Path]:
    """Where each source's annotated copy goes (suffixes: each copy's, e.g. ".png" or ".mp4"): OUT itself for one
    source (its suffix made the copy's), OUT-<name> for several. <name> is the source's file stem, preceded by as
    many of its folders as it takes to tell it from the others (a/x.jpg, b/x.jpg: OUT-a-x.png, OUT-b-x.png), and
    followed by -2, -3, ... where even that does not (the same photo given twice)."""
    out = Path(out)
    if len(sources) == 1:
        return [out if out.suffix.lower() == suffixes[0].lower() else out.with_suffix(suffixes[0])]
    # Absolute folders, so that "x.jpg" and "../b/x.jpg" are told apart by real folder names, not "..".
    folders = [Path(os.path.abspath(source)).parent.parts[1:] for source in sources]
    depths = [0] * len(sources)

    def name(index: int) -> str:
        parts = folders[index][len(folders[index]) - depths[index]:] if depths[index] else ()
        return "-".join([*parts, Path(sources[index]).stem]) + suffixes[index]

    while True:
        # Case-insensitive: X.jpg and x.jpg would be one file on macOS and Windows.
        groups: dict[str, list[int]] = {}
        for index in range(len(sources)):
            groups.setdefault(name(index).lower(), []).append(index)
        # Only folders that differ tell sources apart: the same folder twice is left to the counter.
        deeper = [index for group in groups.values() if len({folders[each] for each in group}) > 1
                  for index in group if depths[index] < len(folders[index])]
        if not deeper:
            break
        for index in deeper:
            depths[index] += 1
    names, taken = [], set()
    for index in range(len(sources)):
        stem, suffix, copy = Path(name(index)).stem, suffixes[index], 1
        candidate = name(index)
        while candidate.lower() in taken:
            copy += 1
            candidate = f"{stem}-{copy}{suffix}"
        taken.add(candidate.lower())
        names.append(candidate)
    return [out.with_name(f"{out.stem}-{each}") for each in names]


def refuse_existing(paths: Sequence[Path]) -> None:
    """Raises FileExistsError naming the annotated copies that would replace files already there."""
    existing = [str(path) for path in paths if path.exists()]
    if existing:
        shown = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise FileExistsError(f"{shown} already exist{'s' if len(existing) == 1 else ''}: pass --overwrite to "
                              f"replace {'it' if len(existing) == 1 else 'them'}, or choose another --annotate")
