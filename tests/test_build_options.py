"""The Beam options `emopy build` gives: local multi-processing without the Prism download, or the user's runner;
and a manual dir that is missing or empty is one line."""

from __future__ import annotations

import pytest

from emopy.pipeline import cli
from emopy.pipeline.build import beam_flags


def test_local_runs_use_multi_processing_workers_and_skip_prism():
    flags = beam_flags(3, None)
    assert "--runner=DirectRunner" in flags and "--direct_running_mode=multi_processing" in flags
    assert "--direct_num_workers=3" in flags
    assert "--allow_unsafe_triggers" in flags  # what keeps Beam 2.77 from fetching a Prism binary


def test_user_options_are_added_and_another_runner_drops_the_local_ones():
    assert beam_flags(2, "direct_num_workers=4, experiments=x")[-2:] == ["--direct_num_workers=4", "--experiments=x"]
    dataflow = beam_flags(2, "runner=DataflowRunner,project=p,region=r")
    assert dataflow == ["--runner=DataflowRunner", "--project=p", "--region=r"]


@pytest.mark.parametrize("dataset", ["fer2013", "ck_plus"])
def test_a_missing_or_empty_manual_dir_is_one_line(dataset, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, state in ((tmp_path / "missing", "does not exist"), (empty, "is empty")):
        assert cli.main(["build", dataset, "--manual-dir", str(folder), "--data-dir", str(tmp_path / "data")]) == 1
        stderr = capsys.readouterr().err
        assert stderr.splitlines()[-1] == f"emopy: error: no {dataset} data in --manual-dir {folder}: the folder {state}"
        assert "Traceback" not in stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.tfrecord*"))
