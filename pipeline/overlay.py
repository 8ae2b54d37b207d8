"""Drawing faces onto pictures for people to look at: boxes, landmark points and optional captions."""

from __future__ import annotations

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
