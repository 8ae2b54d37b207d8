"""Features of physiological signals (ECG, EDA, EMG, respiration, temperature, BVP) for one window of one channel,
as WESAD's builder stores them beside each window: one module per signal, each built on neurokit2.

Each module has `FEATURES` (the names of what it measures) and `features(signal, rate)`, which returns exactly
those names with float values, NaN where a value is undefined in the window (a flat channel, too few beats).
`extract` checks the window first and gives each feature its full name, `{prefix}{kind}_{feature}`
("ecg_heart_rate", "wrist_eda_scr_count"), the name the datasets' features carry.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from emopy_tfds.signals import bvp, ecg, eda, emg, respiration, temperature

# The shortest window any preprocessor can read: neurokit2's filters need a few seconds of samples, and 10 s
# holds ~10 heartbeats and 3 fast breaths. WESAD's windows are 60 s.
MIN_SECONDS = 10.0

PREPROCESSORS: dict[str, ModuleType] = {
    "ecg": ecg,
    "eda": eda,
    "emg": emg,
    "resp": respiration,
    "temp": temperature,
    "bvp": bvp,
}


def _preprocessor(kind: str) -> ModuleType:
    try:
        return PREPROCESSORS[kind]
    except KeyError:
        raise ValueError(f"unknown signal kind {kind!r}; known kinds: {', '.join(PREPROCESSORS)}") from None


def feature_names(kind: str, prefix: str = "") -> tuple[str, ...]:
    """The full names of `kind`'s features, in the order of its FEATURES: feature_names("resp") is
    ("resp_rate", "resp_depth"); with prefix "wrist_", "wrist_eda_tonic_level" and so on."""
    return tuple(f"{prefix}{kind}_{feature}" for feature in _preprocessor(kind).FEATURES)


def validate(signal: np.ndarray, rate: float) -> tuple[np.ndarray, float]:
    """The window as a 1-D float64 array and its rate in Hz as a float, or a ValueError saying what is wrong with
    them (the caller adds which file and channel they came from)."""
    try:
        hertz = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"the sampling rate must be a positive number of Hz, got {rate!r}") from None
    if not (np.isfinite(hertz) and hertz > 0):
        raise ValueError(f"the sampling rate must be a positive number of Hz, got {rate!r}")
    array = np.asarray(signal)
    if array.ndim != 1:
        raise ValueError(f"a signal window must be 1-D (one channel), got shape {array.shape}")
    if array.size == 0:
        raise ValueError("a signal window must not be empty")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"a signal window must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        bad = np.flatnonzero(~np.isfinite(array))
        raise ValueError(f"a signal window must be finite: {bad.size} of {array.size} samples are NaN or infinite "
                         f"(the first at sample {bad[0]})")
    if array.size < MIN_SECONDS * hertz:
        raise ValueError(f"a signal window must be at least {MIN_SECONDS:g} s long, got {array.size} samples "
                         f"({array.size / hertz:.3g} s at {hertz:g} Hz)")
    return array, hertz


def extract(kind: str, signal: np.ndarray, rate: float, prefix: str = "") -> dict[str, float]:
    """`kind`'s features of one window sampled at `rate` Hz, under their full names (see feature_names)."""
    module = _preprocessor(kind)
    values = module.features(*validate(signal, rate))
    return {f"{prefix}{kind}_{feature}": float(values[feature]) for feature in module.FEATURES}
