"""Shared fixtures: real faces from scikit-image's astronaut photo (NASA, public domain)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from emopy_tfds import faces


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """512x512 RGB uint8 portrait with exactly one frontal face."""
    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_face(astronaut) -> faces.Face:
    (face,) = faces.find_faces(astronaut)
    return face


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory, astronaut) -> dict[str, str]:
    """Files on disk: a real face, a blank picture, garbage bytes and a truncated PNG."""
    import cv2

    folder = tmp_path_factory.mktemp("photos")
    paths = {name: str(folder / name) for name in ("astronaut.png", "blank.png", "corrupt.jpg", "truncated.png")}
    cv2.imwrite(paths["astronaut.png"], cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    cv2.imwrite(paths["blank.png"], np.full((480, 640, 3), 200, np.uint8))
    with open(paths["corrupt.jpg"], "wb") as corrupt:
        corrupt.write(b"\xff\xd8\xff\xe0 this is not really a JPEG" * 10)
    encoded = open(paths["astronaut.png"], "rb").read()
    with open(paths["truncated.png"], "wb") as truncated:
        truncated.write(encoded[: len(encoded) // 3])
    return paths
