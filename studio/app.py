"""`emopy studio`: the Gradio app, three pages (Try, Train and tune, Compare) over one folder of runs, and its server.

The layout is here; what each page does is in pages.py. Gradio serves its own pages and scripts from the
installed package, and the theme uses the system's fonts, so the page loads nothing from the network.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import gradio as gr
import pandas as pd

from emopy import models
from emopy.studio import forms
from emopy.studio.pages import TRIAL_COLUMNS, Studio, free_port
from emopy.studio.try_models import model_choices

# Uploads larger than this are refused by Gradio before emopy reads them; the pixel limit is checked after.
MAX_UPLOAD = "25mb"
CSS = """
.emopy-face h4 { margin: 0.4em 0; }
.emopy-bar { display: flex; align-items: center; gap: 0.5em; font-size: 0.9em; }
.emopy-class { width: 6em; }
.emopy-track { flex: 1; background: #e5e7eb; height: 0.8em; border-radius: 0.4em; overflow: hidden; }
.emopy-fill { display: block; height: 100%; background: #f97316; }
.emopy-value { width: 3em; text-align: right; }
.emopy-progress { background: #e5e7eb; height: 1em; border-radius: 0.5em; overflow: hidden; }
.emopy-progress span { display: block; height: 100%; background: #22c55e; }
"""
CURVE_METRICS = ("val_accuracy", "accuracy", "val_loss", "loss")


def _theme() -> gr.themes.Base:
    # The default theme's fonts come from Google Fonts; the system's keep the page working with no network.
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _field(setting: forms.Setting) -> gr.components.Component:
    """The form's input for one `emopy train` flag: its choices as a dropdown ("default" where the flag may be
    left out), a checkbox for a switch, a number, or a text box where blank means the default."""
    elem_id = f"field-{setting.name}"
    if setting.type == "bool":
        return gr.Checkbox(value=setting.default, label=f"{setting.name} (unchecked: {setting.flag})",
                           info=setting.help, elem_id=elem_id)
    if setting.choices is not None:
        choices = [(str(choice), choice) for choice in setting.choices]
        if not setting.required and setting.default is None:
            choices.insert(0, ("default", ""))
        value = setting.default if setting.default is not None else ("" if not setting.required else choices[0][1])
        return gr.Dropdown(choices=choices, value=value, label=setting.flag, info=setting.help, elem_id=elem_id)
    if setting.type in ("int", "float") and setting.default is not None:
        return gr.Number(value=setting.default, label=setting.flag, info=setting.help,
                         precision=0 if setting.type == "int" else None, elem_id=elem_id)
    return gr.Textbox(value="" if setting.default is None else str(setting.default), label=setting.flag,
                      info=setting.help, placeholder="default" if setting.default is None else None, elem_id=elem_id)


def build(studio: Studio) -> gr.Blocks:
    """The three pages."""
    settings = forms.form_settings()
    with gr.Blocks(title="emopy studio", analytics_enabled=False) as app:
        gr.Markdown(f"# emopy studio\nRuns, studies and exports in `{studio.folder.root}`.")
        with gr.Tabs():
            with gr.Tab("Try", id="try"):
                with gr.Row():
                    with gr.Column():
                        choices = model_choices(studio.folder)
                        model = gr.Dropdown(choices=choices, value=choices[0], label="Model", elem_id="try-model")
                        photo = gr.File(label="Photo", file_types=["image"], type="filepath", elem_id="try-photo")
                        webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam",
                                          elem_id="try-webcam")
                    with gr.Column():
                        picture = gr.Image(label="Faces", type="numpy", interactive=False, format="jpeg",
                                           elem_id="try-picture")
                        timing = gr.Markdown(elem_id="try-timing")
                        bars = gr.HTML(elem_id="try-bars")
                photo.upload(studio.try_photo, [photo, model], [picture, bars, timing])
                photo.clear(lambda: (None, "", ""), None, [picture, bars, timing])
                model.change(studio.try_photo, [photo, model], [picture, bars, timing])
                webcam.stream(studio.try_frame, [webcam, model], [picture, bars], stream_every=0.1,
                              concurrency_limit=1)
                model.focus(lambda: gr.update(choices=model_choices(studio.folder)), None, model)

            with gr.Tab("Train and tune", id="train"):
                with gr.Row():
                    with gr.Column(scale=2):
                        name = gr.Textbox(value="run-1", label="Run name (a folder under --runs)",
                                          elem_id="field-name")
                        fields = [_field(setting) for setting in settings]
                        with gr.Row():
                            start = gr.Button("Start run", variant="primary", elem_id="start-run")
                            load = gr.Button("Load the watched run's settings", elem_id="load-run")
                        with gr.Accordion("Tune: a study over architectures and settings (Optuna)", open=False):
                            study_name = gr.Textbox(value="study-1", label="Study name", elem_id="study-name")
                            study_dataset = gr.Dropdown(choices=list(forms.REGISTRY_CHOICES["dataset"]),
                                                        value="fer2013", label="--dataset")
                            searched = gr.CheckboxGroup(choices=list(models.ARCHITECTURES),
                                                        value=["vgg_small", "cnn"], label="--models")
                            trials = gr.Number(value=12, precision=0, label="--trials")
                            study_epochs = gr.Number(value=10, precision=0, label="--epochs per trial")
                            start_study = gr.Button("Start study", elem_id="start-study")
                    with gr.Column(scale=3):
                        watched = gr.Dropdown(choices=studio.watchable(), value=None, label="Watching",
                                              elem_id="watched")
                        message = gr.Markdown(elem_id="train-message")
                        status = gr.HTML(elem_id="train-status")
                        curves = gr.LinePlot(x="epoch", y="value", color="metric", label="Curves",
                                             elem_id="train-curves")
                        stop = gr.Button("Stop", variant="stop", elem_id="stop-run")
                        log = gr.Textbox(label="Log", lines=10, max_lines=10, elem_id="train-log")
                start.click(studio.start_run, [name, *fields], [watched, message])
                start_study.click(studio.start_study, [study_name, study_dataset, searched, trials, study_epochs],
                                  [watched, message])
                stop.click(studio.stop, watched, message)
                load.click(studio.load_settings, watched, [name, *fields])
                timer = gr.Timer(1.0)
                timer.tick(studio.watch, watched, [status, curves, log])
                watched.change(studio.watch, watched, [status, curves, log])
                watched.focus(lambda: gr.update(choices=studio.watchable()), None, watched)

            with gr.Tab("Compare", id="compare"):
                with gr.Row():
                    text = gr.Textbox(label="Filter (any column contains)", elem_id="compare-filter")
                    sort_by = gr.Dropdown(choices=["best_val_accuracy", "modified", "run", "model", "epochs_trained"],
                                          value="best_val_accuracy", label="Sort by")
                    descending = gr.Checkbox(value=True, label="Descending")
                    refresh = gr.Button("Refresh", elem_id="compare-refresh")
                table = gr.Dataframe(interactive=False, elem_id="compare-table", wrap=True)
                selected = gr.Dropdown(multiselect=True, choices=[], label="Runs to compare",
                                       elem_id="compare-selected")
                metric = gr.Dropdown(choices=list(CURVE_METRICS), value="val_accuracy", label="Curve")
                compare_curves = gr.LinePlot(x="epoch", y="value", color="run", label="Curves",
                                             elem_id="compare-curves")
                with gr.Row():
                    evaluate = gr.Button("Evaluate (confusion matrix)")
                    export = gr.Button("Export for serving", elem_id="compare-export")
                compare_message = gr.Markdown(elem_id="compare-message")
                confusion = gr.Gallery(label="Confusion matrices", columns=3, height="auto")
                gr.Markdown("### Studies")
                with gr.Row():
                    study = gr.Dropdown(choices=[], label="Study", elem_id="compare-study")
                    board = gr.Button("TensorBoard")
                    study_board = gr.Button("Study dashboard (optuna-dashboard)")
                links = gr.HTML(studio.dashboards_html(), elem_id="dashboards")
                trials_table = gr.Dataframe(pd.DataFrame(columns=TRIAL_COLUMNS), interactive=False, label="Trials",
                                            elem_id="study-trials")
                importance = gr.BarPlot(x="setting", y="importance", label="Importance of each setting")

                def refreshed(text, sort_by, descending):
                    shown = studio.compare_table(text, sort_by, descending)
                    studies = [studio.folder.name_of(path) for path in studio.folder.study_paths()]
                    return shown, gr.update(choices=list(shown["run"])), gr.update(choices=studies)

                for trigger in (refresh.click, text.submit, sort_by.change, descending.change, app.load):
                    trigger(refreshed, [text, sort_by, descending], [table, selected, study])
                for trigger in (selected.change, metric.change):
                    trigger(studio.compare_curves, [selected, metric], compare_curves)
                selected.change(studio.confusions, selected, confusion)
                evaluate.click(studio.evaluate, selected, compare_message)
                export.click(studio.export, selected, compare_message)
                study.change(studio.study_view, study, [trials_table, importance])
                board.click(studio.start_tensorboard, None, links)
                study_board.click(studio.start_study_dashboard, study, links)
    return app


def serve(root: str | os.PathLike, host: str = "127.0.0.1", port: int = 7860, data_dir: str = "~/tensorflow_datasets",
          block: bool = True) -> tuple[gr.Blocks, str, Studio]:
    """Starts the studio on host:port (0: a free port) and prints its address; `block` serves until interrupted,
    then stops the runs it started."""
    studio = Studio(root, host, data_dir)
    app = build(studio)
    port = port or free_port(host)
    app.queue(default_concurrency_limit=4)
    app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, theme=_theme(), css=CSS,
               allowed_paths=[str(studio.folder.root)], max_file_size=MAX_UPLOAD, ssr_mode=False,
               footer_links=["settings"], show_error=True)
    url = f"http://{host}:{port}/"
    where = ("this machine only; --host 0.0.0.0 shares it on your network" if host in ("127.0.0.1", "localhost")
             else "reachable from other machines: it has no login, and starts processes")
    print(f"emopy studio: {url} ({where}); runs in {studio.folder.root}", flush=True)
    if block:
        signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop ends the runs it started too
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            studio.jobs.stop_all()
            studio.models.close()
            app.close()
    return app, url, studio
