"""The physiological-signal preprocessors (emopy_tfds/signals) read known values off neurokit2's simulated signals,
turn uninformative windows into NaN rather than errors, and refuse malformed input."""

from __future__ import annotations

import ast
import math
import warnings
from pathlib import Path

import neurokit2 as nk
import numpy as np
import pytest

from emopy_tfds import signals
from emopy_tfds.signals import bvp, ecg, eda, emg, respiration, temperature

CHEST = 700  # RespiBAN's rate, Hz
MINUTE = 60


def quietly(kind: str, signal: np.ndarray, rate: float, prefix: str = "") -> dict[str, float]:
    """extract, failing the test on any warning that escapes it: every case the preprocessors turn into NaN or 0
    is meant to be silent."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return signals.extract(kind, signal, rate, prefix)


# ---------------------------------------------------------------- the registry and the names


def test_the_registry_holds_one_module_per_signal():
    assert signals.PREPROCESSORS == {"ecg": ecg, "eda": eda, "emg": emg, "resp": respiration, "temp": temperature,
                                     "bvp": bvp}


def test_feature_names_are_kind_then_feature_with_the_prefix_in_front():
    assert signals.feature_names("ecg") == ("ecg_heart_rate", "ecg_mean_rr", "ecg_sdnn", "ecg_rmssd", "ecg_lf_hf")
    assert signals.feature_names("resp") == ("resp_rate", "resp_depth")
    assert signals.feature_names("temp") == ("temp_level", "temp_slope")
    assert signals.feature_names("bvp") == ("bvp_heart_rate",)
    assert signals.feature_names("eda", prefix="wrist_") == (
        "wrist_eda_tonic_level", "wrist_eda_scr_count", "wrist_eda_scr_amplitude")


@pytest.mark.parametrize("kind", sorted(signals.PREPROCESSORS))
def test_extract_and_features_give_exactly_the_named_features_as_floats(kind):
    module = signals.PREPROCESSORS[kind]
    rate = 64.0 if kind == "bvp" else 4.0 if kind == "temp" else float(CHEST)
    window = np.random.default_rng(0).normal(0.0, 1.0, int(MINUTE * rate)) + 30.0
    plain = module.features(window, rate)
    assert tuple(plain) == module.FEATURES
    named = signals.extract(kind, window, rate, prefix="chest_")
    assert tuple(named) == signals.feature_names(kind, prefix="chest_")
    assert all(type(value) is float for value in named.values())
    assert [named[f"chest_{kind}_{feature}"] for feature in module.FEATURES] == pytest.approx(
        [plain[feature] for feature in module.FEATURES], nan_ok=True)


def test_an_unknown_kind_is_a_value_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="'gsr'.*ecg, eda, emg, resp, temp, bvp"):
        signals.extract("gsr", np.zeros(MINUTE * CHEST), CHEST)
    with pytest.raises(ValueError, match="known kinds"):
        signals.feature_names("eeg")


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize("window, rate, message", [
    (np.r_[np.ones(10 * CHEST), np.nan], CHEST, "finite: 1 of 7001 samples.*sample 7000"),
    (np.r_[np.ones(10 * CHEST), np.inf], CHEST, "finite"),
    (np.ones((10 * CHEST, 2)), CHEST, r"1-D.*\(7000, 2\)"),
    (np.ones(0), CHEST, "empty"),
    (np.ones(10 * CHEST), 0.0, "positive"),
    (np.ones(10 * CHEST), -700.0, "positive"),
    (np.ones(10 * CHEST), float("nan"), "positive"),
    (np.ones(10 * CHEST), "fast", "positive"),
    (np.array(["a"] * 10 * CHEST), CHEST, "real numbers"),
    (np.ones(3), CHEST, r"at least 10 s.*3 samples"),
])
def test_malformed_windows_and_rates_are_value_errors(window, rate, message):
    for kind in signals.PREPROCESSORS:
        with pytest.raises(ValueError, match=message):
            signals.extract(kind, window, rate)


# ---------------------------------------------------------------- ECG


@pytest.mark.parametrize("heart_rate", [60, 90])
def test_ecg_heart_rate_and_variability_of_a_simulated_ecg(heart_rate):
    window = nk.ecg_simulate(duration=MINUTE, sampling_rate=CHEST, heart_rate=heart_rate, random_state=1)
    values = quietly("ecg", window, CHEST)
    assert values["ecg_heart_rate"] == pytest.approx(heart_rate, abs=2)
    assert values["ecg_mean_rr"] == pytest.approx(60_000 / heart_rate, rel=0.03)
    assert values["ecg_heart_rate"] * values["ecg_mean_rr"] == pytest.approx(60_000)
    # The simulator's beats vary by a few ms (its default heart_rate_std is 1 bpm): small, not zero, not wild.
    assert 0 < values["ecg_sdnn"] < 50
    assert 0 < values["ecg_rmssd"] < 50
    assert 0 < values["ecg_lf_hf"] < 10


def test_ecg_without_enough_beats_is_nan():
    flat = np.full(MINUTE * CHEST, 0.5)
    assert all(math.isnan(value) for value in quietly("ecg", flat, CHEST).values())
    # Two beats, then the lead comes off: one RR interval, no spread to measure.
    beats = nk.ecg_simulate(duration=2, sampling_rate=CHEST, heart_rate=60, random_state=1)
    lead_off = np.r_[beats, np.full(58 * CHEST, beats[-1])]
    assert all(math.isnan(value) for value in quietly("ecg", lead_off, CHEST).values())


# ---------------------------------------------------------------- EDA


@pytest.mark.parametrize("rate", [4, CHEST])
@pytest.mark.parametrize("responses", [3, 5])
def test_eda_counts_the_simulated_responses(rate, responses):
    window = nk.eda_simulate(duration=MINUTE, sampling_rate=rate, scr_number=responses, drift=-0.01,
                             random_state=1)
    values = quietly("eda", window, rate, prefix="wrist_")
    assert values["wrist_eda_scr_count"] == responses
    # The simulator's responses are about 1 uS high, on a ~1.4 uS level.
    assert values["wrist_eda_scr_amplitude"] == pytest.approx(1.0, abs=0.1)
    assert values["wrist_eda_tonic_level"] == pytest.approx(np.mean(window), abs=0.1)


@pytest.mark.parametrize("rate", [4, CHEST])
def test_eda_on_quiet_skin_has_no_responses_and_on_a_flat_channel_none_defined(rate):
    rng = np.random.default_rng(2)
    # A level of 2 uS, drifting down 0.2 uS over the minute, with the sensor's noise of 0.001 uS.
    quiet = 2.0 - 0.2 * np.linspace(0, 1, MINUTE * rate) + rng.normal(0, 0.001, MINUTE * rate)
    values = quietly("eda", quiet, rate)
    assert values == {"eda_tonic_level": pytest.approx(1.9, abs=0.01), "eda_scr_count": 0.0,
                      "eda_scr_amplitude": 0.0}
    flat = quietly("eda", np.full(MINUTE * rate, 0.25), rate)
    assert flat["eda_tonic_level"] == 0.25
    assert math.isnan(flat["eda_scr_count"]) and math.isnan(flat["eda_scr_amplitude"])


# ---------------------------------------------------------------- EMG


def test_emg_activation_of_bursts_stands_clearly_above_a_quiet_muscle():
    three = quietly("emg", nk.emg_simulate(duration=MINUTE, sampling_rate=CHEST, burst_number=3, random_state=1),
                    CHEST)
    five = quietly("emg", nk.emg_simulate(duration=MINUTE, sampling_rate=CHEST, burst_number=5, random_state=1),
                   CHEST)
    quiet = quietly("emg", nk.emg_simulate(duration=MINUTE, sampling_rate=CHEST, burst_number=0, random_state=1),
                    CHEST)
    # The simulator's bursts last 1 s each (3 s and 5 s of the minute, with the envelope's rise and fall).
    assert three["emg_activation"] == pytest.approx(3 / 60, abs=0.015)
    assert five["emg_activation"] == pytest.approx(5 / 60, abs=0.015)
    assert quiet["emg_activation"] < 0.005
    assert three["emg_amplitude"] > 3 * quiet["emg_amplitude"] > 0
    assert five["emg_amplitude"] > three["emg_amplitude"]


def test_emg_amplitude_is_the_rms_of_the_cleaned_signal_and_a_flat_channel_has_no_activation():
    # A 250 Hz tone passes the 100 Hz high-pass (filtered forth and back, 99.9%): its RMS is amplitude / sqrt(2).
    tone = 0.3 * np.sin(2 * np.pi * 250 * np.arange(MINUTE * CHEST) / CHEST)
    assert quietly("emg", tone, CHEST)["emg_amplitude"] == pytest.approx(0.3 / math.sqrt(2), rel=0.01)
    flat = quietly("emg", np.full(MINUTE * CHEST, 1.5), CHEST)
    assert flat["emg_amplitude"] == 0.0 and math.isnan(flat["emg_activation"])


# ---------------------------------------------------------------- respiration


@pytest.mark.parametrize("breaths, seed", [(10, 0), (15, 0), (15, 1)])
def test_respiration_rate_of_a_simulated_belt(breaths, seed):
    window = nk.rsp_simulate(duration=MINUTE, sampling_rate=CHEST, respiratory_rate=breaths, random_state=seed)
    assert quietly("resp", window, CHEST)["resp_rate"] == pytest.approx(breaths, abs=1)


def test_respiration_depth_is_peak_to_trough_in_the_signals_units():
    seconds = np.arange(MINUTE * CHEST) / CHEST
    # 12 breaths a minute, 0.8 units from trough to peak, on a belt reading that sits far from 0.
    belt = 500.0 + 0.4 * np.sin(2 * np.pi * 0.2 * seconds)
    values = quietly("resp", belt, CHEST)
    assert values["resp_rate"] == pytest.approx(12, abs=0.1)
    assert values["resp_depth"] == pytest.approx(0.8, rel=0.02)


def test_respiration_of_a_flat_or_held_breath_window_is_nan():
    for window in (np.full(MINUTE * CHEST, 3.0), np.linspace(0, 1, MINUTE * CHEST)):
        assert all(math.isnan(value) for value in quietly("resp", window, CHEST).values())


# ---------------------------------------------------------------- temperature


@pytest.mark.parametrize("rate", [4, CHEST])
def test_temperature_level_and_slope_of_a_ramp_are_exact(rate):
    minutes = np.arange(MINUTE * rate) / (rate * 60)
    ramp = 33.0 + 0.25 * minutes  # 0.25 deg C a minute
    values = quietly("temp", ramp, rate)
    assert values["temp_slope"] == pytest.approx(0.25, abs=1e-9)
    assert values["temp_level"] == pytest.approx(np.mean(ramp), abs=1e-12)
    assert quietly("temp", np.full(MINUTE * rate, 34.5), rate) == {"temp_level": 34.5, "temp_slope": 0.0}


# ---------------------------------------------------------------- BVP


@pytest.mark.parametrize("heart_rate", [60, 90])
def test_bvp_heart_rate_of_a_simulated_pulse(heart_rate):
    window = nk.ppg_simulate(duration=MINUTE, sampling_rate=64, heart_rate=heart_rate, random_state=1)
    assert quietly("bvp", window, 64)["bvp_heart_rate"] == pytest.approx(heart_rate, abs=2)


def test_bvp_of_a_flat_window_is_nan():
    assert math.isnan(quietly("bvp", np.zeros(MINUTE * 64), 64)["bvp_heart_rate"])


# ---------------------------------------------------------------- the package stands alone


def test_the_preprocessors_import_only_numpy_scipy_neurokit2_and_each_other():
    """WESAD's Beam workers import them per window: nothing of the face side (TensorFlow, dlib) may come along."""
    allowed = {"__future__", "types", "warnings", "numpy", "scipy", "neurokit2", "emopy_tfds.signals"}
    for path in Path(signals.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert any(name == root or name.startswith(root + ".") for root in allowed), f"{path.name}: {name}"
