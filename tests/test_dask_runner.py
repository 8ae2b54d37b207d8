"""Beam's DaskRunner beside emopy's (pipeline/dask_runner.py) on tiny pipelines, on one 2-process LocalCluster.

The three `test_beam_*` tests show each defect of Beam's own runner that emopy's works around, and assert that it is
still there: one fails when a Beam release fixes its defect. Once all three fail, set dask_runner.BEAM_FIXED_IN to
that release (the fixes then stand aside), and remove the fixes when emopy requires it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.dask.dask_runner import DaskRunner as BeamDaskRunner
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from emopy.pipeline import dask_runner

FIXED = ("Beam {version}'s own DaskRunner {what}: if the other test_beam_* tests fail too, set BEAM_FIXED_IN = "
         "{release} in pipeline/dask_runner.py")


class CountInFinishBundle(beam.DoFn):
    """Emits how many elements its bundle had, from finish_bundle, as Top.Largest and WriteToText's writer do."""

    def start_bundle(self):
        self._count = 0

    def process(self, element):
        self._count += 1

    def finish_bundle(self):
        yield WindowedValue(self._count, 0, [GlobalWindow()])


class ByParity(beam.DoFn):
    def process(self, element):
        yield beam.pvalue.TaggedOutput("even" if element % 2 == 0 else "odd", element)


def write_json(value, path: str) -> None:
    Path(path).write_text(json.dumps(value))


def mark_run(element, folder: str) -> str:
    """Leaves one file in `folder` for each time it runs, so a test can count the runs."""
    (Path(folder) / uuid.uuid4().hex).touch()
    return "ran"


def read(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def run(runner, address: str, build) -> None:
    """Runs the pipeline `build(pipeline)` lays out on the Dask scheduler at `address`, to its end."""
    pipeline = beam.Pipeline(runner=runner, options=PipelineOptions([f"--dask_client_address={address}"]))
    build(pipeline)
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        result.client.close()  # Beam's runner leaves its client open


def finish_bundle_outputs(tmp_path: Path):
    """Writes {"count": the elements counted in finish_bundle, "top": Top.Largest(1)} to finished.json (one branch:
    Beam's runner computes only the last)."""
    def build(pipeline):
        numbers = pipeline | "numbers" >> beam.Create(list(range(300)))
        counted = (numbers | "count" >> beam.ParDo(CountInFinishBundle()) | "sum" >> beam.CombineGlobally(sum)
                   | "name_count" >> beam.Map(lambda count: ("count", count)))
        top = numbers | beam.combiners.Top.Largest(1) | "name_top" >> beam.Map(lambda top: ("top", top))
        ((counted, top) | beam.Flatten() | "together" >> beam.combiners.ToDict()
         | "write_finished" >> beam.Map(write_json, str(tmp_path / "finished.json")))
    return build


def tagged_outputs(tmp_path: Path):
    def build(pipeline):
        parts = (pipeline | "digits" >> beam.Create(list(range(6)))
                 | beam.ParDo(ByParity()).with_outputs("even", "odd"))
        parts.odd | "odd" >> beam.combiners.ToList() | "write_odd" >> beam.Map(write_json, str(tmp_path / "odd.json"))
        (parts.even | "even" >> beam.combiners.ToList()
         | "write_even" >> beam.Map(write_json, str(tmp_path / "even.json")))
    return build


def two_branches(tmp_path: Path):
    def build(pipeline):
        pipeline | "first" >> beam.Create([1]) | "write_first" >> beam.Map(write_json, str(tmp_path / "first.json"))
        pipeline | "last" >> beam.Create([2]) | "write_last" >> beam.Map(write_json, str(tmp_path / "last.json"))
    return build


def fixed(what: str) -> str:
    major, minor = dask_runner.beam_release()
    return FIXED.format(version=beam.__version__, what=what, release=(major, minor))


def test_beam_loses_what_finish_bundle_emits(dask_cluster, tmp_path):
    run(BeamDaskRunner(), dask_cluster, finish_bundle_outputs(tmp_path))
    assert read(tmp_path / "finished.json") == {"count": 0, "top": []}, fixed("keeps what finish_bundle emits")


def test_beam_sends_every_tagged_output_to_every_consumer(dask_cluster, tmp_path):
    run(BeamDaskRunner(), dask_cluster, tagged_outputs(tmp_path))
    assert sorted(read(tmp_path / "even.json")) == list(range(6)), fixed("tells tagged outputs apart")


def test_beam_runs_only_the_branch_laid_out_last(dask_cluster, tmp_path):
    run(BeamDaskRunner(), dask_cluster, two_branches(tmp_path))
    assert (read(tmp_path / "first.json"), read(tmp_path / "last.json")) == (None, 2), fixed("runs every branch")


def test_emopys_runner_gets_the_same_pipelines_right(dask_cluster, tmp_path):
    def build(pipeline):
        for lay_out in (finish_bundle_outputs, tagged_outputs, two_branches):
            lay_out(tmp_path)(pipeline)

    run(dask_runner.DaskRunner(), dask_cluster, build)
    assert read(tmp_path / "finished.json") == {"count": 300, "top": [299]}
    assert sorted(read(tmp_path / "even.json")) == [0, 2, 4] and sorted(read(tmp_path / "odd.json")) == [1, 3, 5]
    assert (read(tmp_path / "first.json"), read(tmp_path / "last.json")) == (1, 2)


def test_side_inputs_are_computed_once_and_text_files_are_whole(dask_cluster, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    runs.mkdir()

    def build(pipeline):
        once = pipeline | "once" >> beam.Create([None]) | "mark" >> beam.Map(mark_run, str(runs))
        numbers = pipeline | "numbers" >> beam.Create(list(range(500)))
        for reader in ("a", "b", "c"):  # three readers of the one side input
            (numbers | f"read_{reader}" >> beam.Map(lambda n, ran: (n, ran), beam.pvalue.AsSingleton(once))
             | f"count_{reader}" >> beam.combiners.Count.Globally()
             | f"write_{reader}" >> beam.Map(write_json, str(tmp_path / f"{reader}.json")))
        numbers | "format" >> beam.Map(str) | beam.io.WriteToText(str(out / "numbers"))

    run(dask_runner.DaskRunner(), dask_cluster, build)
    assert len(list(runs.iterdir())) == 1
    assert [read(tmp_path / f"{reader}.json") for reader in "abc"] == [500, 500, 500]
    lines = [line for shard in sorted(out.glob("numbers-*")) for line in shard.read_text().split()]
    assert sorted(map(int, lines)) == list(range(500))
    assert [path.name for path in out.iterdir() if not path.name.startswith("numbers-")] == []  # no beam-temp-*


def test_the_fixes_apply_to_every_release_until_one_is_known_to_fix_beam(monkeypatch):
    assert dask_runner.BEAM_FIXED_IN is None and dask_runner.workaround_needed()
    assert dask_runner.beam_release("2.78.0rc1") == (2, 78)
    monkeypatch.setattr(dask_runner, "BEAM_FIXED_IN", (2, 78))
    assert dask_runner.workaround_needed("2.77.0") and not dask_runner.workaround_needed("2.78.0rc1")
    assert not dask_runner.workaround_needed("3.0.0")
