"""Faces from a trained InfoGAN run: the run opened and checked, and faces of asked expressions to train on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from emopy import models
from emopy.models import infogan
from emopy.pipeline.run_dir import RunDir
from emopy_tfds import labels

# --add-generated RUN:EMOTION=N[,EMOTION=N...]
_REQUEST = re.compile(r"^(?P<run>.+):(?P<counts>[^:=,]+=\d+(,[^:=,]+=\d+)*)$")


def generator_run(run: str | Path) -> RunDir:
    """The run, refused unless it is an InfoGAN's (read from its config.json, before any model is loaded)."""
    opened = RunDir.open(run)
    model_name = opened.settings.get("model")
    if model_name != "infogan":
        raise ValueError(f"{opened.path} is a {model_name} run, not an InfoGAN: it needs a run of "
                         f"`emopy train --model infogan`")
    return opened


def load_generator(opened: RunDir) -> infogan.InfoGAN:
    model = opened.load_model()
    if not models.is_generative(model):
        raise ValueError(f"{opened.model_file} holds no generator: is {opened.path} a finished InfoGAN run?")
    return model


def parse_request(request: str) -> tuple[str, dict[str, int]]:
    """`RUN:disgust=2000,contempt=2000` -> (RUN, {disgust: 2000, contempt: 2000}), emotions in canonical names."""
    match = _REQUEST.match(request)
    if not match:
        raise ValueError(f"--add-generated {request!r}: give RUN:EMOTION=N[,EMOTION=N...], e.g. "
                         f"runs/infogan:disgust=2000,contempt=2000")
    counts = {}
    for part in match["counts"].split(","):
        name, count = part.split("=")
        counts[labels.canonical(name)] = int(count)
        if not 1 <= int(count) <= 100_000:
            raise ValueError(f"--add-generated {request!r}: {count} {name} faces; give 1 to 100,000")
    return match["run"], counts


def training_faces(request: str, class_names: Sequence[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The faces `--add-generated REQUEST` asks for: uint8 [N, S, S, C] and their ids in `class_names` (the
    training run's classes, which must hold every asked expression, as the InfoGAN's must)."""
    run, counts = parse_request(request)
    opened = generator_run(run)
    by_name = {labels.canonical(name): index for index, name in enumerate(class_names)}
    made_by = {labels.canonical(name): index for index, name in enumerate(opened.class_names)}
    for emotion in counts:
        for names, where in ((by_name, "this run's classes"), (made_by, f"the InfoGAN {opened.path}'s classes")):
            if emotion not in names:
                raise ValueError(f"--add-generated: {emotion} is not among {where}")
    model = load_generator(opened)
    faces, ids = [], []
    for offset, (emotion, count) in enumerate(counts.items()):
        faces.append(model.sample(np.full(count, made_by[emotion]), seed=seed + offset))
        ids.append(np.full(count, by_name[emotion], np.int64))
    return np.concatenate(faces), np.concatenate(ids)
