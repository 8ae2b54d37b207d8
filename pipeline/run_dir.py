"""A training run's directory: the file names `emopy train` writes, and one object that reads them once.

Training writes the directory; evaluation, export, visualisation and cross-validation read it through `RunDir`,
so none of them opens the run's files itself.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import tf_keras as keras

from emopy import models
from emopy_tfds import faces
from emopy.pipeline.train_config import TrainConfig

CONFIG_FILE, LABELS_FILE, FACE_SPEC_FILE = "config.json", "labels.txt", "face_spec.json"
# A physiological run's counterpart of the face spec: the dataset's feature names, channels, rate and window, and
# which subjects the run was tested and validated on.
SIGNAL_SPEC_FILE = "signal_spec.json"
MODEL_FILE, HISTORY_FILE, HISTORY_CSV, BEST_WEIGHTS = "model.keras", "history.json", "history.csv", "best_checkpoint"
BACKUP_DIR, LOGS_DIR = "backup", "logs"
# Where training is now (train.ProgressFile), for the studio's progress bar.
PROGRESS_FILE = "progress.json"
# What `emopy train` writes in a run directory, and so all that --overwrite removes: evaluation reports, pictures
# and anything else in the folder stay. ("checkpoint" is TensorFlow's index of the best checkpoint.)
TRAINING_FILES = (CONFIG_FILE, LABELS_FILE, FACE_SPEC_FILE, SIGNAL_SPEC_FILE, MODEL_FILE, HISTORY_FILE, HISTORY_CSV,
                  PROGRESS_FILE, "checkpoint",
                  f"{BEST_WEIGHTS}.index", f"{BEST_WEIGHTS}.data-*", "*.json.tmp", BACKUP_DIR, LOGS_DIR)


def write_json(path: Path, value: Any) -> None:
    """Writes JSON atomically: a killed run never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def read_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """Per-epoch metrics from a run's CSV log, which every (resumed) attempt appends to."""
    log = Path(path).expanduser() / HISTORY_CSV
    history: dict[str, list[float]] = {}
    if not log.exists():
        return history
    with log.open(newline="") as file:
        rows = {int(row["epoch"]): row for row in csv.DictReader(file)}  # a resumed epoch replaces its first try
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            history.setdefault(key, []).append(int(value) if key == "epoch" else float(value))
    return history


def how_it_ended(path: str | os.PathLike) -> dict | None:
    """How the run in `path` ended: {"epochs": asked, "epochs_trained": n, "stopped_early": bool}, from config.json's
    "finished" (written last, once training ended); None when no run is there, or it was interrupted.

    Runs of an older emopy recorded no end: theirs is read from what they left, history.json beside the model and
    no backup/ (which they removed once training ended)."""
    path = Path(path).expanduser()
    if not (path / CONFIG_FILE).exists():
        return None
    record = json.loads((path / CONFIG_FILE).read_text())
    if "finished" in record:
        return record["finished"]
    if not ((path / HISTORY_FILE).exists() and (path / MODEL_FILE).exists()) or (path / BACKUP_DIR).exists():
        return None
    trained, asked = len(json.loads((path / HISTORY_FILE).read_text()).get("epoch", [])), record["train"]["epochs"]
    return {"epochs": asked, "epochs_trained": trained, "stopped_early": trained < asked}


def remove_training_files(path: str | os.PathLike) -> list[str]:
    """Removes what `emopy train` wrote in `path` (TRAINING_FILES) and nothing else; returns the names removed."""
    removed = []
    for pattern in TRAINING_FILES:
        for found in sorted(Path(path).expanduser().glob(pattern)):
            if found.is_dir():
                shutil.rmtree(found)
            else:
                found.unlink()
            removed.append(found.name)
    return removed


class RunDir:
    """A run directory, its config.json read once when opened (`RunDir.open`), its face_spec.json on first use."""

    def __init__(self, path: Path, record: dict):
        self.path = path
        self.record = record

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunDir":
        path = Path(path).expanduser()
        config = path / CONFIG_FILE
        if not config.exists():
            raise FileNotFoundError(f"{config} does not exist: is {path} an `emopy train` run directory?")
        return cls(path, json.loads(config.read_text()))

    @functools.cached_property
    def face_spec(self) -> faces.FaceSpec:
        """How the run's faces were cropped, so a photo's face is cut the same way."""
        path = self.path / FACE_SPEC_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: {self.path} is an incomplete `emopy train` run")
        return faces.FaceSpec.from_json(path.read_text())

    @property
    def settings(self) -> dict:
        """The TrainConfig the run was started with, as a dict."""
        return self.record["train"]

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.settings)

    @property
    def input_spec(self) -> models.InputSpec:
        return models.InputSpec(**self.record["input_spec"])

    @property
    def class_names(self) -> list[str]:
        return list(self.record["class_names"])

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    def history(self) -> dict[str, list[float]]:
        """Per-epoch metrics: history.json once training ended, else (still training, or killed) history.csv."""
        path = self.path / HISTORY_FILE
        history = json.loads(path.read_text()) if path.exists() else read_history(self.path)
        if not history.get("loss"):
            raise FileNotFoundError(f"{path} does not exist or holds no epochs: is {self.path} an `emopy train` run?")
        return history

    def load_model(self) -> keras.Model:
        """The final model of a finished run; refuses runs whose models took preprocessed inputs."""
        if not self.model_file.exists():
            raise FileNotFoundError(f"{self.model_file} does not exist: is {self.path} a finished `emopy train` run?")
        model = keras.models.load_model(str(self.model_file), custom_objects=models.custom_objects(), compile=False)
        expected = {name: models.input_dtype(name) for name in models.input_shapes(self.input_spec)}
        found = {name: tensor.dtype.name for name, tensor in zip(model.input_names, model.inputs)}
        if found != expected:
            raise ValueError(f"{self.path} was trained by an older emopy whose models took preprocessed inputs "
                             f"({', '.join(f'{k}: {v}' for k, v in found.items())}); models now take uint8 crops "
                             f"and landmarks in crop pixels and preprocess them themselves: retrain it with "
                             f"`emopy train`")
        return model
