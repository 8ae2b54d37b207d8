"""Heart rate from one window of the wrist's blood-volume pulse (Empatica E4's PPG, 64 Hz), from neurokit2's
pulse peaks."""

from __future__ import annotations

import numpy as np
import neurokit2 as nk

FEATURES: tuple[str, ...] = ("heart_rate",)

# Two beat-to-beat intervals, as for the ECG: one alone is too easily a missed or doubled pulse.
MIN_PEAKS = 3


def features(signal: np.ndarray, rate: float) -> dict[str, float]:
    """heart_rate in beats a minute (60 / the mean interval between pulse peaks); NaN with fewer than 3 peaks."""
    nan = dict.fromkeys(FEATURES, float("nan"))
    if np.ptp(signal) == 0:
        return nan
    cleaned = nk.ppg_clean(signal, sampling_rate=rate)
    _, info = nk.ppg_peaks(cleaned, sampling_rate=rate, correct_artifacts=True)
    peaks = np.asarray(info["PPG_Peaks"])
    if peaks.size < MIN_PEAKS:
        return nan
    return {"heart_rate": 60.0 * rate / float(np.mean(np.diff(peaks)))}
