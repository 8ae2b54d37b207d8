"""`emopy generate`: faces of an asked expression from an InfoGAN run, as one grid PNG or a PNG per face.

    emopy generate --run runs/infogan --emotion happy --count 16 --output happy.png
    emopy generate --run runs/infogan --all --count 8 --output grid.png        # a row per expression
    emopy generate --run runs/infogan --emotion sad --count 4 --vary 0 --output sweep.png
    emopy generate --run runs/infogan --emotion disgust --count 500 --output disgust/   # disgust-0000.png, ...

`--vary K` sweeps continuous code K from -1 to 1 (the range it was trained on) in SWEEP_STEPS steps, each face's
noise and other codes held: a row per face. The same --seed gives the same faces.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from emopy.models import infogan
from emopy.pipeline.infogan_faces import generator_run, load_generator
from emopy_tfds import images, labels

MAX_COUNT = 10_000
SWEEP_STEPS = 8
GRID_COLUMNS = 16  # a grid row holds at most this many faces; --all starts each expression on a new row
LABEL_WIDTH = 64  # pixels left of a grid's rows for the expression's name


@dataclasses.dataclass
class Generated:
    """Faces [N, S, S, C] (uint8), each face's expression name and, in a sweep, its code value; the grid's rows."""

    faces: np.ndarray
    emotions: list[str]
    code_values: list[float | None]
    rows: list[tuple[str, np.ndarray]]  # (expression, faces of the row)


def class_ids(class_names: list[str], emotion: str | None, every: bool) -> list[int]:
    """The asked expressions' ids in the run's classes: one (by any spelling labels knows, "happiness" for happy),
    or all of them."""
    if every == (emotion is not None):
        raise ValueError("give one of --emotion NAME and --all")
    if every:
        return list(range(len(class_names)))
    known = {labels.canonical(name): index for index, name in enumerate(class_names)}
    try:
        return [known[labels.canonical(emotion)]]
    except (KeyError, ValueError):
        raise ValueError(f"unknown emotion {emotion!r}; this run makes: {', '.join(class_names)}") from None


def check_count(count: int) -> int:
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"--count {count}: give 1 to {MAX_COUNT:,} faces")
    return count


def generate(model: infogan.InfoGAN, class_names: list[str], ids: list[int], count: int, seed: int = 0,
             vary: int | None = None) -> Generated:
    """`count` faces of each expression in `ids`, or with `vary` `count` sweeps of SWEEP_STEPS faces each."""
    check_count(count)
    if vary is not None and not 0 <= vary < model.num_codes:
        raise ValueError(f"--vary {vary}: this InfoGAN has continuous codes 0 to {model.num_codes - 1}")
    steps = SWEEP_STEPS if vary is not None else 1
    # Expression by expression, from one draw of latents: the faces of --all and of --emotion under one seed are
    # the same faces.
    noise, codes = model.draw(count, seed)
    noise, codes = np.repeat(noise, steps, axis=0), np.repeat(codes, steps, axis=0)
    sweep = np.linspace(-1.0, 1.0, SWEEP_STEPS, dtype=np.float32)
    if vary is not None:
        codes[:, vary] = np.tile(sweep, count)
    faces, emotions, values, rows = [], [], [], []
    for class_id in ids:
        made = model.render(np.full(count * steps, class_id), noise, codes)
        faces.append(made)
        emotions += [class_names[class_id]] * len(made)
        values += list(np.tile(sweep, count)) if vary is not None else [None] * len(made)
        width = SWEEP_STEPS if vary is not None else GRID_COLUMNS
        rows += [(class_names[class_id], made[start:start + width]) for start in range(0, len(made), width)]
    return Generated(np.concatenate(faces), emotions, [None if v is None else float(v) for v in values], rows)


def grid(rows: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """One gray image: each row's faces side by side after its expression's name, rows one under another."""
    size = rows[0][1].shape[1]
    columns = max(len(faces) for _, faces in rows)
    canvas = np.full((len(rows) * size, LABEL_WIDTH + columns * size), 255, np.uint8)
    for row, (name, faces) in enumerate(rows):
        top = row * size
        cv2.putText(canvas, name, (2, top + size // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1, cv2.LINE_AA)
        canvas[top:top + size, LABEL_WIDTH:LABEL_WIDTH + len(faces) * size] = infogan.tile(faces, len(faces))[:, :, 0]
    return canvas


def face_file_names(generated: Generated, vary: int | None) -> list[str]:
    """disgust-0000.png, ... (numbered per expression); in a sweep disgust-0000-code0+0.43.png."""
    names, seen = [], {}
    for emotion, value in zip(generated.emotions, generated.code_values):
        number = seen.get(emotion, 0)
        seen[emotion] = number + 1
        if value is None:
            names.append(f"{emotion}-{number:04d}.png")
        else:
            names.append(f"{emotion}-{number // SWEEP_STEPS:04d}-code{vary}{value:+.2f}.png")
    return names


def write(generated: Generated, output: str | Path, vary: int | None, overwrite: bool = False) -> list[Path]:
    """OUTPUT.png: the grid; any other OUTPUT: a folder of one PNG per face. Files already there are refused
    unless `overwrite`, before anything is written."""
    output = Path(output).expanduser()
    if output.suffix.lower() == ".png":
        targets = {output: grid(generated.rows)}
    elif output.suffix:
        raise ValueError(f"--output {output}: give a .png for a grid, or a folder for one PNG per face")
    else:
        targets = {output / name: face for name, face in zip(face_file_names(generated, vary), generated.faces)}
    existing = [str(path) for path in targets if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists ({len(existing)} of the files to write do); add --overwrite "
                              f"to replace them")
    for path, image in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(images.encode_png(image))
    return list(targets)


def run(run_dir: str, output: str, emotion: str | None = None, every: bool = False, count: int = 16,
        vary: int | None = None, seed: int = 0, overwrite: bool = False) -> list[Path]:
    """`emopy generate`: checks the request, then loads the run's generator and writes its faces."""
    check_count(count)
    opened = generator_run(run_dir)
    ids = class_ids(opened.class_names, emotion, every)
    model = load_generator(opened)
    generated = generate(model, opened.class_names, ids, count, seed=seed, vary=vary)
    written = write(generated, output, vary, overwrite=overwrite)
    what = f"{len(generated.faces)} faces" + (f", code {vary} from -1 to 1" if vary is not None else "")
    print(f"{written[0] if len(written) == 1 else Path(output)}: {what} of "
          f"{', '.join(opened.class_names[i] for i in ids)} (seed {seed})")
    return written
