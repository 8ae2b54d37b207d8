"""Tonic level and skin-conductance responses of one EDA window (chest RespiBAN at 700 Hz, wrist E4 at 4 Hz), from
neurokit2's tonic/phasic decomposition and SCR peaks."""

from __future__ import annotations

import warnings

import numpy as np
import neurokit2 as nk
import scipy.signal

FEATURES: tuple[str, ...] = ("tonic_level", "scr_count", "scr_amplitude")

# Skin conductance changes below ~1 Hz, and neurokit2's cleaning low-passes it at 3 Hz: a 700 Hz window is
# decimated to ~32 Hz first (anti-aliased), which leaves the responses as they were and is ~4x faster.
WORKING_RATE = 32.0

# neurokit2 finds SCRs relative to the window's largest phasic peak, so on quiet skin it counts the noise's
# ripples (~0.001-0.005 uS). 0.01 uS is the usual smallest response scored (Boucsein, Electrodermal Activity,
# 2012; the Society for Psychophysiological Research's 2012 recommendations).
MIN_SCR_AMPLITUDE = 0.01


def features(signal: np.ndarray, rate: float) -> dict[str, float]:
    """tonic_level (mean of the tonic component, uS); scr_count (SCRs of at least 0.01 uS peaking in the window,
    whose onset is in it too) and scr_amplitude (their mean peak-minus-onset amplitude in uS, 0.0 when there are
    none). A flat window (sensor off, or saturated) has a level but no SCR features: both NaN."""
    if np.ptp(signal) == 0:
        return {"tonic_level": float(np.mean(signal)), "scr_count": float("nan"), "scr_amplitude": float("nan")}
    factor = int(rate // WORKING_RATE)
    if factor >= 2:
        # padtype "line": the default zero padding would bend the window's ends down towards 0 uS.
        signal = scipy.signal.resample_poly(signal, 1, factor, padtype="line")
        rate = rate / factor
    with warnings.catch_warnings():
        # At the E4's 4 Hz there is nothing above 2 Hz to remove, and neurokit2 says it skips the filter.
        warnings.filterwarnings("ignore", message="EDA signal is sampled at very low frequency",
                                category=nk.misc.NeuroKitWarning)
        cleaned = nk.eda_clean(signal, sampling_rate=rate, method="neurokit")
    decomposed = nk.eda_phasic(cleaned, sampling_rate=rate, method="highpass")
    tonic_level = float(decomposed["EDA_Tonic"].mean())
    phasic = decomposed["EDA_Phasic"].to_numpy()
    # eda_peaks fails on a window without a single phasic peak, which is a count of 0, not an error.
    if len(nk.eda_findpeaks(phasic, sampling_rate=rate, method="neurokit")["SCR_Peaks"]) == 0:
        return {"tonic_level": tonic_level, "scr_count": 0.0, "scr_amplitude": 0.0}
    with warnings.catch_warnings():
        # A window whose only peaks have their onsets before it (a rising tonic level, a response that began in
        # the window before) leaves neurokit2 a minimum of no onsets: those peaks get a NaN amplitude, below.
        warnings.filterwarnings("ignore", message="All-NaN slice encountered", category=RuntimeWarning)
        _, info = nk.eda_peaks(phasic, sampling_rate=rate, method="neurokit")
    amplitudes = np.asarray(info["SCR_Amplitude"], dtype=float)
    # NaN amplitude: a peak whose onset lies before the window (a response that began in the last one).
    responses = amplitudes[np.isfinite(amplitudes) & (amplitudes >= MIN_SCR_AMPLITUDE)]
    return {
        "tonic_level": tonic_level,
        "scr_count": float(responses.size),
        "scr_amplitude": float(responses.mean()) if responses.size else 0.0,
    }
