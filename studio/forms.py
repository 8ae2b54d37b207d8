"""The studio's Train and tune form: `emopy train`'s own settings and choices, checked, as an argument list.

The fields, their defaults and help come from pipeline.train_config (what `emopy train --help` shows); the choices
of dataset, model, labels and task from the registries that `emopy train` checks against. A value outside them
is refused with the reason, before any process starts.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from emopy import models
from emopy_tfds import labels
from emopy.pipeline import data, train_config
from emopy.pipeline.train_config import Setting
from emopy.studio.runs import RunsFolder, check_name

# Set by the studio itself, not the form: the run's folder is --runs/NAME, datasets are where --data-dir says.
NOT_IN_FORM = ("out", "data_dir")
# The registries' choices for settings whose flags take free text.
REGISTRY_CHOICES = {
    "dataset": tuple(data.DATASETS),
    "model": tuple(models.ARCHITECTURES),
    "labels": tuple(labels.SCHEMES),
    "task": data.TASKS,
}
# Bounds on numbers, so that a form cannot ask for a run that would never end or never start.
BOUNDS = {"epochs": (1, 10_000), "batch_size": (1, 4096), "image_size": (16, 512), "sequence_length": (2, 256),
          "patience": (1, 10_000), "seed": (0, 2**31 - 1), "learning_rate": (1e-7, 10.0), "width": (0.125, 4.0),
          "dropout": (0.0, 0.95)}


def form_settings() -> list[Setting]:
    """The form's fields, in `emopy train --help`'s order, with the registries' choices filled in."""
    fields = []
    for setting in train_config.settings():
        if setting.name in NOT_IN_FORM:
            continue
        if setting.name in REGISTRY_CHOICES:
            setting = Setting(**{**setting.__dict__, "choices": REGISTRY_CHOICES[setting.name]})
        fields.append(setting)
    return fields


def _number(setting: Setting, value: Any) -> int | float | None:
    if value is None or value == "":
        if setting.default is None:
            return None
        value = setting.default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{setting.flag}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{setting.flag}: {value!r} is not a finite number")
    if setting.type == "int":
        if number != int(number):
            raise ValueError(f"{setting.flag}: {value!r} is not a whole number")
        number = int(number)
    low, high = BOUNDS.get(setting.name, (-math.inf, math.inf))
    if not low <= number <= high:
        raise ValueError(f"{setting.flag}: {value!r} is outside {low}-{high}")
    return number


def train_arguments(values: dict[str, Any], folder: RunsFolder, name: str, data_dir: str) -> list[str]:
    """`emopy train`'s arguments for the form's `values` (by field name), into --runs/NAME; raises ValueError
    naming the field for a value outside its choices or bounds, a name that is no plain folder name, or a width
    or dropout the model does not take."""
    out = folder.resolve(check_name(name))
    arguments = ["train", "--out", str(out), "--data-dir", data_dir]
    chosen: dict[str, Any] = {}
    for setting in form_settings():
        value = values.get(setting.name, setting.default)
        if setting.type == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{setting.flag}: {value!r} is not true or false")
            chosen[setting.name] = value
            if not value:
                arguments.append(setting.flag)  # the --no-... switch
            continue
        if setting.type in ("int", "float"):
            value = _number(setting, value)
        elif value in ("", None):
            value = setting.default
        elif not isinstance(value, str):
            raise ValueError(f"{setting.flag}: {value!r} is not text")
        if value is None:
            if setting.required:
                raise ValueError(f"{setting.flag} is required")
            continue
        if setting.choices is not None and value not in setting.choices:
            raise ValueError(f"{setting.flag}: {value!r} is not one of {', '.join(map(str, setting.choices))}")
        chosen[setting.name] = value
        if value != setting.default:
            arguments += [setting.flag, str(value)]
    models.check_hyperparameters(chosen["model"], chosen.get("width", 1.0), chosen.get("dropout"))
    return arguments


def tune_arguments(name: str, dataset: str, models_searched: Sequence[str], trials: Any, epochs: Any,
                   folder: RunsFolder, data_dir: str) -> list[str]:
    """`emopy tune`'s arguments for the form's study: --runs/NAME holds its trials and its SQLite study."""
    out = folder.resolve(check_name(name))
    if dataset not in REGISTRY_CHOICES["dataset"]:
        raise ValueError(f"--dataset: {dataset!r} is not one of {', '.join(REGISTRY_CHOICES['dataset'])}")
    if not models_searched:
        raise ValueError("--models: choose at least one architecture")
    for model in models_searched:
        models.architecture(model)
    trials_setting = Setting("trials", "--trials", "", 12, None, "int", False)
    trials = _number(trials_setting, trials)
    if not 1 <= trials <= 1000:
        raise ValueError(f"--trials: {trials} is outside 1-1000")
    epochs = _number(next(s for s in form_settings() if s.name == "epochs"), epochs)
    return ["tune", "--dataset", dataset, "--data-dir", data_dir, "--models", ",".join(models_searched),
            "--trials", str(trials), "--epochs", str(epochs), "--study", name, "--out", str(out)]


def values_of_run(settings: dict[str, Any]) -> dict[str, Any]:
    """A run's recorded settings (config.json's "train") as the form's values, to resume or vary it."""
    values = {setting.name: settings.get(setting.name, setting.default) for setting in form_settings()}
    return {name: "" if value is None else value for name, value in values.items()}
