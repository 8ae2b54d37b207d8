"""One window of a WESAD-like recording as an example: its channels resampled to one rate, and the preprocessors'
named features. Shared by the builder's Beam stage and by prediction on new recordings."""

from __future__ import annotations

import dataclasses
import fractions
from typing import Mapping, Sequence

import numpy as np
from scipy import signal as scipy_signal

from emopy_tfds.wesad import wesad_files
from emopy_tfds.wesad.wesad_files import Channel

# Which preprocessor reads which channel, and the prefix of its features' names: the wrist's EDA and temperature
# features are "wrist_eda_..." and "wrist_temp_..." beside the chest's "eda_..." and "temp_...".
FEATURE_CHANNELS = {
    "chest": (("chest_ecg", "ecg", ""), ("chest_eda", "eda", ""), ("chest_emg", "emg", ""),
              ("chest_resp", "resp", ""), ("chest_temp", "temp", "")),
    "wrist": (("wrist_bvp", "bvp", ""), ("wrist_eda", "eda", "wrist_"), ("wrist_temp", "temp", "wrist_")),
}


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """How recordings are cut and stored: window and shift in seconds, and the rate every channel is resampled
    to for `signals`."""

    window_seconds: float = 60.0
    shift_seconds: float = 15.0
    signal_rate: int = 32

    @property
    def window_samples(self) -> int:
        """Samples of one window of `signals`."""
        return round(self.window_seconds * self.signal_rate)


def channel_names(sensors: Sequence[str]) -> tuple[str, ...]:
    """The columns of `signals`, for these sensors ("chest", "wrist"), in order."""
    return tuple(name for sensor in sensors for name in wesad_files.channel_names(sensor))


def feature_names(sensors: Sequence[str]) -> tuple[str, ...]:
    """The named features of a window, for these sensors, in order."""
    # Here, not at the top: the preprocessors load neurokit2 (and scikit-learn, 2-3 s), which `import emopy_tfds`
    # (every emopy command) must not pay for.
    from emopy_tfds import signals

    return tuple(name for sensor in sensors for _, kind, prefix in FEATURE_CHANNELS[sensor]
                 for name in signals.feature_names(kind, prefix))


def resample(values: np.ndarray, rate: float, target_rate: int) -> np.ndarray:
    """A channel at `target_rate`, by polyphase filtering (which low-passes before it decimates)."""
    ratio = fractions.Fraction(target_rate) / fractions.Fraction(rate).limit_denominator(1000)
    if ratio == 1:
        return values.astype(np.float32)
    return scipy_signal.resample_poly(values, ratio.numerator, ratio.denominator).astype(np.float32)


def resampled_channels(channels: Mapping[str, Channel], names: Sequence[str], target_rate: int) -> dict[str, np.ndarray]:
    """Each named channel over the whole recording at `target_rate`: resampled once, then cut into windows."""
    return {name: resample(channels[name].values, channels[name].rate, target_rate) for name in names}


def _cut(values: np.ndarray, start: int, length: int) -> np.ndarray:
    """`length` samples from `start`, the last sample repeated where the channel ends early (the wrist's E4 may stop
    up to wesad_files.LENGTH_TOLERANCE_SECONDS before the chest's labels do)."""
    part = values[start:start + length]
    if len(part) < length:
        part = np.concatenate([part, np.full(length - len(part), values[-1] if len(values) else 0.0, values.dtype)])
    return part


def window_signals(resampled: Mapping[str, np.ndarray], names: Sequence[str], start_seconds: float,
                   spec: WindowSpec) -> np.ndarray:
    """float32 [window_samples, channels]: the window's resampled channels side by side."""
    start = round(start_seconds * spec.signal_rate)
    return np.stack([_cut(resampled[name], start, spec.window_samples) for name in names], axis=1)


def window_features(channels: Mapping[str, Channel], sensors: Sequence[str], start_seconds: float,
                    window_seconds: float) -> dict[str, float]:
    """The preprocessors' features of one window, each read from its channel at the channel's own rate."""
    from emopy_tfds import signals  # see feature_names

    features = {}
    for sensor in sensors:
        for name, kind, prefix in FEATURE_CHANNELS[sensor]:
            channel = channels[name]
            start = round(start_seconds * channel.rate)
            values = _cut(channel.values, start, round(window_seconds * channel.rate))
            features.update(signals.extract(kind, values, channel.rate, prefix))
    return features
