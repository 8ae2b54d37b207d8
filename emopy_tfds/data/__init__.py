"""Sample data shipped with emopy (see README.md beside this file)."""

from __future__ import annotations

from pathlib import Path


def sample_photo() -> Path:
    """A real photo with one frontal face (NASA, public domain), so the quick start needs no extras."""
    return Path(__file__).parent / "astronaut.jpg"
