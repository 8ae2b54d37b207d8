"""The Beam options `emopy build` gives: local multi-processing without the Prism download, or the user's runner."""

from __future__ import annotations

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
