"""A deterministic SYNTHETIC fer2013 sample for the quick start: drawn faces, one geometry per expression.

These are cartoon faces, not photos of people: brows, eyes and mouth are drawn in a shape that differs for
each of fer2013's 7 expressions (a smile for happy, an open round mouth and raised brows for surprise, ...),
with random pose, size and lighting, so that a model can learn the expressions in a few epochs. They show
that the pipeline runs; accuracy on them says nothing about accuracy on real faces.
"""

from __future__ import annotations

import cv2
import numpy as np

from emopy_tfds import labels

SIZE = 48
# Drawn at 4x and shrunk, so that the thin strokes are antialiased as in a real photo's crop.
_SCALE = 4
_SPLITS = {"Training": 0.7, "PublicTest": 0.15, "PrivateTest": 0.15}

# Per expression: brow tilt (inner end up > 0), brow height, eye openness, mouth curve (> 0: corners up),
# mouth openness, mouth width. Units: fractions of the face size.
_GEOMETRY = {
    "angry": (-0.10, 0.00, 0.05, 0.00, 0.00, 0.26),
    "disgust": (-0.05, 0.02, 0.03, -0.05, 0.03, 0.20),
    "fear": (0.08, 0.07, 0.09, -0.02, 0.07, 0.30),
    "happy": (0.00, 0.03, 0.05, 0.10, 0.02, 0.40),
    "sad": (0.10, 0.02, 0.04, -0.09, 0.00, 0.28),
    "surprise": (0.02, 0.10, 0.10, 0.00, 0.14, 0.18),
    "neutral": (0.00, 0.03, 0.05, 0.00, 0.00, 0.30),
}


def draw_face(expression: str, rng: np.random.Generator) -> np.ndarray:
    """One SIZE x SIZE gray face showing `expression` (a fer2013 class name), with random jitter."""
    tilt, brow_lift, eye_open, curve, mouth_open, mouth_width = _GEOMETRY[expression]
    side = SIZE * _SCALE
    canvas = np.full((side, side), rng.integers(20, 90), np.uint8)
    skin, feature = int(rng.integers(150, 230)), int(rng.integers(10, 60))
    scale = rng.uniform(0.85, 1.0) * side
    centre = np.array([side / 2, side / 2]) + rng.uniform(-0.04, 0.04, 2) * side

    def point(x: float, y: float) -> tuple[int, int]:
        return tuple(int(v) for v in np.round(centre + np.array([x, y]) * scale))

    def length(value: float) -> int:
        return max(1, int(round(value * scale)))

    cv2.ellipse(canvas, point(0, 0.02), (length(0.36), length(0.46)), 0, 0, 360, skin, -1, cv2.LINE_AA)
    stroke = length(0.025)
    for side_sign in (-1, 1):
        eye = (side_sign * 0.15, -0.08)
        cv2.ellipse(canvas, point(*eye), (length(0.07), length(eye_open)), 0, 0, 360, feature, -1, cv2.LINE_AA)
        inner, outer = side_sign * 0.05, side_sign * 0.25
        brow_y = -0.20 - brow_lift
        cv2.line(canvas, point(inner, brow_y - tilt), point(outer, brow_y + tilt / 2), feature, stroke, cv2.LINE_AA)
    cv2.line(canvas, point(0, -0.02), point(-0.03, 0.10), feature, length(0.015), cv2.LINE_AA)  # nose
    half = mouth_width / 2
    xs = np.linspace(-half, half, 25)
    upper = 0.24 - curve * (xs / half) ** 2 + curve
    lower = upper + mouth_open * np.cos(xs / half * np.pi / 2)
    lip = np.array([point(x, y) for x, y in zip(xs, upper)] + [point(x, y) for x, y in zip(xs[::-1], lower[::-1])])
    cv2.fillPoly(canvas, [lip], feature, cv2.LINE_AA)
    cv2.polylines(canvas, [lip], True, feature, stroke, cv2.LINE_AA)

    angle = rng.uniform(-8, 8)
    rotation = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    canvas = cv2.warpAffine(canvas, rotation, (side, side), borderMode=cv2.BORDER_REPLICATE)
    face = cv2.resize(canvas, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float64)
    face = face * rng.uniform(0.8, 1.2) + rng.normal(0, 4, face.shape)
    return np.clip(face, 0, 255).astype(np.uint8)


def synthetic_fer2013(per_class: int = 60, seed: int = 0) -> tuple[np.ndarray, list[int], list[str]]:
    """(images [n, 48, 48] uint8, emotion ids, Usage values) in fer2013's classes and split names, in a
    shuffled but fixed order: the same for the same arguments."""
    rng = np.random.default_rng(seed)
    emotions = [emotion for emotion in range(len(labels.FER2013)) for _ in range(per_class)]
    usages = []
    for _ in labels.FER2013:
        counts = {usage: int(round(share * per_class)) for usage, share in _SPLITS.items()}
        counts["Training"] = per_class - counts["PublicTest"] - counts["PrivateTest"]
        usages += [usage for usage, count in counts.items() for _ in range(count)]
    order = rng.permutation(len(emotions))
    emotions = [emotions[i] for i in order]
    usages = [usages[i] for i in order]
    images = np.stack([draw_face(labels.FER2013[emotion], rng) for emotion in emotions])
    return images, emotions, usages
