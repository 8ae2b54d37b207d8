"""Breathing rate and depth of one respiration window (RespiBAN's chest belt, 700 Hz), from neurokit2's breath
peaks and troughs."""

from __future__ import annotations

import numpy as np
import neurokit2 as nk
import scipy.signal

FEATURES: tuple[str, ...] = ("rate", "depth")

# Breathing is below 1 Hz and neurokit2's cleaning band-passes it at 0.05-3 Hz: a 700 Hz window is decimated to
# ~35 Hz first (anti-aliased), which changes no breath and takes neurokit2 from ~0.28 s to ~0.01 s.
WORKING_RATE = 35.0

# Two whole breaths: a rate from one interval is too easily a sigh or a swallow.
MIN_BREATHS = 3


def features(signal: np.ndarray, rate: float) -> dict[str, float]:
    """rate: breaths a minute (60 / the mean interval between inhalation peaks); depth: the mean peak-to-trough
    amplitude of the breaths (each peak less the trough before it), in the signal's units. Both NaN with fewer
    than 3 breaths (a flat or held-breath window)."""
    nan = dict.fromkeys(FEATURES, float("nan"))
    if np.ptp(signal) == 0:
        return nan
    factor = int(rate // WORKING_RATE)
    if factor >= 2:
        # padtype "line": zero padding would bend the ends of a belt signal that sits far from 0.
        signal = scipy.signal.resample_poly(signal, 1, factor, padtype="line")
        rate = rate / factor
    cleaned = nk.rsp_clean(signal, sampling_rate=rate)
    # neurokit2 finds breaths between the cleaned (zero-centred) signal's crossings of 0, and fails with an
    # IndexError when it rises or falls through 0 nowhere; fewer than 2 of each cannot hold 3 breaths anyway.
    rises = np.count_nonzero((cleaned[:-1] < 0) & (cleaned[1:] > 0))
    falls = np.count_nonzero((cleaned[:-1] > 0) & (cleaned[1:] < 0))
    if min(rises, falls) < MIN_BREATHS - 1:
        return nan
    _, info = nk.rsp_peaks(cleaned, sampling_rate=rate)
    peaks, troughs = np.asarray(info["RSP_Peaks"]), np.asarray(info["RSP_Troughs"])
    if peaks.size < MIN_BREATHS:
        return nan
    # neurokit2 pairs them: as many troughs as peaks, each trough before its peak.
    return {"rate": 60.0 * rate / float(np.mean(np.diff(peaks))),
            "depth": float(np.mean(cleaned[peaks] - cleaned[troughs]))}
