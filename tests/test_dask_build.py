"""`emopy build --runner dask`: fer2013, its FER+ config and CK+ built on a 2-process Dask LocalCluster hold the
DirectRunner's examples, a killed worker leaves no dataset, and wrong flags or addresses are one line."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from emopy.pipeline import build, dask_runner
from emopy_tfds.fer2013 import dummy_data_generation as generate


def examples(data_dir: Path, name: str, key) -> dict[str, dict]:
    """Every split of a built dataset, as {split: {key(example): example}}, read through tfds.load."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=str(data_dir))
    return {split: {key(example): example for example in tfds.as_numpy(builder.as_dataset(split=split))}
            for split in builder.info.splits}


def assert_same_examples(dask_dir: Path, direct_dir: Path, name: str, key) -> None:
    """The same splits, examples (by `key`) and features, and the same metadata (counts the builders report)."""
    folder = Path(*name.split("/"), "1.0.0", "metadata.json")
    assert json.loads((dask_dir / folder).read_text()) == json.loads((direct_dir / folder).read_text())
    on_dask, on_direct = examples(dask_dir, name, key), examples(direct_dir, name, key)
    assert on_dask.keys() == on_direct.keys()
    for split, by_key in on_direct.items():
        assert on_dask[split].keys() == by_key.keys(), split
        for example_key, example in by_key.items():
            assert on_dask[split][example_key].keys() == example.keys()
            for feature, value in example.items():
                np.testing.assert_array_equal(on_dask[split][example_key][feature], value, f"{split} {feature}")


def build_on_dask(source: Path, data_dir: Path, dataset: str, config: str, address: str) -> str:
    """`emopy build` on the Dask cluster at `address`, in this process; returns its summary."""
    summary = io.StringIO()
    status = build.run(dataset, manual_dir=str(source), data_dir=str(data_dir), config=config, runner="dask",
                       dask_address=address, stdout=summary)
    assert status == 0
    return summary.getvalue()


@pytest.mark.scale  # each a build on the Dask cluster, about 30 s: CI runs it with the scale checks
@pytest.mark.parametrize("config", ["original", "ferplus"])
def test_fer2013_on_dask_holds_the_direct_runners_examples(config, training_sources, training_data, dask_cluster,
                                                            tmp_path, caplog):
    summary = build_on_dask(training_sources["fer2013"], tmp_path, "fer2013", config, dask_cluster)
    # Nothing for the console: Beam's warnings of a default partition size or of untyped tagged outputs.
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert f"built fer2013/{config}/1.0.0 in " in summary and f" s on Dask (the cluster at {dask_cluster}, 2 workers)" \
        in summary
    # By index, every feature: image, landmarks and label (and FER+'s votes and fer2013 label).
    assert_same_examples(tmp_path, training_data, f"fer2013/{config}", key=lambda example: int(example["index"]))


@pytest.mark.scale  # a build on the Dask cluster, about 30 s: CI runs it with the scale checks
def test_ck_plus_on_dask_holds_the_direct_runners_examples(training_sources, training_data, dask_cluster,
                                                            tmp_path):
    build_on_dask(training_sources["ck_plus"], tmp_path, "ck_plus", "emotion", dask_cluster)
    # The metadata's frame and detection counts come from the builder's second output, tagged "report".
    assert_same_examples(tmp_path, training_data, "ck_plus/emotion",
                         key=lambda example: (example["subject"], example["sequence"], int(example["frame"])))


@pytest.mark.scale  # a Dask cluster whose worker is killed, about 30 s: CI runs it with the scale checks
def test_a_worker_killed_mid_build_leaves_no_dataset_tfds_load_accepts(tmp_path, astronaut):
    # Nine 256-row batches of training rows and two of each test split: the workers have batches queued when the
    # first one is done, so the worker that printed it is killed with tasks in hand.
    rows = 2816
    manual = tmp_path / "manual"
    generate.write_source(manual, generate.face_crops(astronaut, 64, seed=2)[np.arange(rows) % 64],
                          [row % 7 for row in range(rows)], generate.kaggle_usages(rows))
    data_dir = tmp_path / "data"
    with subprocess.Popen(["emopy", "build", "fer2013", "--manual-dir", str(manual), "--data-dir", str(data_dir),
                           "--runner", "dask", "--workers", "2"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if line.startswith("fer2013: batch "):
                os.kill(int(line.rsplit("worker ", 1)[1].rstrip(")\n")), signal.SIGKILL)
                break
        stderr = "".join(lines) + process.stderr.read()
        process.wait(timeout=300)
    assert process.returncode == 1, stderr[-3000:]
    assert stderr.splitlines()[-1].startswith("emopy: error: a Dask worker died mid-build (1 worker(s) died running "
                                              "the same task), so the build stopped and wrote no dataset: ")
    assert "Traceback" not in stderr and "distributed." not in stderr, stderr[-3000:]  # nor Dask's own account
    # Nor Beam's warnings: of a default partition size, of untyped tagged outputs, of Google Cloud's missing clients.
    assert not re.search("WARNING|partition size|TaggedOutput|apitools", stderr), stderr[-3000:]
    assert not (data_dir / "fer2013" / "original" / "1.0.0").exists()
    import tensorflow_datasets as tfds

    with pytest.raises(AssertionError, match="could not find data"):  # what tfds.load raises for a missing dataset
        tfds.load("fer2013", split="train", data_dir=str(data_dir), download=False)


def test_flags_that_do_not_go_together_are_refused_in_one_line(tmp_path, capsys):
    from emopy.pipeline import cli

    for flags, expected in ((["--dask-address", "127.0.0.1:8786"], "--dask-address names a Dask scheduler: add "
                             "--runner dask"),
                            (["--runner", "dask", "--dask-address", "127.0.0.1:8786", "--workers", "2"],
                             "the cluster at --dask-address has its own workers: leave out --workers")):
        assert cli.main(["build", "fer2013", "--manual-dir", str(tmp_path), *flags]) == 2
        stderr = capsys.readouterr().err
        assert stderr.startswith("emopy: error: ") and stderr.strip().endswith(expected), stderr
        assert len(stderr.strip().splitlines()) == 1


def test_an_address_where_no_scheduler_answers_is_one_clear_error():
    started = time.perf_counter()
    with pytest.raises(dask_runner.DaskBuildError, match=r"^no Dask scheduler answered at --dask-address "
                                                         r"127\.0\.0\.1:9 within 1 s .*: start one"):
        with dask_runner.cluster(2, "127.0.0.1:9", timeout=1):
            pass
    assert time.perf_counter() - started < 30


def test_dask_flags_run_emopys_runner_with_the_users_options_added():
    flags = build.beam_flags(3, "dask_connection_timeout=5", dask_address="tcp://10.0.0.1:8786")
    assert flags == ["--runner=emopy.pipeline.dask_runner.DaskRunner", "--dask_client_address=tcp://10.0.0.1:8786",
                     "--dask_connection_timeout=5"]
