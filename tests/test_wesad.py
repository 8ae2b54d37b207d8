"""WESAD's builder on generated subjects: the features it extracts against the values the signals were simulated at,
bad files refused by name, short recordings counted, and `emopy build wesad` on Beam's and Dask's runners."""

from __future__ import annotations

import io
import json
import pickle
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from builds import IN_PROCESS, emopy_build_here
from emopy.pipeline import build
from emopy.pipeline.build import IN_MEMORY
from emopy_tfds.wesad import dummy_data_generation, wesad_dataset_builder, wesad_files
from emopy_tfds.wesad.dummy_data_generation import PHASES, SubjectSpec


def _one_state_windows(data_dir, config: str) -> list[dict]:
    """The built windows that hold one state only, each with the Phase its signals were simulated at."""
    rows = tfds.as_numpy(tfds.load(f"wesad/{config}", split="train", data_dir=str(data_dir)))
    return [(row, PHASES[row["label"] + 1]) for row in rows if row["label_share"] == 1.0]


def test_features_are_the_values_the_signals_were_simulated_at(wesad_data):
    chest = _one_state_windows(wesad_data, "chest")
    assert len(chest) == 16  # 4 subjects x 4 states
    for row, phase in chest:
        features = row["features"]
        assert abs(features["ecg_heart_rate"] - phase.heart_rate) <= 2, (row["subject"], phase)
        assert abs(features["resp_rate"] - phase.respiratory_rate) <= 1, (row["subject"], phase)
        assert abs(features["temp_slope"] - phase.temperature_slope) <= 0.02
        if phase.scr_number:
            assert features["eda_scr_count"] == phase.scr_number, (row["subject"], phase)
        else:  # meditation: none simulated, but the step down from amusement's level may read as one
            assert features["eda_scr_count"] <= 1
    wrist = _one_state_windows(wesad_data, "wrist")
    for row, phase in wrist:
        assert abs(row["features"]["bvp_heart_rate"] - phase.heart_rate) <= 2, (row["subject"], phase)
    # The E4's 4 Hz EDA: most windows count their responses exactly.
    exact = [row["features"]["wrist_eda_scr_count"] == phase.scr_number for row, phase in wrist]
    assert sum(exact) >= 0.75 * len(wrist), exact


def test_examples_keep_subjects_whole_in_their_folds(wesad_data):
    builder = tfds.builder("wesad/chest", data_dir=str(wesad_data))
    metadata = builder.info.metadata
    assert metadata["subjects"] == ["S2", "S3", "S4", "S5"]
    assert metadata["windows_per_subject"] == {"S2": 13, "S3": 13, "S4": 13, "S5": 13}
    assert metadata["feature_names"][0] == "ecg_heart_rate" and metadata["signal_rate"] == 32
    rows = list(tfds.as_numpy(builder.as_dataset(split="train")))
    folds = {(row["subject"].decode(), int(row["fold"])) for row in rows}
    assert folds == {("S2", 0), ("S3", 1), ("S4", 2), ("S5", 3)}
    assert rows[0]["signals"].shape == (60 * 32, len(metadata["channels"]))
    assert np.isfinite(rows[0]["signals"]).all()


def _broken(data: dict, problem: str) -> dict:
    """A copy of a generated subject's pickle content, broken one way."""
    chest, wrist = dict(data["signal"]["chest"]), dict(data["signal"]["wrist"])
    if problem == "shape":
        chest["ECG"] = np.repeat(chest["ECG"], 2, axis=1)
    elif problem == "missing":
        del chest["EMG"]
    elif problem == "rate":  # the wrist's BVP at 32 Hz instead of WESAD's 64
        wrist["BVP"] = wrist["BVP"][::2]
    elif problem == "nan":
        chest["EDA"] = chest["EDA"].copy()
        chest["EDA"][7000:7700] = np.nan
    return {**data, "signal": {"chest": chest, "wrist": wrist}}


@pytest.mark.parametrize("problem, message", [
    ("shape", r"S3/S3\.pkl: channel chest/ECG: shape \(\d+, 2\), expected \(samples, 1\)"),
    ("missing", r"S3/S3\.pkl: channel chest/EMG: missing"),
    ("rate", r"S3/S3\.pkl: channel wrist/BVP: \d+ samples over the labels' 60\.0 s is 32\.0 Hz; WESAD records it at "
             r"64 Hz"),
    ("nan", r"S3/S3\.pkl: channel chest/EDA: 700 sample\(s\) are NaN or infinite, the first at sample 7000"),
])
def test_a_bad_pickle_stops_the_build_naming_the_subject_file_and_channel(tmp_path, problem, message):
    one_minute = (dummy_data_generation.states(60)[0],)
    dummy_data_generation.write_subject(tmp_path / "manual", SubjectSpec("S2", phases=one_minute))
    good = dummy_data_generation.recording(SubjectSpec("S3", phases=one_minute))
    dummy_data_generation.write_subject(tmp_path / "manual", SubjectSpec("S3", phases=one_minute),
                                        data=_broken(good, problem))
    errors = io.StringIO()
    status = build.run("wesad", manual_dir=str(tmp_path / "manual"), data_dir=str(tmp_path / "data"),
                       config="chest" if problem in ("shape", "missing", "nan") else "wrist", workers=1,
                       beam_options=IN_MEMORY, stdout=io.StringIO(), stderr=errors)
    assert status == 1
    lines = errors.getvalue().strip().splitlines()
    assert lines[-1].startswith("emopy: error: ") and len(lines) == 2, errors.getvalue()  # emopy's header, the error
    assert re.search(message, lines[-1]), lines[-1]
    assert not (tmp_path / "data" / "wesad").exists() or not any((tmp_path / "data" / "wesad").rglob("*.tfrecord*"))


def test_not_a_wesad_pickle_is_refused_by_name(tmp_path):
    path = tmp_path / "S9" / "S9.pkl"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps({"signals": {}}, protocol=2))
    with pytest.raises(wesad_files.WesadFileError, match=r"S9/S9\.pkl: not a WESAD pickle: expected a dict with "
                                                           r"'signal' and 'label', got \['signals'\]"):
        wesad_files.read_recording(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(wesad_files.WesadFileError, match=r"S9/S9\.pkl: not a readable pickle"):
        wesad_files.read_recording(path)


@pytest.mark.parametrize("seconds", [11, 20, 33])
def test_generated_channels_are_as_long_as_their_rates_say(seconds):
    """neurokit2's simulators can return a sample more than asked (eda_simulate at 4 Hz for 20 s gives 81)."""
    spec = SubjectSpec("S2", phases=dummy_data_generation.states(seconds), seed=2)
    recording = dummy_data_generation.recording(spec)
    total = seconds * len(spec.phases)
    assert len(recording["label"]) == total * wesad_files.CHEST_RATE
    for name, values in recording["signal"]["chest"].items():
        assert len(values) == total * wesad_files.CHEST_RATE, name
    for name, values in recording["signal"]["wrist"].items():
        assert len(values) == total * wesad_files.WRIST_RATES[name], name


def test_windows_take_the_majority_state_and_leave_out_unlabelled_ones():
    labels = np.array([0] * 50 + [2] * 30 + [6] * 20)
    kept, unlabelled = wesad_files.windows(labels, window_samples=40, shift_samples=20)
    # Windows at 0, 20, 40 and 60: mostly transient (0), transient, stress (2: index 1), half stress half unused.
    assert [(w.start, w.state, w.share) for w in kept] == [(40, 1, 0.75), (60, 1, 0.5)]
    assert unlabelled == 2
    assert wesad_files.windows(labels[:30], window_samples=40, shift_samples=20) == ([], 0)


def test_emopy_build_wesad_counts_a_recording_too_short_for_a_window(tmp_path):
    """The command, run to its end: a subject of 40 s gives no examples and is named; the other's windows are built."""
    dummy_data_generation.write_subject(tmp_path / "manual", SubjectSpec("S2", phases=dummy_data_generation.states(30)))
    short = dummy_data_generation.states(40)[:1]
    dummy_data_generation.write_subject(tmp_path / "manual", SubjectSpec("S3", phases=short))
    result = emopy_build_here("wesad", "--config", "wrist", "--manual-dir", str(tmp_path / "manual"),
                              "--data-dir", str(tmp_path / "data"), *IN_PROCESS)
    assert result.returncode == 0, result.stderr[-2000:]
    # S2's 2 minutes: windows at 0, 15, ..., 60 s.
    assert "built wesad/wrist/1.0.0" in result.stdout and "5 examples" in result.stdout, result.stdout
    assert "S2 5, S3 0 windows" in result.stdout
    assert "too short for one 60 s window, no examples: S3" in result.stdout
    metadata = tfds.builder("wesad/wrist", data_dir=str(tmp_path / "data")).info.metadata
    assert metadata["recordings_too_short"] == ["S3"]


@pytest.mark.scale  # 30 s: the Dask workers' start-up; Dask builds of every dataset share this runner
def test_builds_the_same_windows_on_dask(tmp_path, dask_cluster):
    manual = dummy_data_generation.write_dataset(tmp_path / "manual", [
        SubjectSpec(f"S{n}", phases=dummy_data_generation.states(20), seed=n) for n in (2, 3)])
    for runner, options in (("direct", {"beam_options": IN_MEMORY}), ("dask", {"dask_address": dask_cluster})):
        status = build.run("wesad", manual_dir=str(manual), data_dir=str(tmp_path / runner), config="wrist",
                           workers=1 if runner == "direct" else None, runner=runner, stdout=io.StringIO(),
                           stderr=io.StringIO(), **options)
        assert status == 0
    built = {}
    for runner in ("direct", "dask"):
        rows = tfds.as_numpy(tfds.load("wesad/wrist", split="train", data_dir=str(tmp_path / runner)))
        built[runner] = sorted((row["subject"], float(row["start_seconds"]), int(row["label"]),
                                round(float(row["features"]["bvp_heart_rate"]), 3)) for row in rows)
    assert built["direct"] == built["dask"] and len(built["dask"]) == 2 * 2  # 80 s each: windows at 0 and 15 s


@pytest.mark.scale  # `tfds build` in a process of its own, about 25 s: CI runs it with the scale checks
def test_tfds_build_command_line_builds_wesad(tmp_path):
    dummy_data_generation.write_subject(tmp_path / "manual", SubjectSpec("S2", phases=dummy_data_generation.states(30)))
    result = subprocess.run(
        ["tfds", "build", str(Path(wesad_dataset_builder.__file__).parent), "--config", "wrist",
         "--manual_dir", str(tmp_path / "manual"), "--data_dir", str(tmp_path / "data"),
         f"--beam_pipeline_options=runner=DirectRunner,allow_unsafe_triggers,{IN_MEMORY}"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(tfds.as_numpy(tfds.load("wesad/wrist", split="train", data_dir=str(tmp_path / "data"))))
    assert len(rows) == 5 and {row["subject"] for row in rows} == {b"S2"}  # 2 minutes: windows at 0, 15, ..., 60 s
    metadata = json.loads(next((tmp_path / "data").glob("wesad/wrist/1.0.0/metadata.json")).read_text())
    assert metadata["windows_per_subject"] == {"S2": 5} and metadata["recordings_too_short"] == []
