"""Amplitude and activation of one EMG window (RespiBAN's chest EMG, 700 Hz), from neurokit2's cleaning, linear
envelope and event finding."""

from __future__ import annotations

import warnings

import numpy as np
import neurokit2 as nk

FEATURES: tuple[str, ...] = ("amplitude", "activation")

# Activation is the envelope above its resting level (median) by this many robust spreads (scaled MADs), for at
# least MIN_BURST_SECONDS. Not neurokit2's emg_activation, for two reasons. Its default threshold, a tenth of the
# envelope's standard deviation, lies under a quiet window's whole envelope, so steady noise reads as fully active
# (it reports 0 only because it drops an activation that starts with the window). And it formats its output
# sample by sample in pandas: ~3 s for a 700 Hz minute. On bursts the two agree to 0.1% of the window; on noise
# this gives 0 (tests/test_signals.py).
THRESHOLD_SPREADS = 5.0
MIN_BURST_SECONDS = 0.05  # neurokit2's emg_activation default


def features(signal: np.ndarray, rate: float) -> dict[str, float]:
    """amplitude: RMS of the cleaned signal (neurokit2's 100 Hz high-pass, which removes the ECG and movement),
    in the signal's units (mV for WESAD); activation: the share of the window, in [0, 1], in bursts where
    neurokit2's TKEO linear envelope stands 5 robust spreads above its median for 50 ms or more. A window active
    throughout has no resting level to compare with and reads low: amplitude is the feature for tonic tension.
    A flat window (electrode off) has amplitude 0.0 and activation NaN."""
    if np.ptp(signal) == 0:
        return {"amplitude": 0.0, "activation": float("nan")}
    cleaned = nk.emg_clean(signal, sampling_rate=rate)
    amplitude = float(np.sqrt(np.mean(np.square(cleaned))))
    envelope = nk.emg_amplitude(cleaned, sampling_rate=rate)
    rest = float(np.median(envelope))
    spread = 1.4826 * float(np.median(np.abs(envelope - rest)))  # the MAD scaled to a Gaussian's SD
    with warnings.catch_warnings():
        # A window where the muscle never contracts has no bursts, and neurokit2 warns it found no events.
        warnings.filterwarnings("ignore", message="No events found", category=nk.misc.NeuroKitWarning)
        bursts = nk.events_find(envelope, threshold=rest + THRESHOLD_SPREADS * spread, threshold_keep="above",
                                duration_min=max(1, int(MIN_BURST_SECONDS * rate)))
    return {"amplitude": amplitude, "activation": float(np.sum(bursts["duration"])) / envelope.size}
