"""Shared fixtures: real faces from scikit-image's astronaut photo (NASA, public domain), built datasets, and
short training runs with their exports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from emopy_tfds import faces, labels


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """512x512 RGB uint8 portrait with exactly one frontal face."""
    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_face(astronaut) -> faces.Face:
    (face,) = faces.find_faces(astronaut)
    return face


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory, astronaut) -> dict[str, str]:
    """Files on disk: a real face, a blank picture, garbage bytes and a truncated PNG."""
    import cv2

    folder = tmp_path_factory.mktemp("photos")
    paths = {name: str(folder / name) for name in ("astronaut.png", "blank.png", "corrupt.jpg", "truncated.png")}
    cv2.imwrite(paths["astronaut.png"], cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    cv2.imwrite(paths["blank.png"], np.full((480, 640, 3), 200, np.uint8))
    with open(paths["corrupt.jpg"], "wb") as corrupt:
        corrupt.write(b"\xff\xd8\xff\xe0 this is not really a JPEG" * 10)
    encoded = open(paths["astronaut.png"], "rb").read()
    with open(paths["truncated.png"], "wb") as truncated:
        truncated.write(encoded[: len(encoded) // 3])
    return paths


def _built(data_dir, dataset: str, manual_dir, *configs: str) -> None:
    from builds import build_here

    for config in configs:
        build_here(dataset, manual_dir, data_dir, config)


@pytest.fixture(scope="session")
def training_sources(tmp_path_factory, astronaut) -> dict[str, Path]:
    """The manual dirs training_data is built from, by dataset: "fer2013" (fer2013.csv and fer2013new.csv) and
    "ck_plus" (a CK+ folder tree); tests that build them another way compare with training_data."""
    from emopy_tfds.ck_plus.dummy_data_generation import SequenceSpec, write_tree
    from emopy_tfds.fer2013 import dummy_data_generation

    per_split = {"Training": 40, "PublicTest": 8, "PrivateTest": 8}
    emotions = [k for count in per_split.values() for k in range(7) for _ in range(count)]
    usages = [usage for usage, count in per_split.items() for _ in range(7 * count)]
    order = np.random.default_rng(0).permutation(len(emotions))
    emotions, usages = [emotions[i] for i in order], [usages[i] for i in order]
    fer2013_source = tmp_path_factory.mktemp("learnable_fer2013")
    dummy_data_generation.write_source(fer2013_source, dummy_data_generation.learnable_crops(astronaut, emotions),
                                       emotions, usages)
    to_ferplus = labels.mapping("fer2013", "ferplus")
    votes = []
    for emotion in emotions:
        row = [0] * 10
        row[to_ferplus[emotion]] = 7
        row[1 if labels.FER2013[emotion] == "neutral" else 0] = 3
        votes.append(row)
    dummy_data_generation.write_ferplus(fer2013_source, votes, usages)

    au_sets = (((1, 2), (2, 2), (5, 1)), ((6, 3), (12, 4)), ((4, 2), (15, 1), (17, 2)), ((9, 3), (17, 2)))
    specs = [SequenceSpec(f"S{100 + i:03d}", "001", frames=4, emotion=1 + i % 7, facs=au_sets[i % 4])
             for i in range(12)]
    ck_plus_source = write_tree(tmp_path_factory.mktemp("ck_plus"), specs, layout="folders", photo=astronaut)
    return {"fer2013": fer2013_source, "ck_plus": ck_plus_source}


@pytest.fixture(scope="session")
def training_data(tmp_path_factory, training_sources):
    """One data directory with the datasets training tests read, built by the DirectRunner from training_sources, in
    this process (builds.build_here: `emopy build`'s worker processes are tested in test_fer2013 and test_ck_plus):

    - fer2013/original, 280 train, 56 validation and 56 test rows, classes balanced, whose faces carry their
      class as a stripe pattern (dummy_data_generation.learnable_crops): training must learn it;
    - fer2013/ferplus on the same faces, with FER+ votes: 7 for the face's class (in FER+'s names) and 3 for
      neutral (3 for happiness on neutral faces), so the majority label is the fer2013 label, renamed;
    - ck_plus in its three configs, from 12 subjects (one labelled 4-frame sequence each, emotions 1..7 in
      turn, so contempt twice, with action units): every split of 10 folds (and of 3 for --cv) has subjects.
    """
    data_dir = tmp_path_factory.mktemp("training_data")
    _built(data_dir, "fer2013", training_sources["fer2013"], "original", "ferplus")
    _built(data_dir, "ck_plus", training_sources["ck_plus"], "emotion", "sequences", "facs")
    return data_dir


@pytest.fixture(scope="session")
def wesad_source(tmp_path_factory) -> Path:
    """A manual dir in WESAD's layout: 4 subjects (S2..S5), each through baseline, stress, amusement and meditation,
    60 s each with the body's signs PHASES gives each state (emopy_tfds/wesad/dummy_data_generation.py)."""
    from emopy_tfds.wesad import dummy_data_generation

    return dummy_data_generation.small_dataset(tmp_path_factory.mktemp("wesad"), subjects=4, phase_seconds=60)


@pytest.fixture(scope="session")
def wesad_data(tmp_path_factory, wesad_source) -> Path:
    """A data dir with wesad/chest and wesad/wrist built from wesad_source in this process: 13 windows of 60 s every
    15 s per subject (those starting on the minute hold one state); folds 0..3 are S2..S5. (wesad/both, which costs
    as much as chest again, is built by the builder's own test.)"""
    data_dir = tmp_path_factory.mktemp("wesad_data")
    _built(data_dir, "wesad", wesad_source, "chest", "wrist")
    return data_dir


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[str]:
    """The scheduler address of a LocalCluster of 2 single-threaded worker processes, as `emopy build --runner dask`
    makes (emopy.pipeline.dask_runner.cluster), shared by the tests that run pipelines on Dask."""
    from emopy.pipeline import dask_runner

    with dask_runner.cluster(2) as (address, _, _):
        yield address


@pytest.fixture(scope="session")
def runs(training_data, tmp_path_factory) -> dict[str, Path]:
    """Finished runs (one short epoch) of an image model, an image + landmarks model and a sequence model."""
    from emopy.pipeline import train

    folder = tmp_path_factory.mktemp("runs")
    settings = {"cnn": "fer2013", "multi_input": "fer2013", "landmark_lstm": "ck_plus/sequences"}
    for model, dataset in settings.items():
        train.run(train.TrainConfig(dataset=dataset, model=model, out=str(folder / model),
                                    data_dir=str(training_data), epochs=1, batch_size=4, sequence_length=4))
    return {model: folder / model for model in settings}


@pytest.fixture(scope="session")
def exported(runs, tmp_path_factory) -> dict[str, Path]:
    """`runs` exported by serving/export.py with its defaults: BASE/1 of each, by model name."""
    from emopy.serving import export

    base = tmp_path_factory.mktemp("exports")
    return {model: export.export(run, base / model) for model, run in runs.items()}


def pytest_terminal_summary(terminalreporter) -> None:
    """After `pytest -m upstream`, what the probes saw of Beam's own DaskRunner: each defect it has or has not."""
    seen = [dict(report.user_properties)["beam_defect"] for outcome in ("passed", "failed")
            for report in terminalreporter.stats.get(outcome, []) if "beam_defect" in dict(report.user_properties)]
    if seen:
        import apache_beam

        terminalreporter.section(f"Beam {apache_beam.__version__}'s own DaskRunner")
        for name, shows in sorted(seen):
            terminalreporter.line(f"{name:<24} {'has it' if shows else 'fixed'}")
