"""Level and trend of one skin-temperature window (chest RespiBAN at 700 Hz, wrist E4 at 4 Hz)."""

from __future__ import annotations

import numpy as np

FEATURES: tuple[str, ...] = ("level", "slope")


def features(signal: np.ndarray, rate: float) -> dict[str, float]:
    """level: the mean in deg C; slope: the least-squares line's slope in deg C a minute. Defined for any window
    of 2 samples or more (a flat one has slope 0.0); slope NaN for a single sample."""
    # No downsampling: a least-squares line through 42,000 samples costs about a millisecond.
    level = float(np.mean(signal))
    if signal.size < 2:
        return {"level": level, "slope": float("nan")}
    minutes = np.arange(signal.size) / (rate * 60.0)
    # polyfit's first coefficient is the slope; centring time and level keeps it exact for long windows.
    slope = np.polyfit(minutes - minutes.mean(), signal - level, 1)[0]
    return {"level": level, "slope": float(slope)}
