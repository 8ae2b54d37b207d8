"""The model emopy ships: an `emopy export` of a model trained by `emopy train` on real fer2013, inside the package.

`emopy predict`, `emopy serve`, `emopy evaluate` and `Recognizer.default()` use it when no model is named. How it
was made (the exact commands) and how well it does are in README's model card.
"""

from __future__ import annotations

from pathlib import Path

from serving import layout

# An export base path as `emopy export` writes it: BASE/<version>/ with the SavedModel and its assets.
BASE = Path(__file__).resolve().parent / "default_export"


def base_path() -> Path:
    """The shipped export's base path; a clear error if the installed package lacks it."""
    if not layout.versions(BASE):
        raise FileNotFoundError(f"emopy's default model is missing from the installed package ({BASE}): "
                                f"reinstall emopy, or name a model with --model")
    return BASE
