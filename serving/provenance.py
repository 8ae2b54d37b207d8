"""Where an export came from, as facts that hold on any machine: what `emopy export` writes to assets/export.json.

    {"format": 2, "emopy_version": "0.1.0", "git_commit": "3f2c..." or null, "test_time_flip": false,
     "int8_tflite": false,
     "members": [{"run": "vgg_small80", "model": "vgg_small",
                  "command": "emopy train --dataset fer2013 --model vgg_small --epochs 80 --out vgg_small80",
                  "datasets": [{"name": "fer2013", "config": "original", "version": "1.0.0",
                                "fingerprint": "sha256:..."}]}],
     "max_image_pixels": 100000000}

max_image_pixels is not provenance but the export's setting that its signatures apply (serving/pixel_limit.py),
kept here for the Recognizer (layout.max_image_pixels). An export re-written by `emopy export --from-export` keeps
its record and adds "reexported_by": {"emopy_version": ..., "git_commit": ...} (serving/reexport.py).

No absolute path goes in: runs are named by their folder, the training command leaves out --data-dir, and the
dataset is named by TFDS name, config and version. The fingerprint is a sha256 over each split's name, examples
per shard and bytes as the built dataset's dataset_info.json records them: cheap (no data is read) and the same
wherever the same build is copied. A dataset the exporting machine cannot read has version and fingerprint null.

Exports written before format 2 hold {"run": PATH, "model": ..., "test_time_flip": ..., "ensemble": [...]};
emopy reads only max_image_pixels from export.json (the photo reader's limit where it is absent), so they stay
valid exports.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds

from emopy.pipeline import data  # also registers emopy's TFDS builders
from emopy.pipeline.run_dir import RunDir
from emopy.pipeline.train_config import DEFAULT_DATA_DIR, TrainConfig
from emopy.serving import layout

FORMAT = 2
# Settings that are paths of the training machine: --out is named by the run's folder, --data-dir left out.
_MACHINE_PATHS = frozenset({"out", "data_dir"})


def emopy_version() -> str | None:
    """The installed emopy's version; None where emopy runs from a checkout that was never installed."""
    try:
        return metadata.version("emopy")
    except metadata.PackageNotFoundError:
        return None


def git_commit(source: Path = Path(__file__).resolve().parents[1]) -> str | None:
    """The commit checked out where this code runs from, if that is a git checkout (not an installed wheel, whose
    site-packages may sit inside someone else's repository); None when unknown."""
    if not (source / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):  # no git installed, or a hung file system
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def train_command(settings: dict[str, Any], run: Path) -> str:
    """The `emopy train` line that trains a run like this one: its required flags and those it set away from the
    defaults, naming the run by its folder (a fold of `--cv K` by the cross-validation's folder)."""
    flags = []
    for field in dataclasses.fields(TrainConfig):
        if "help" not in field.metadata or field.name in _MACHINE_PATHS or field.name not in settings:
            continue
        value = settings[field.name]
        if value != field.default:
            flag = field.metadata.get("flag", "--" + field.name.replace("_", "-"))
            flags += [flag] if isinstance(value, bool) else [flag, shlex.quote(str(value))]
    folds, test_fold = settings.get("folds", TrainConfig.folds), settings.get("test_fold", TrainConfig.test_fold)
    # A fold of cross-validation is trained by --cv K into the folder above it; fold 0 of the default 10 trains
    # exactly as a plain run does.
    if (folds, test_fold) != (TrainConfig.folds, TrainConfig.test_fold):
        return " ".join(["emopy", "train", *flags, "--out", shlex.quote(run.parent.name), "--cv", str(folds)])
    return " ".join(["emopy", "train", *flags, "--out", shlex.quote(run.name)])


def splits_fingerprint(splits: dict[str, tuple[list[int], int]]) -> str:
    """sha256 over each split's name, examples per shard and bytes: {split: (shard_lengths, num_bytes)}."""
    canonical = json.dumps({name: [list(map(int, lengths)), int(size)] for name, (lengths, size) in splits.items()},
                           sort_keys=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def dataset_record(tfds_name: str, data_dir: str) -> dict[str, Any]:
    """name, config, version and fingerprint of a built dataset ("fer2013/original") in data_dir, as its
    dataset_info.json says; version and fingerprint None where it cannot be read here."""
    name, _, config = tfds_name.partition("/")
    record = {"name": name, "config": config or None, "version": None, "fingerprint": None}
    try:
        builder = tfds.builder(tfds_name, data_dir=os.path.expanduser(data_dir))
        if not builder.is_prepared():  # else its info is the code's, not the data's
            return record
        info = builder.info
    except (OSError, ValueError):  # an unreadable or foreign data directory: the run's settings still name it
        return record
    splits = {split: (info.splits[split].shard_lengths, info.splits[split].num_bytes) for split in info.splits}
    return {**record, "version": str(info.version), "fingerprint": splits_fingerprint(splits)}


def member_record(run: RunDir) -> dict[str, Any]:
    """One run of an export: its folder's name, model, training command and the datasets it read."""
    settings = run.settings
    dataset = settings.get("dataset")
    # A dataset name this emopy no longer knows is still recorded, as the run's settings give it.
    names = [source.tfds_name for source in data.DATASETS.get(dataset, ())] or ([dataset] if dataset else [])
    data_dir = settings.get("data_dir", DEFAULT_DATA_DIR)
    return {"run": run.path.name, "model": settings.get("model"), "command": train_command(settings, run.path),
            "datasets": [dataset_record(name, data_dir) for name in names]}


def export_record(runs: list[RunDir], test_time_flip: bool, int8_tflite: bool = False) -> dict[str, Any]:
    """assets/export.json's content for an export of `runs` (one, or an ensemble's members)."""
    return {"format": FORMAT, "emopy_version": emopy_version(), "git_commit": git_commit(),
            "test_time_flip": test_time_flip, layout.INT8_TFLITE_KEY: int8_tflite,
            "members": [member_record(run) for run in runs]}
