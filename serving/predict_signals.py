"""`emopy predict-signals`: a physiological model's states for every window of WESAD pickles or CSVs of signals.

Each recording is read and checked by emopy_tfds.wesad.wesad_files (a pickle as the WESAD builder reads it, a CSV
by emopy's channel names), cut into the model's windows, and each window's features (and, for signal_cnn, its
resampled signals) are computed by emopy_tfds.wesad.wesad_windows, the code the builder runs: a window of a
subject's pickle gets exactly the features its dataset example has. The model is a run directory, an export, or
an export behind TF Serving (--server).

Rows, one per window, in this order of columns:

    file, start_seconds, state, true_label, <one probability column per class>, predicted, <the features by name>

`state` is WESAD's state of the window (the majority of its labels; empty where that is none of baseline,
stress, amusement, meditation, and for a CSV), and `true_label` that state in the model's classes (empty where
the model has no class for it, e.g. meditation for the three-class task): `predicted == true_label` is accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd

from emopy import models
from emopy_tfds import labels
from emopy_tfds.wesad import wesad_files, wesad_windows
from emopy_tfds.wesad.wesad_files import Channel
from emopy.pipeline.run_dir import CONFIG_FILE, SIGNAL_SPEC_FILE, RunDir
from emopy.serving import layout
from emopy.serving.client import EmotionClient, ServingRequestError
from emopy.serving.layout import DEFAULT_MODEL_NAME
from emopy.serving.signal_export import input_name
from emopy.serving.tls import ClientTls

OUTPUT_SUFFIXES = (".csv", ".jsonl")
PICKLE_SUFFIXES = (".pkl", ".pickle")
LEADING_COLUMNS = ("file", "start_seconds", "state", "true_label")
PREDICTED_COLUMN = "predicted"
# Windows sent to the model at once: a request of 64 windows of features is a few kB (of signals, a few MB).
BATCH_WINDOWS = 64


class SignalModel(NamedTuple):
    """What predicts: the class names, the signal spec (signal_spec.json's keys), what the model takes, and a
    function from a batch of its input to probabilities [batch, classes]."""

    class_names: list[str]
    signal_spec: dict
    input_spec: models.InputSpec
    probabilities: Callable[[np.ndarray], np.ndarray]

    @property
    def sensors(self) -> tuple[str, ...]:
        """The sensors ("chest", "wrist") whose channels the model was trained on, in the dataset's order."""
        return tuple(dict.fromkeys(name.split("_", 1)[0] for name in self.signal_spec["channels"]))

    @property
    def needed_channels(self) -> tuple[str, ...]:
        """The channels a recording must have: those the features are computed from, and for a model of raw
        windows all its channels."""
        feature_channels = [name for sensor in self.sensors for name, _, _ in wesad_windows.FEATURE_CHANNELS[sensor]]
        if self.input_spec.kind == "signal_window":
            feature_channels += list(self.signal_spec["channels"])
        return tuple(dict.fromkeys(feature_channels))


def _keras_model(run: RunDir) -> SignalModel:
    path = run.path / SIGNAL_SPEC_FILE
    if not run.input_spec.uses_signals:
        raise ValueError(f"{run.path} holds a face model ({run.input_spec.kind} inputs): use `emopy predict` on photos")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {run.path} is an incomplete `emopy train` run")
    model, name = run.load_model(), input_name(run.input_spec)
    return SignalModel(run.class_names, json.loads(path.read_text()), run.input_spec,
                       lambda values: model({name: values}, training=False).numpy())


def _saved_model(version_dir: Path) -> SignalModel:
    import tensorflow as tf  # loaded with the model, as every other path here loads Keras

    assets = layout.read_signal_assets(version_dir)
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    name = input_name(assets.input_spec)
    return SignalModel(*assets, lambda values: serve(**{name: tf.constant(values)})["probabilities"].numpy())


def open_model(model: str | None, server: str | None = None, model_name: str = DEFAULT_MODEL_NAME,
               tls: ClientTls | None = None) -> tuple[SignalModel, EmotionClient | None]:
    """The model to predict with: a run directory or an export (BASE/N, or BASE for its highest version), or with
    `server` the model served there (its spec read from `model` if given, else from the server's signal_spec
    signature). Returns the client too, which the caller closes."""
    if model is None and server is None:
        raise ValueError("predict-signals needs --model RUN_DIR|EXPORT_DIR (or --server HOST:PORT): emopy ships no "
                         "physiological model; train one with `emopy train --dataset wesad/chest --model physio_mlp`")
    local = None
    if model is not None:
        path = Path(model).expanduser()
        local = _keras_model(RunDir.open(path)) if (path / CONFIG_FILE).exists() else _saved_model(
            layout.resolve_export(path))
    if server is None:
        return local, None
    client = EmotionClient(server, model_name, tls=tls)
    assets = local[:3] if local is not None else tuple(client.signal_assets())
    name = input_name(assets[2])
    return SignalModel(*assets, lambda values: client.predict_signals(values, name)["probabilities"]), client


@dataclasses.dataclass(frozen=True)
class Recording:
    """One file's channels and windows: where it is (for rows and errors), the start of each window in seconds,
    and WESAD's state of each (an index of labels.WESAD, or None; all None for a CSV)."""

    file: str
    channels: dict[str, Channel]
    seconds: float
    starts: list[float]
    states: list[int | None]


def read(path: str | Path, model: SignalModel, rate: float | None, shift_seconds: float) -> Recording:
    """Reads and checks a recording and cuts it into the model's windows every `shift_seconds`."""
    path = Path(path)
    window = float(model.signal_spec["window_seconds"])
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if rate is not None:
            raise ValueError(f"{path}: --rate is for CSVs: a WESAD pickle's rates are WESAD's")
        recording = wesad_files.read_recording(path, model.sensors)
        size, shift = round(window * wesad_files.CHEST_RATE), round(shift_seconds * wesad_files.CHEST_RATE)
        # The builder's windows (wesad_files.windows) are those with a state; here every window is predicted.
        kept, _ = wesad_files.windows(recording.labels, size, shift)
        states = {each.start: each.state for each in kept}
        starts = wesad_files.window_starts(len(recording.labels), size, shift)
        return Recording(path.name, recording.channels, recording.seconds,
                         [start / wesad_files.CHEST_RATE for start in starts], [states.get(start) for start in starts])
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path}: predict-signals reads WESAD pickles (SX.pkl) and CSVs of signals (.csv)")
    channels = wesad_files.read_signals_csv(path, model.needed_channels, rate)
    first = next(iter(channels.values()))
    count, hertz = len(first.values), first.rate
    size, shift = round(window * hertz), round(shift_seconds * hertz)
    starts = [start / hertz for start in wesad_files.window_starts(count, size, shift)]
    return Recording(path.name, channels, count / hertz, starts, [None] * len(starts))


def model_inputs(recording: Recording, model: SignalModel, features: list[dict[str, float]]) -> np.ndarray:
    """What the model takes for each window: its features in the spec's order, or its resampled signals."""
    if model.input_spec.kind == "signal_features":
        return np.array([[row[name] for name in model.signal_spec["feature_names"]] for row in features], np.float32)
    spec = wesad_windows.WindowSpec(float(model.signal_spec["window_seconds"]), signal_rate=int(
        model.signal_spec["signal_rate"]))
    names = model.signal_spec["channels"]
    resampled = wesad_windows.resampled_channels(recording.channels, names, spec.signal_rate)
    return np.stack([wesad_windows.window_signals(resampled, names, start, spec) for start in recording.starts])


def columns(model: SignalModel) -> list[str]:
    return [*LEADING_COLUMNS, *model.class_names, PREDICTED_COLUMN, *model.signal_spec["feature_names"]]


def predict_recording(recording: Recording, model: SignalModel) -> pd.DataFrame:
    """One row per window of the recording (see the module's docstring); none for a recording shorter than one
    window."""
    if not recording.starts:
        return pd.DataFrame(columns=columns(model))
    window = float(model.signal_spec["window_seconds"])
    features = [wesad_windows.window_features(recording.channels, model.sensors, start, window)
                for start in recording.starts]
    inputs = model_inputs(recording, model, features)
    probabilities = np.concatenate([np.asarray(model.probabilities(inputs[first:first + BATCH_WINDOWS]), np.float64)
                                    for first in range(0, len(inputs), BATCH_WINDOWS)])
    scheme = labels.label_set_of(model.class_names)
    table = pd.DataFrame({
        "file": recording.file, "start_seconds": recording.starts,
        "state": [None if state is None else labels.WESAD[state] for state in recording.states]})
    table["true_label"] = [None if state is None or scheme is None else labels.scheme(scheme).class_of(state)
                           for state in table["state"]]
    for column, name in enumerate(model.class_names):
        table[name] = probabilities[:, column]
    table[PREDICTED_COLUMN] = [model.class_names[k] for k in probabilities.argmax(axis=1)]
    feature_table = pd.DataFrame(features, columns=model.signal_spec["feature_names"], dtype=np.float64)
    return pd.concat([table, feature_table], axis=1)[columns(model)]


def check_output_path(path: str | Path) -> None:
    """Raises ValueError, before any work is done, if rows could not be written to `path`."""
    if Path(path).suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"{path}: the output must end in {' or '.join(OUTPUT_SUFFIXES)}")


def write_rows(table: pd.DataFrame, path: str | Path) -> None:
    """The rows as CSV (empty cells where a value is missing) or JSON lines (null)."""
    check_output_path(path)
    if Path(path).suffix.lower() == ".csv":
        table.to_csv(path, index=False)
    else:
        Path(path).write_text("".join(json.dumps({key: (None if isinstance(value, float) and np.isnan(value)
                                                        else value) for key, value in row.items()}) + "\n"
                                      for row in table.to_dict(orient="records")))


def summary(table: pd.DataFrame, recording: Recording, window_seconds: float, seconds_taken: float) -> str:
    """A line for the console: the windows predicted, and the accuracy where windows have a true label."""
    if table.empty:
        return (f"{recording.file}: {recording.seconds:.1f} s of signal is shorter than one {window_seconds:g} s "
                f"window: no rows")
    counts = table[PREDICTED_COLUMN].value_counts()
    line = (f"{recording.file}: {len(table)} windows of {recording.seconds / 60:.1f} min in {seconds_taken:.1f} s; "
            f"predicted {', '.join(f'{name} {count}' for name, count in counts.items())}")
    labelled = table["true_label"].notna()
    if labelled.any():
        right = (table.loc[labelled, PREDICTED_COLUMN] == table.loc[labelled, "true_label"]).mean()
        line += f"; accuracy {right:.3f} on the {int(labelled.sum())} windows with a state of the model's classes"
    return line


def predict_files(files: Sequence[str | Path], model: SignalModel, rate: float | None = None,
                  shift_seconds: float | None = None, report: Callable[[str], object] = print) -> pd.DataFrame:
    """Every window's row of every file, in order; `report` gets a line per file."""
    shift = float(model.signal_spec["shift_seconds"]) if shift_seconds is None else shift_seconds
    if not shift > 0:
        raise ValueError(f"--shift must be a positive number of seconds, not {shift_seconds!r}")
    tables = []
    for path in files:
        started = time.perf_counter()
        recording = read(path, model, rate, shift)
        table = predict_recording(recording, model)
        report(summary(table, recording, float(model.signal_spec["window_seconds"]), time.perf_counter() - started))
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns(model))


def run(files: Sequence[str], model: str | None = None, server: str | None = None,
        model_name: str = DEFAULT_MODEL_NAME, tls: ClientTls | None = None, rate: float | None = None,
        shift_seconds: float | None = None, output: str | None = None) -> pd.DataFrame:
    """`emopy predict-signals`: writes the rows to `output` (.csv or .jsonl), or prints one line per window; a
    line per file goes to stderr. Returns the rows."""
    if output is not None:
        check_output_path(output)
    signal_model, client = open_model(model, server, model_name, tls)
    try:
        table = predict_files(files, signal_model, rate, shift_seconds,
                              report=lambda line: print(line, file=sys.stderr))
    except ServingRequestError as error:  # the server's refusal, as one line like every other error here
        raise ValueError(str(error)) from None
    finally:
        if client is not None:
            client.close()
    if output is not None:
        write_rows(table, output)
        print(f"{len(table)} rows written to {output}", file=sys.stderr)
    else:
        width = max((len(name) for name in table["file"]), default=0)
        for row in table.to_dict(orient="records"):
            truth = f"  (true: {row['true_label']})" if isinstance(row["true_label"], str) else ""
            print(f"{row['file']:<{width}}  {row['start_seconds']:>8.2f} s  {row[PREDICTED_COLUMN]:<10} "
                  f"{row[row[PREDICTED_COLUMN]]:.3f}{truth}")
    return table
