"""The studio's folder (`emopy studio --runs DIR`): its runs, studies and exports, read as tables; no path leaves it.

A run is any folder with an `emopy train` config.json (a study's trials included); a study is a folder with an
`emopy tune` study.db or study.json; an export is a folder under EXPORTS holding `emopy export` versions.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from emopy.pipeline.run_dir import CONFIG_FILE, PROGRESS_FILE, RunDir, how_it_ended
from emopy.pipeline.tune import STUDY_FILE, TRIAL_FILE
from emopy.serving import layout

EXPORTS = "exports"
# The log a studio-started process writes in its folder; its exit status goes to EXIT_FILE when it ends.
LOG_FILE, EXIT_FILE = "studio.log", "studio-exit.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Runs are looked for this deep under the folder: a run, a study's trial, an exported run's evaluation.
DEPTH = 3


class OutsideError(ValueError):
    """A path that would leave the studio's folder."""


def check_name(name: str) -> str:
    """A run's or study's name: letters, digits, `_`, `.` and `-`, starting with a letter or digit, no slash."""
    if not NAME.match(name or ""):
        raise ValueError(f"{name!r} is not a name the studio takes: letters, digits, '_', '.' and '-', "
                         f"starting with a letter or digit, at most 64")
    return name


@dataclass(frozen=True)
class RunsFolder:
    root: Path

    @classmethod
    def at(cls, path: str | os.PathLike) -> "RunsFolder":
        root = Path(path).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    def resolve(self, relative: str | os.PathLike) -> Path:
        """`relative` inside the folder; refuses absolute paths, `..` and links that lead out of it."""
        path = (self.root / relative).resolve()
        if path != self.root and self.root not in path.parents:
            raise OutsideError(f"{relative}: outside the studio's folder {self.root}")
        return path

    def name_of(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def run_paths(self) -> list[Path]:
        """Every run directory under the folder, sorted by name."""
        found = {config.parent for depth in range(1, DEPTH + 1)
                 for config in self.root.glob("/".join(["*"] * depth) + "/" + CONFIG_FILE)}
        return sorted(path for path in found if not self.name_of(path).startswith(EXPORTS + "/"))

    def study_paths(self) -> list[Path]:
        return sorted({p.parent for pattern in (STUDY_FILE, "study.json") for p in self.root.glob(f"*/{pattern}")})

    def export_base(self, run_name: str) -> Path:
        """Where a run under the folder is exported: EXPORTS/RUN (a study's trial as STUDY-trial-NNNN)."""
        return self.resolve(f"{EXPORTS}/{run_name.replace('/', '-')}")

    def export_paths(self) -> list[Path]:
        """Every export base under EXPORTS (a folder of numbered versions)."""
        base = self.root / EXPORTS
        if not base.is_dir():
            return []
        found = []
        for folder in sorted(base.iterdir()):
            try:
                layout.resolve_export(folder)
            except (OSError, ValueError):
                continue
            found.append(folder)
        return found


def exit_state(path: Path) -> str | None:
    """How the studio-started process of `path` ended (its EXIT_FILE): finished, stopped or failed; None while it
    runs, or if the studio started none there."""
    ended = _read_json(path / EXIT_FILE)
    if ended is None:
        return None
    if ended.get("returncode") == 0:
        return "finished"
    return "stopped" if ended.get("stopped") else "failed"


def run_state(path: Path) -> str:
    """finished, running, stopped (interrupted: it resumes), failed (its process exited with an error), or new."""
    if how_it_ended(path) is not None:
        return "finished"
    exited = exit_state(path)
    if exited in ("stopped", "failed"):
        return exited
    progress = _read_json(path / PROGRESS_FILE)
    if progress and _alive(progress.get("pid")) and exited is None:
        return "running"
    if (path / "history.csv").exists():
        return "stopped"
    return "new"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def progress(path: Path) -> dict[str, Any]:
    """Where the run in `path` is: {"fraction": 0..1, "epoch", "epochs", "seconds", "left": seconds or None,
    "text"}; from progress.json while it trains, from its history once it ended."""
    record = _read_json(path / PROGRESS_FILE) or {}
    epochs = record.get("epochs") or (_read_json(path / CONFIG_FILE) or {}).get("train", {}).get("epochs") or 1
    epoch, step, steps = record.get("epoch", 0), record.get("step", 0), max(1, record.get("steps", 1))
    done = min(1.0, (epoch + step / steps) / epochs)
    seconds = record.get("seconds", 0.0)
    ended = how_it_ended(path)
    if ended is not None:
        done = 1.0
    left = seconds / done - seconds if 0 < done < 1 and seconds else None
    text = f"epoch {min(epoch + 1, epochs)}/{epochs}, {done:.0%}"
    if ended is not None:
        text = f"{ended['epochs_trained']}/{ended['epochs']} epochs trained" + (
            " (stopped early)" if ended["stopped_early"] else "")
    elif left is not None:
        text += f", about {_duration(left)} left"
    return {"fraction": done, "epoch": epoch, "epochs": epochs, "seconds": seconds, "left": left, "text": text}


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def log_tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a studio-started process's log in `path` (its error, when it failed)."""
    log = path / LOG_FILE
    if not log.exists():
        return ""
    text = log.read_text(errors="replace").replace("\r", "\n")  # Keras's progress bar rewrites its line
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def study_name(path: Path) -> str:
    """The name of the study in `path`'s database: its study.json says; the studio names studies after their
    folder."""
    return (_read_json(path / "study.json") or {}).get("name", path.name)


def _history(path: Path) -> dict[str, list[float]]:
    """A run's per-epoch metrics as RunDir reads them; none yet (or no run) is an empty history."""
    try:
        return RunDir(path, {}).history()
    except FileNotFoundError:
        return {}


def history_frame(folder: RunsFolder, paths: list[Path]) -> pd.DataFrame:
    """Per-epoch metrics of runs, long form: run, epoch, metric (loss, accuracy, val_loss, val_accuracy), value."""
    rows = []
    for path in paths:
        history = _history(path)
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
            for epoch, value in zip(history.get("epoch", range(len(history.get(metric, [])))),
                                    history.get(metric, [])):
                rows.append({"run": folder.name_of(path), "epoch": int(epoch) + 1, "metric": metric,
                             "value": float(value)})
    return pd.DataFrame(rows, columns=["run", "epoch", "metric", "value"])


# The settings the Compare table shows, in its order, beside each run's name, state and metrics.
SETTING_COLUMNS = ("model", "dataset", "epochs", "width", "dropout", "learning_rate", "lr_schedule", "batch_size",
                   "augment", "augmentation", "targets", "class_weights")


def runs_table(folder: RunsFolder) -> pd.DataFrame:
    """One row per run: name, state, best and last validation accuracy, last validation loss, epochs trained,
    its settings, its study trial's state, and the files that compare it (evaluation report, confusion matrix)."""
    rows = []
    for path in folder.run_paths():
        try:
            run = RunDir.open(path)
        except (OSError, ValueError):
            continue
        history = _history(path)
        accuracy = history.get("val_accuracy") or []
        losses = history.get("val_loss") or []
        trial = _read_json(path / TRIAL_FILE) or {}
        settings = run.settings
        rows.append({
            "run": folder.name_of(path),
            "state": trial.get("state") if trial.get("state") == "pruned" else run_state(path),
            "best_val_accuracy": round(max(accuracy), 4) if accuracy else None,
            "last_val_accuracy": round(accuracy[-1], 4) if accuracy else None,
            "last_val_loss": round(losses[-1], 4) if losses else None,
            "epochs_trained": len(history.get("epoch", accuracy)),
            **{key: _rounded(settings.get(key)) for key in SETTING_COLUMNS},
            "study": trial.get("study"),
            "modified": time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime)),
        })
    columns = ["run", "state", "best_val_accuracy", "last_val_accuracy", "last_val_loss", "epochs_trained",
               *SETTING_COLUMNS, "study", "modified"]
    return pd.DataFrame(rows, columns=columns)


def _rounded(value: Any) -> Any:
    return float(f"{value:.3g}") if isinstance(value, float) else value


def confusion_images(path: Path) -> list[Path]:
    """The confusion matrices `emopy evaluate --run` drew for the run (confusion-SPLIT.png)."""
    return sorted(path.glob("confusion-*.png"))
