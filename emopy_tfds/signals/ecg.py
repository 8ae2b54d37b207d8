"""Heart rate and heart-rate variability of one ECG window (RespiBAN's chest ECG, 700 Hz), from neurokit2's R-peaks."""

from __future__ import annotations

import numpy as np
import neurokit2 as nk

FEATURES: tuple[str, ...] = ("heart_rate", "mean_rr", "sdnn", "rmssd", "lf_hf")

# Two RR intervals are the fewest from which a spread (SDNN, RMSSD) means anything.
MIN_PEAKS = 3


def features(signal: np.ndarray, rate: float) -> dict[str, float]:
    """heart_rate (beats a minute, 60,000 / mean_rr), mean_rr, sdnn and rmssd (ms), and lf_hf (LF 0.04-0.15 Hz
    over HF 0.15-0.4 Hz power of the RR series). All NaN with fewer than 3 R-peaks (a flat or lead-off window);
    lf_hf NaN where neurokit2 cannot estimate a band in the window."""
    nan = dict.fromkeys(FEATURES, float("nan"))
    if np.ptp(signal) == 0:
        return nan
    cleaned = nk.ecg_clean(signal, sampling_rate=rate)
    # Kubios' artefact correction (Lipponen & Tarvainen 2019): one missed or extra beat would otherwise
    # dominate SDNN and RMSSD of a 60 s window. It needs a few beats to judge by.
    _, info = nk.ecg_peaks(cleaned, sampling_rate=rate, correct_artifacts=True)
    peaks = np.asarray(info["ECG_R_Peaks"])
    if peaks.size < MIN_PEAKS:
        return nan
    time_domain = nk.hrv_time(peaks, sampling_rate=rate).iloc[0]
    frequency_domain = nk.hrv_frequency(peaks, sampling_rate=rate).iloc[0]
    mean_rr = float(time_domain["HRV_MeanNN"])
    return {
        "heart_rate": 60_000.0 / mean_rr,
        "mean_rr": mean_rr,
        "sdnn": float(time_domain["HRV_SDNN"]),
        "rmssd": float(time_domain["HRV_RMSSD"]),
        "lf_hf": float(frequency_domain["HRV_LFHF"]),
    }
