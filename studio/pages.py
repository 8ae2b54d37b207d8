"""What each page of `emopy studio` does: the handlers behind Try, Train and tune, and Compare.

Each handler takes the page's values and returns what the page shows; a user's mistake becomes a gr.Error, shown
on the page, and the studio keeps serving. Paths are names inside --runs (runs.RunsFolder), processes go through
jobs.Jobs, form values through forms.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import socket
import threading
import time
from typing import Any, Iterator

import gradio as gr
import optuna
import pandas as pd

from emopy.pipeline import tune
from emopy.studio import forms, runs
from emopy.studio.jobs import Jobs
from emopy.studio.try_models import TryModels, face_bars


@contextlib.contextmanager
def shown_on_page() -> Iterator[None]:
    """A user's mistake (ValueError: a bad form value, a path outside --runs, an unreadable photo; OSError: a
    missing file) as an error on the page, in one line; the studio keeps serving."""
    try:
        yield
    except (ValueError, OSError) as error:
        raise gr.Error(str(error), print_exception=False) from None


def refuse(message: str) -> None:
    raise gr.Error(message, print_exception=False)


TRIAL_COLUMNS = ["number", "state", "value"]


class Studio:
    """The app's state: its folder, its processes, its models, and the dashboards it started."""

    def __init__(self, root: str | os.PathLike, host: str, data_dir: str):
        self.folder = runs.RunsFolder.at(root)
        self.host = host
        self.data_dir = data_dir
        self.jobs = Jobs()
        self.models = TryModels(self.folder)
        self.dashboards: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- Try ---

    def try_photo(self, path: str | None, choice: str):
        if not path:
            return None, "", ""
        started = time.perf_counter()
        with shown_on_page():  # faces.ImageError included: unreadable, or over the pixel limit
            picture, table = self.models.answer(path, choice)
        seconds = time.perf_counter() - started
        bars = face_bars(table, self.models.recognizer(choice).classes)
        return picture, bars, f"{len(table)} face(s) in {seconds * 1000:.0f} ms"

    def try_frame(self, frame: Any, choice: str):
        if frame is None:
            return None, ""
        picture, table = self.models.answer(frame, choice)
        return picture, face_bars(table, self.models.recognizer(choice).classes)

    # --- Train and tune ---

    def start_run(self, name: str, *values: Any):
        settings = dict(zip([setting.name for setting in forms.form_settings()], values))
        with shown_on_page():
            arguments = forms.train_arguments(settings, self.folder, name, self.data_dir)
            self.jobs.start(self.folder.resolve(name), arguments)
        return gr.update(choices=self.watchable(), value=name), f"Started {name}."

    def start_study(self, name: str, dataset: str, searched: list[str], trials: Any, epochs: Any):
        with shown_on_page():
            arguments = forms.tune_arguments(name, dataset, searched, trials, epochs, self.folder, self.data_dir)
            self.jobs.start(self.folder.resolve(name), arguments)
        return gr.update(choices=self.watchable(), value=name), f"Started study {name}."

    def stop(self, name: str):
        with shown_on_page():
            stopped = bool(name) and self.jobs.stop(self.folder.resolve(name))
        return f"Stopped {name}: start it again from the form to resume." if stopped else f"{name} is not running."

    def watchable(self) -> list[str]:
        names = {self.folder.name_of(path) for path in self.folder.run_paths()}
        names |= {self.folder.name_of(path) for path in self.folder.study_paths()}
        names |= {self.folder.name_of(path.parent) for path in self.folder.root.glob(f"*/{runs.LOG_FILE}")}
        return sorted(names)

    def watch(self, name: str | None):
        """The watched run's (or study's) state, progress bar, curves and log."""
        if not name:
            return "", pd.DataFrame(columns=["epoch", "value", "metric"]), ""
        try:
            path = self.folder.resolve(name)
        except ValueError as error:
            return f"<p>{error}</p>", pd.DataFrame(columns=["epoch", "value", "metric"]), ""
        trial_paths = sorted(path.glob("trial-*")) if (path / tune.STUDY_FILE).exists() else []
        if trial_paths:  # a study: the state of its trials, the newest one's curves
            state = "running" if self.jobs.running(path) else (runs.exit_state(path) or "not started here")
            shown = trial_paths[-1]
            header = f"<p><b>{name}</b>: study {state}, {len(trial_paths)} trial(s); curves of {shown.name}</p>"
        else:
            state = "running" if self.jobs.running(path) else runs.run_state(path)
            shown = path
            header = f"<p><b>{name}</b>: <span class=\"emopy-state\">{state}</span></p>"
        progress = runs.progress(shown)
        bar = (f'<div class="emopy-progress"><span style="width:{progress["fraction"] * 100:.0f}%"></span></div>'
               f'<p class="emopy-progress-text">{progress["text"]}</p>')
        curves = runs.history_frame(self.folder, [shown])
        log = runs.log_tail(path, 25)
        if state == "failed":
            header += f'<pre class="emopy-error">{html.escape(runs.log_tail(path, 8))}</pre>'
        return header + bar, curves[["epoch", "value", "metric"]], log

    def load_settings(self, name: str):
        """The form's values from a run's config.json: the same form resumes it, or varies it under a new name."""
        with shown_on_page():
            record = runs.RunDir.open(self.folder.resolve(name))
        values = forms.values_of_run(record.settings)
        return [name, *[values[setting.name] for setting in forms.form_settings()]]

    # --- Compare ---

    def compare_table(self, text: str, sort_by: str, descending: bool) -> pd.DataFrame:
        table = runs.runs_table(self.folder)
        if text:
            mask = table.astype(str).apply(lambda column: column.str.contains(text, case=False, regex=False))
            table = table[mask.any(axis=1)]
        if sort_by in table.columns:
            table = table.sort_values(sort_by, ascending=not descending, na_position="last")
        return table.rename(columns=lambda column: column.replace("_", " "))  # headers that wrap at words

    def compare_curves(self, selected: list[str], metric: str):
        paths = []
        for name in selected or []:
            try:
                paths.append(self.folder.resolve(name))
            except ValueError:
                continue
        curves = runs.history_frame(self.folder, paths)
        return curves[curves["metric"] == metric][["epoch", "value", "run"]]

    @shown_on_page()
    def confusions(self, selected: list[str]) -> list[tuple[str, str]]:
        shown = []
        for name in selected or []:
            for image in runs.confusion_images(self.folder.resolve(name)):
                shown.append((str(image), f"{name}: {image.stem}"))
        return shown

    @shown_on_page()
    def evaluate(self, selected: list[str]) -> str:
        started = []
        for name in selected or []:
            path = self.folder.resolve(name)
            if runs.run_state(path) != "finished":
                refuse(f"{name} is not a finished run")
            self.jobs.start(path, ["evaluate", "--run", str(path), "--split", "validation"])
            started.append(name)
        return f"Evaluating {', '.join(started)} on its validation split: refresh for its confusion matrix."

    @shown_on_page()
    def export(self, selected: list[str]) -> str:
        if not selected or len(selected) != 1:
            refuse("choose one run to export")
        name = selected[0]
        path = self.folder.resolve(name)
        if runs.run_state(path) != "finished":
            refuse(f"{name} is not a finished run")
        base = self.folder.export_base(name)
        self.jobs.start(path, ["export", "--run", str(path), "--model-base-path", str(base)])
        return (f"Exporting {name} to {base}: the Try page offers it once written. Serve it with "
                f"`emopy serve --model-base-path {base}`.")

    @shown_on_page()
    def study_view(self, name: str | None):
        if not name:
            return pd.DataFrame(columns=TRIAL_COLUMNS), pd.DataFrame(columns=["setting", "importance"])
        path = self.folder.resolve(name)
        if not (path / tune.STUDY_FILE).exists():
            refuse(f"{name} holds no study database ({tune.STUDY_FILE})")
        study = tune.open_study(runs.study_name(path), tune.default_storage(path))
        trials = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs"))
        try:
            importance = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError):  # too few complete trials to tell
            importance = {}
        frame = pd.DataFrame({"setting": list(importance), "importance": list(importance.values())})
        return trials, frame

    def dashboards_html(self) -> str:
        links = [f'<a href="{url}" target="_blank" id="link-{re.sub("[^a-z0-9]+", "-", kind.lower())}">{kind}</a>'
                 for kind, url in self.dashboards.items()]
        return "Open: " + " · ".join(links) if links else "No dashboard started yet."

    def start_tensorboard(self) -> str:
        with self._lock:
            if "TensorBoard" not in self.dashboards:
                from tensorboard import program

                board = program.TensorBoard()
                board.configure(argv=[None, "--logdir", str(self.folder.root), "--host", self.host, "--port",
                                      str(free_port(self.host))])
                self.dashboards["TensorBoard"] = board.launch()
        return self.dashboards_html()

    @shown_on_page()
    def start_study_dashboard(self, name: str | None) -> str:
        if not name:
            refuse("choose a study")
        path = self.folder.resolve(name)
        kind = f"optuna-dashboard {name}"
        with self._lock:
            if kind not in self.dashboards:
                import optuna_dashboard

                port = free_port(self.host)
                storage = tune.default_storage(path)
                threading.Thread(target=optuna_dashboard.run_server, args=(storage,),
                                 kwargs={"host": self.host, "port": port}, daemon=True).start()
                self.dashboards[kind] = f"http://{self.host}:{port}/"
        return self.dashboards_html()


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
