"""Beam's DaskRunner beside emopy's (pipeline/dask_runner.py) on tiny pipelines, on one 2-process LocalCluster.

emopy's runner is tested on the installed Beam in the default run: it gets every pipeline right, whichever of the
defects in dask_runner.DEFECTS it mends itself. The probes of Beam's own runner are marked `upstream` and run only
by `pytest -m upstream`: each runs one defect's pipeline on Beam's runner and checks DEFECTS against what it sees,
so a new Beam release is probed on purpose before pyproject allows it (docs/distributed.md), never by surprise.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.dask.dask_runner import DaskRunner as BeamDaskRunner
from apache_beam.runners.dask.dask_runner import DaskRunnerResult
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from emopy.pipeline import dask_runner


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


def keep(value, folder: str) -> None:
    """Writes `value` to a file of its own in `folder`: a branch's elements, whatever the runner's partitions."""
    (Path(folder) / uuid.uuid4().hex).write_text(json.dumps(value))


def kept(folder: Path) -> list:
    return sorted(json.loads(path.read_text()) for path in folder.iterdir()) if folder.exists() else []


def read(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def run(runner, address: str, build, *flags: str):
    """Runs the pipeline `build(pipeline)` lays out on the Dask scheduler at `address`, to its end; its result."""
    pipeline = beam.Pipeline(runner=runner, options=PipelineOptions([f"--dask_client_address={address}", *flags]))
    build(pipeline)
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        result.client.close()  # Beam's runner leaves its client open
    return result


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


def test_emopys_runner_leaves_to_beam_what_beam_gets_right(dask_cluster, tmp_path, monkeypatch):
    # As on a Beam that fixed the three defects of ParDo's translation: Beam's own translation, with every branch
    # run by emopy's runner. These pipelines meet only the branches defect, so they come out right on any Beam.
    fixed = dask_runner.PARDO_DEFECTS
    monkeypatch.setattr(dask_runner, "DEFECTS", tuple(
        dask_runner.Defect(d.name, d.symptom, (2, 0) if d.name in fixed else d.fixed_in) for d in dask_runner.DEFECTS))
    assert dask_runner.defects_in() == {"branches"}
    result = run(dask_runner.DaskRunner(), dask_cluster, two_branches(tmp_path))
    assert (read(tmp_path / "first.json"), read(tmp_path / "last.json")) == (1, 2)
    assert isinstance(result, dask_runner._Result)

    # As on a Beam with none of them: Beam's own runner, partitioned as emopy's would be.
    monkeypatch.setattr(dask_runner, "DEFECTS", ())
    pipeline = tmp_path / "one_branch"
    result = run(dask_runner.DaskRunner(), dask_cluster,
                 lambda p: p | beam.Create(list(range(40))) | beam.Map(keep, str(pipeline.mkdir() or pipeline)))
    assert kept(pipeline) == list(range(40))
    assert type(result) is DaskRunnerResult


def test_the_runner_partitions_by_the_clusters_threads_unless_told(dask_cluster, tmp_path, monkeypatch, caplog):
    translated_with = []
    original = dask_runner._BagVisitor.__init__

    def init(visitor, bag_kwargs):
        translated_with.append(dict(bag_kwargs))
        original(visitor, bag_kwargs)

    monkeypatch.setattr(dask_runner._BagVisitor, "__init__", init)
    for flags in ((), ("--dask_partition_size=7",)):
        folder = tmp_path / f"run{len(flags)}"
        folder.mkdir()
        run(dask_runner.DaskRunner(), dask_cluster,
            lambda pipeline: pipeline | beam.Create(list(range(64))) | beam.Map(keep, str(folder)), *flags)
        assert kept(folder) == list(range(64))
    # The cluster: 2 single-threaded workers.
    assert translated_with == [{"npartitions": 2 * dask_runner.PARTITIONS_PER_THREAD}, {"partition_size": 7}]
    assert "partition size" not in caplog.text


def test_a_releases_defects_are_those_no_release_up_to_it_fixed():
    every = {defect.name for defect in dask_runner.DEFECTS}
    assert every == {"finish_bundle_outputs", "tagged_outputs", "branches", "side_inputs_recomputed"}
    assert dask_runner.beam_release("2.78.0rc1") == (2, 78)
    assert dask_runner.defects_in("2.77.0") == every
    assert dask_runner.defects_in("2.78.0rc1") == dask_runner.defects_in("2.78.1") == every - {"finish_bundle_outputs"}


def test_pyproject_allows_only_the_beam_releases_whose_defects_are_known():
    # Each allowed minor release is one `pytest -m upstream` has checked DEFECTS on; the next one is not allowed.
    from importlib import metadata

    from packaging.requirements import Requirement

    (beam_requirement,) = [requirement for requirement in map(Requirement, metadata.requires("emopy"))
                           if requirement.name == "apache-beam"]
    allowed = [f"2.{minor}.0" for minor in range(70, 90) if f"2.{minor}.0" in beam_requirement.specifier]
    assert allowed == ["2.77.0", "2.78.0"], beam_requirement
    assert beam.__version__ in beam_requirement.specifier


# --- Probes of Beam's own runner: `pytest -m upstream` ---------------------------------------------------------


def shows_finish_bundle_outputs(address: str, tmp_path: Path) -> bool:
    """Whether Beam's runner loses the counts that CountInFinishBundle emits from finish_bundle (one branch)."""
    folder = tmp_path / "counts"
    folder.mkdir()
    run(BeamDaskRunner(), address, lambda pipeline: (
        pipeline | beam.Create(list(range(300))) | beam.ParDo(CountInFinishBundle()) | beam.Map(keep, str(folder))))
    return sum(kept(folder)) != 300


def shows_tagged_outputs(address: str, tmp_path: Path) -> bool:
    """Whether odd numbers reach the one consumer of a ParDo's "even" output."""
    folder = tmp_path / "even"
    folder.mkdir()

    def build(pipeline):
        parts = pipeline | beam.Create(list(range(6))) | beam.ParDo(ByParity()).with_outputs("even", "odd")
        parts.even | beam.Map(keep, str(folder))

    run(BeamDaskRunner(), address, build)
    return kept(folder) != [0, 2, 4]


def shows_branches(address: str, tmp_path: Path) -> bool:
    """Whether the first of two branches never runs."""
    run(BeamDaskRunner(), address, two_branches(tmp_path))
    return read(tmp_path / "first.json") is None


def shows_side_inputs_recomputed(address: str, tmp_path: Path) -> bool:
    """Whether a side input's upstream runs more than once for the 4 tasks that read it (one branch)."""
    runs, folder = tmp_path / "runs", tmp_path / "read"
    runs.mkdir()
    folder.mkdir()

    def build(pipeline):
        once = pipeline | "once" >> beam.Create([None]) | "mark" >> beam.Map(mark_run, str(runs))
        (pipeline | "numbers" >> beam.Create(list(range(8)))
         | beam.Map(lambda n, ran: keep(n, str(folder)), beam.pvalue.AsSingleton(once)))

    run(BeamDaskRunner(), address, build, "--dask_npartitions=4")
    assert kept(folder) == list(range(8))
    return len(list(runs.iterdir())) > 1


@pytest.mark.upstream
@pytest.mark.parametrize("defect", dask_runner.DEFECTS, ids=lambda defect: defect.name)
def test_beams_own_runner_has_the_defects_that_DEFECTS_says(defect, dask_cluster, tmp_path, record_property):
    shows = globals()[f"shows_{defect.name}"](dask_cluster, tmp_path)
    record_property("beam_defect", (defect.name, shows))
    release = dask_runner.beam_release()
    if shows:
        assert defect.name in dask_runner.defects_in(), (
            f"Beam {beam.__version__}'s own DaskRunner still {defect.symptom}, but DEFECTS says {defect.fixed_in} "
            "fixed it: correct its fixed_in in pipeline/dask_runner.py")
    else:
        assert defect.name not in dask_runner.defects_in(), (
            f"Beam {beam.__version__}'s own DaskRunner no longer {defect.symptom}: set "
            f"this defect's fixed_in to {release} in pipeline/dask_runner.py DEFECTS")


def test_the_default_run_leaves_the_probes_out_and_m_upstream_runs_only_them():
    import subprocess
    import sys

    def collected(*flags: str) -> list[str]:
        result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                 *flags, __file__], capture_output=True, text=True, cwd=Path(__file__).parents[1])
        return [line for line in result.stdout.splitlines() if "::" in line]

    probes = [f"test_beams_own_runner_has_the_defects_that_DEFECTS_says[{defect.name}]"
              for defect in dask_runner.DEFECTS]
    default, upstream = collected(), collected("-m", "upstream")
    assert default and not any("test_beams_own_runner" in line for line in default)
    assert sorted(line.split("::")[-1] for line in upstream) == sorted(probes)
