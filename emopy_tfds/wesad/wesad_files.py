"""WESAD's files: finding the subjects' pickles, reading and checking one, and cutting it into labelled windows;
and, for prediction on other recordings, reading and checking a CSV of signals by emopy's channel names.

Each subject's `SX/SX.pkl` (pickled by Python 2: read with encoding="latin1") holds
`{"subject": "SX", "signal": {"chest": {...}, "wrist": {...}}, "label": int array at 700 Hz}`. Every chest channel
is an array of shape (samples, 1), or (samples, 3) for ACC, at 700 Hz, as long as the labels; the wrist's are at
the Empatica E4's own rates (WRIST_RATES) over the same time.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import re
from typing import Callable, Sequence

import numpy as np
from etils import epath

CHEST_RATE = 700  # Hz: the RespiBAN's channels and the labels
WRIST_RATES = {"ACC": 32, "BVP": 64, "EDA": 4, "TEMP": 4}  # Hz: the Empatica E4's channels
CHEST_CHANNELS = ("ACC", "ECG", "EMG", "EDA", "Temp", "Resp")
# WESAD's label ids: 1..4 are the states of labels.WESAD, in order; 0 is transient, 5..7 are not to be used.
FIRST_STATE, LAST_STATE = 1, 4
# A wrist channel may be this many seconds shorter or longer than the labels say (the E4 starts and stops on its
# own clock): more is another sampling rate than WESAD's.
LENGTH_TOLERANCE_SECONDS = 2.0
SUBJECT_FILE = re.compile(r"^S(\d+)\.pkl$")
SENSORS = {"chest": ("chest",), "wrist": ("wrist",), "both": ("chest", "wrist")}
# A CSV of signals may carry each sample's time in seconds in this column; its steps then say the rate.
TIME_COLUMN = "time"
# How far a CSV's time steps may stray from their median (the rounding of written times), and how far the rate
# they give may differ from the rate stated, before the file is refused.
TIME_STEP_TOLERANCE = 0.1
RATE_TOLERANCE = 0.01


class WesadFileError(ValueError):
    """A WESAD file that cannot be read as WESAD's: the message names the file and the channel."""


@dataclasses.dataclass(frozen=True)
class Channel:
    """One signal of a recording, by emopy's name (e.g. "chest_ecg", "wrist_acc_x"): its samples and rate."""

    name: str
    values: np.ndarray  # float64 [samples]
    rate: float


@dataclasses.dataclass(frozen=True)
class Recording:
    subject: str
    labels: np.ndarray  # int [samples at CHEST_RATE]
    channels: dict[str, Channel]

    @property
    def seconds(self) -> float:
        return len(self.labels) / CHEST_RATE


@dataclasses.dataclass(frozen=True)
class Window:
    """A window of a recording: its first label sample, its state (an index of labels.WESAD) and the share of
    its samples in that state."""

    start: int
    state: int
    share: float


def channel_names(sensor: str) -> tuple[str, ...]:
    """emopy's names of a sensor's channels ("chest" or "wrist"), in the order examples store them."""
    if sensor == "chest":
        return ("chest_ecg", "chest_eda", "chest_emg", "chest_resp", "chest_temp",
                "chest_acc_x", "chest_acc_y", "chest_acc_z")
    return ("wrist_bvp", "wrist_eda", "wrist_temp", "wrist_acc_x", "wrist_acc_y", "wrist_acc_z")


def subject_number(subject: str) -> int:
    return int(subject.lstrip("S"))


def find_subject_files(manual_dir: epath.Path) -> list[epath.Path]:
    """Every subject's pickle, in subject order: under `manual_dir` as WESAD.zip unpacks (WESAD/SX/SX.pkl) or
    its subject folders directly (SX/SX.pkl)."""
    roots = [manual_dir / "WESAD", manual_dir]
    for root in roots:
        if not root.is_dir():
            continue
        found = [folder / f"{folder.name}.pkl" for folder in root.iterdir()
                 if folder.is_dir() and SUBJECT_FILE.match(f"{folder.name}.pkl")
                 and (folder / f"{folder.name}.pkl").exists()]
        if found:
            return sorted(found, key=lambda path: subject_number(path.parent.name))
    raise FileNotFoundError(f"no WESAD subject pickles (SX/SX.pkl) in {manual_dir} or {manual_dir / 'WESAD'}")


def _named(where: str, channel: str) -> Callable[[str], WesadFileError]:
    return lambda problem: WesadFileError(f"{where}: channel {channel}: {problem}")


def _column(values, where: str, channel: str, width: int = 1) -> np.ndarray:
    error = _named(where, channel)
    array = np.asarray(values)
    if array.ndim == 1 and width == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != width:
        raise error(f"shape {array.shape}, expected (samples, {width})")
    if not np.issubdtype(array.dtype, np.number):
        raise error(f"dtype {array.dtype} is not numeric")
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        first = int(np.argmax(bad))
        raise error(f"{int(bad.sum())} sample(s) are NaN or infinite, the first at sample {first}")
    return array.astype(np.float64)


def _expect_length(array: np.ndarray, seconds: float, rate: float, where: str, channel: str) -> None:
    expected = seconds * rate
    if abs(len(array) - expected) > LENGTH_TOLERANCE_SECONDS * rate:
        implied = len(array) / seconds if seconds else float("nan")
        raise _named(where, channel)(
            f"{len(array)} samples over the labels' {seconds:.1f} s is {implied:.1f} Hz; WESAD records it at "
            f"{rate:g} Hz")


def parse_recording(data, where: str, sensors: Sequence[str] = ("chest", "wrist")) -> Recording:
    """A Recording of the sensors asked for, from an unpickled SX.pkl; `where` names the file in errors."""
    if not isinstance(data, dict) or not {"signal", "label"} <= set(data):
        keys = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise WesadFileError(f"{where}: not a WESAD pickle: expected a dict with 'signal' and 'label', got {keys}")
    labels = np.asarray(data["label"])
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.number) or not np.isfinite(labels).all():
        raise WesadFileError(f"{where}: channel label: expected finite ids of shape (samples,), got "
                             f"{labels.dtype} {labels.shape}")
    seconds = len(labels) / CHEST_RATE
    subject = str(data.get("subject") or epath.Path(where).stem)
    channels: dict[str, Channel] = {}
    for sensor in sensors:
        signals = data["signal"].get(sensor) if isinstance(data["signal"], dict) else None
        if not isinstance(signals, dict):
            raise WesadFileError(f"{where}: channel {sensor}: missing (the pickle has no {sensor} signals)")
        rates = {name: CHEST_RATE for name in CHEST_CHANNELS} if sensor == "chest" else WRIST_RATES
        for raw_name, rate in rates.items():
            channel = f"{sensor}/{raw_name}"
            if raw_name not in signals:
                raise _named(where, channel)(f"missing; the {sensor} signals are {', '.join(sorted(signals))}")
            width = 3 if raw_name == "ACC" else 1
            array = _column(signals[raw_name], where, channel, width)
            if sensor == "chest" and len(array) != len(labels):
                raise _named(where, channel)(
                    f"{len(array)} samples, but {len(labels)} labels: chest channels and labels are all at "
                    f"{CHEST_RATE} Hz")
            _expect_length(array, seconds, rate, where, channel)
            base = f"{sensor}_{raw_name.lower()}"
            columns = [f"{base}_{axis}" for axis in "xyz"] if width == 3 else [base]
            for column, values in zip(columns, array.T):
                channels[column] = Channel(column, values, float(rate))
    return Recording(subject, labels.astype(np.int64), channels)


def read_recording(path: epath.Path | str, sensors: Sequence[str] = ("chest", "wrist")) -> Recording:
    """Reads and checks one subject's SX.pkl (see parse_recording)."""
    path = epath.Path(path)
    where = f"{path.parent.name}/{path.name}"
    try:
        data = pickle.load(io.BytesIO(path.read_bytes()), encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as error:
        raise WesadFileError(f"{where}: not a readable pickle: {error}") from None
    return parse_recording(data, where, sensors)


def window_starts(samples: int, window_samples: int, shift_samples: int) -> range:
    """The first sample of every whole window of a recording of `samples` samples; none if it is shorter than one."""
    return range(0, samples - window_samples + 1, shift_samples)


def windows(labels: np.ndarray, window_samples: int, shift_samples: int) -> tuple[list[Window], int]:
    """Windows of `window_samples` labels every `shift_samples`, each with its majority label, and how many were
    left out because that label is no state (WESAD's 0 and 5..7). A recording shorter than one window has none."""
    kept, unlabelled = [], 0
    for start in window_starts(len(labels), window_samples, shift_samples):
        counts = np.bincount(labels[start:start + window_samples].clip(0, 8), minlength=9)
        label = int(np.argmax(counts))
        if FIRST_STATE <= label <= LAST_STATE:
            kept.append(Window(start, label - FIRST_STATE, float(counts[label] / window_samples)))
        else:
            unlabelled += 1
    return kept, unlabelled


def _csv_rate(times: np.ndarray, rate: float | None, where: str) -> float:
    """The rate of a CSV's samples: the stated one, checked against the time column where there is one."""
    error = _named(where, TIME_COLUMN)
    if times is None:
        if rate is None:
            raise WesadFileError(f"{where}: no {TIME_COLUMN!r} column and no rate stated: give the rate its rows are "
                                 f"sampled at (--rate HZ), or a {TIME_COLUMN!r} column in seconds")
        return rate
    times = _column(times, where, TIME_COLUMN)[:, 0]
    steps = np.diff(times)
    if steps.size == 0:
        if rate is None:
            raise error("one sample gives no rate: state it (--rate HZ)")
        return rate
    step = float(np.median(steps))
    if step <= 0:
        raise error("times must increase from row to row")
    uneven = np.abs(steps - step) > TIME_STEP_TOLERANCE * step
    if uneven.any():
        row = int(np.argmax(uneven)) + 1
        raise error(f"samples must be evenly spaced: sample {row} comes {steps[row - 1]:.6g} s after the one before, "
                    f"where the others come every {step:.6g} s (a gap, or rows out of order)")
    found = 1.0 / step
    if rate is not None and abs(found - rate) > RATE_TOLERANCE * rate:
        raise error(f"its steps are {found:.4g} Hz, but the rate stated is {rate:g} Hz")
    return rate if rate is not None else found


def read_signals_csv(path: epath.Path | str, names: Sequence[str], rate: float | None = None,
                     ) -> dict[str, Channel]:
    """The channels `names` (emopy's names: "chest_ecg", "wrist_bvp", ...) of a CSV of signals, one column per
    channel and one row per sample, all at one rate: `rate` Hz, or the rate its optional "time" column (seconds)
    steps at, which must agree with `rate` where both are given. Other columns are ignored. Checked as the
    pickles are: a channel missing, empty or NaN cells, or a rate the times contradict is a WesadFileError naming
    the file and the channel."""
    # Here, not at the top: the builder's workers, which import this module, never read CSVs.
    import pandas as pd

    path = epath.Path(path)
    where = path.name
    if rate is not None and not (np.isfinite(rate) and rate > 0):
        raise WesadFileError(f"{where}: the rate must be a positive number of Hz, not {rate!r}")
    try:
        with path.open() as file:
            table = pd.read_csv(file, usecols=lambda column: column.strip() in {*names, TIME_COLUMN})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise WesadFileError(f"{where}: not a readable CSV: {str(error).splitlines()[0]}") from None
    table.columns = [column.strip() for column in table.columns]
    missing = [name for name in names if name not in table.columns]
    if missing:
        raise _named(where, missing[0])(
            f"missing; the model needs the columns {', '.join(names)} (named as emopy names them)")
    rate = _csv_rate(table[TIME_COLUMN].to_numpy() if TIME_COLUMN in table.columns else None, rate, where)
    return {name: Channel(name, _column(table[name].to_numpy(), where, name)[:, 0], float(rate)) for name in names}
