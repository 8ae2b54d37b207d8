"""The models emopy ships, by name: `emopy export`s of models trained by `emopy train` on real data, in the package.

    serving/shipped/<name>/<version>/    one export base path per name in SHIPPED, as `emopy export` writes it

`--model NAME` (predict, serve, evaluate) and `Recognizer.default(name)` take these names; with no model named
they use DEFAULT. How each was made (the exact commands) and how well it does are in docs/models.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from emopy.serving import layout

ROOT = Path(__file__).resolve().parent / "shipped"
# fer2013: fer2013's 7 labels. ferplus: FER+'s crowd votes, in the fer2013_contempt scheme (the 7, then contempt).
SHIPPED = ("fer2013", "ferplus")
# The model used where none is named: the shipped model that reads real photos of people best. ferplus reads 58.7 %
# of wild_dev's 823 real photos right, fer2013 51.0 % (benchmarks/wild_photos.py; docs/models.md).
DEFAULT = "ferplus"


def base_path(name: str | None = None) -> Path:
    """A shipped model's export base path (None: DEFAULT's); a clear error for an unknown name, or for a model the
    installed package lacks."""
    name = DEFAULT if name is None else name
    if name not in SHIPPED:
        raise ValueError(f"{name!r} is not a model emopy ships (known: {', '.join(SHIPPED)})")
    base = ROOT / name
    if not layout.versions(base):
        raise FileNotFoundError(f"emopy's shipped model {name!r} is missing from the installed package ({base}): "
                                f"reinstall emopy, or name another model with --model")
    return base


def resolve_model(model: str | os.PathLike | None) -> Path:
    """The export a `--model` value names: a shipped model's base path for its name (None: DEFAULT), else the
    path as given (BASE or BASE/N). A name wins over a folder of that name in the working directory: ./NAME
    names the folder."""
    if model is None or str(model) in SHIPPED:
        return base_path(None if model is None else str(model))
    path = Path(model).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{model}: neither a model emopy ships (known: {', '.join(SHIPPED)}) nor an "
                                f"existing path (an export BASE or BASE/N)")
    return path
