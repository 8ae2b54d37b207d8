"""Beam's DaskRunner for `emopy build --runner dask`: a local cluster, and the fixes Beam's runner needs to build TFDS.

Beam's DaskRunner (apache_beam/runners/dask) translates a pipeline into dask.bag operations. That translation loses
or mixes up data in ways that every TFDS build meets; DEFECTS below lists them, each with the first Beam release
known to fix it. `pytest -m upstream` probes each one on the installed Beam (tests/test_dask_runner.py):

1. finish_bundle_outputs (fixed in 2.78): transform_evaluator.apply_dofn_to_bundle returned a bundle's outputs
   before it called the DoFn's finish_bundle. `Top.Largest` emits there, so TFDS's writer got an empty side input
   and failed in `_assign_shard` with an IndexError; `WriteToText` closes its files there and ended up empty.
2. tagged_outputs: a ParDo's outputs under every tag reach every consumer of any one of them. The fer2013 builder
   tags each example with its split, so every split would hold every example.
3. branches: DaskRunner.run_pipeline computes the bag of the last transform visited, so branches that end elsewhere
   never run. TFDS ends each split's branch with a ParDo that writes the split's shard lengths, so all but the last
   split would be missing.
4. side_inputs_recomputed: a side input is computed again inside every task that reads it, with the whole pipeline
   upstream of it: for TFDS, the landmark fits. (Dask before 2025.4, which emopy does not allow, hid this one.)

`DaskRunner` below keeps Beam's translation of every other transform (Create, GroupByKey, Flatten). While the
installed Beam has defect 1, 2 or 4, it translates ParDo itself: one bundle runner that keeps finish_bundle's
outputs and their tags, with side inputs computed once as tasks that the reading tasks depend on. While Beam has
any defect, it runs the pipeline itself, computing every branch's end (Beam's run_pipeline runs only Beam's
translation). On a Beam with none of them it is Beam's own runner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
from typing import Any, Iterator

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.runners.common import Receiver
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask import overrides as beam_overrides
from apache_beam.runners.dask import transform_evaluator as beam_ops
from apache_beam.runners.runner import PipelineState

RUNNER = f"{__name__}.DaskRunner"
# dask.bag partitions per worker thread, when the pipeline's options set neither dask_npartitions nor
# dask_partition_size: enough to balance the work, few enough that shuffles stay cheap.
PARTITIONS_PER_THREAD = 4


@dataclasses.dataclass(frozen=True)
class Defect:
    """A way Beam's own DaskRunner gets a TFDS build wrong, and the first Beam release that fixed it."""

    name: str
    symptom: str  # what Beam's runner does, completing "Beam's DaskRunner ..."
    fixed_in: tuple[int, int] | None  # None: no release known to fix it


# Checked on every Beam release that pyproject allows (`pytest -m upstream`; tests/test_dask_runner.py). Raising
# the bound means probing the new release and writing down here what it fixed (docs/distributed.md).
DEFECTS = (
    Defect("finish_bundle_outputs", "loses what a DoFn emits in finish_bundle", fixed_in=(2, 78)),
    Defect("tagged_outputs", "sends every tagged output to every consumer", fixed_in=None),
    Defect("branches", "computes only the branch laid out last", fixed_in=None),
    Defect("side_inputs_recomputed", "computes a side input again inside every task that reads it", fixed_in=None),
)
# The defects that emopy's translation of ParDo mends.
PARDO_DEFECTS = frozenset({"finish_bundle_outputs", "tagged_outputs", "side_inputs_recomputed"})


def beam_release(version: str = beam.__version__) -> tuple[int, int]:
    """A Beam version's (major, minor): "2.77.0" and "2.78.0rc1" give (2, 77) and (2, 78)."""
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


def defects_in(version: str = beam.__version__) -> frozenset[str]:
    """The names of the DEFECTS that Beam `version`'s own DaskRunner has: those no release up to it fixed."""
    release = beam_release(version)
    return frozenset(defect.name for defect in DEFECTS if defect.fixed_in is None or release < defect.fixed_in)


# --- What runs on the workers -------------------------------------------------------------------------------


class _Receivers(dict):
    """A bundle's output receivers by tag, all appending (tag, value) to one list, as Beam's OneReceiver does but
    keeping the tag."""

    def __init__(self, outputs: list):
        super().__init__()
        self.outputs = outputs

    def __missing__(self, tag):
        receiver = self[tag] = _TagReceiver(tag, self.outputs)
        return receiver


class _TagReceiver(Receiver):
    def __init__(self, tag, outputs: list):
        self.tag, self.outputs = tag, outputs

    def receive(self, windowed_value) -> None:
        # What Beam's runner passes on: the main output's values and the other tags' windowed values.
        self.outputs.append((self.tag, windowed_value.value if self.tag is None else windowed_value))


def _run_bundle(items, fn, label, window_fn, args, kwargs, views, *side_values) -> list:
    """One Dask partition through one DoFn: setup, start_bundle, process, finish_bundle and teardown, returning
    (tag, value) pairs of everything it emitted, finish_bundle's outputs included (fix 1)."""
    from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, _OutputHandler
    from apache_beam.transforms.sideinputs import SideInputMap

    outputs: list = []
    receivers = _Receivers(outputs)  # made here, so no two bundles share one
    handler = _OutputHandler(window_fn=window_fn, main_receivers=receivers[None], tagged_receivers=receivers,
                             per_element_output_counter=None, output_batch_converter=None,
                             process_yields_batches=False, process_batch_yields_elements=False)
    side_inputs = [SideInputMap(view, options, [beam_ops.get_windowed_value(value, mapping) for value in values])
                   for (view, options, mapping), values in zip(views, side_values)]
    invoker = DoFnInvoker.create_invoker(
        DoFnSignature(fn), handler, context=DoFnContext(label, state=None), side_inputs=side_inputs,
        input_args=args, input_kwargs=kwargs, user_state_context=None,
        bundle_finalizer_param=beam.DoFn.BundleFinalizerParam())
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(item)
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    return outputs


def _tagged(pairs, tag) -> list:
    """The values a ParDo emitted under `tag` (fix 2)."""
    return [value for item_tag, value in pairs if item_tag == tag]


def _as_list(values) -> list:
    return list(values)


def _concatenated(lists) -> list:
    return [value for values in lists for value in values]


def _drained(values) -> list:
    """Nothing: a branch's end is computed for what it writes, and its elements need not travel to the client."""
    for _ in values:
        pass
    return []


# --- The translation --------------------------------------------------------------------------------------


class _BagVisitor(PipelineVisitor):
    """Beam's DaskBagVisitor, with ParDo's bag holding (tag, value) pairs that each consumer filters by its tag
    (defect 2), finish_bundle's outputs kept (defect 1), and side inputs as task dependencies (defect 4)."""

    def __init__(self, bag_kwargs: dict):
        self.bag_kwargs = bag_kwargs
        self.bags: dict[AppliedPTransform, Any] = {}
        self.tagged: set[AppliedPTransform] = set()

    def _bag(self, pcollection):
        producer = pcollection.producer
        bag = self.bags.get(producer)
        if bag is not None and producer in self.tagged:
            bag = bag.map_partitions(_tagged, pcollection.tag)
        return bag

    def visit_transform(self, node: AppliedPTransform) -> None:
        inputs = [None if isinstance(value, pvalue.PBegin) else self._bag(value) for value in node.inputs]
        translation = beam_ops.TRANSLATIONS.get(type(node.transform), beam_ops.NoOp)
        if translation is beam_ops.ParDo:
            (input_bag,) = inputs
            transform = node.transform
            main_input = next(iter(node.main_inputs.values()))
            window_fn = main_input.windowing.windowfn if hasattr(main_input, "windowing") else None
            views = [(type(side), side._view_options(), side._window_mapping_fn) for side in node.side_inputs]
            # All the values of each side input in one task, computed once before the tasks that read it. Left
            # unoptimized here: a graph optimized on its own has its keys renamed, and would run again for each reader.
            side_values = [self._bag(side.pvalue).reduction(_as_list, _concatenated).to_delayed(optimize_graph=False)
                           for side in node.side_inputs]
            # The arguments with placeholders for the side inputs, as Beam's portable workers get them: the raw ones
            # Beam's runner passes hold the side inputs' PCollections, and so pickle the whole pipeline into each task.
            args, kwargs = transform.args, transform.kwargs
            self.bags[node] = input_bag.map(beam_ops.get_windowed_value, window_fn).map_partitions(
                _run_bundle, transform.fn, node.full_label, window_fn, list(args), kwargs, views, *side_values)
            self.tagged.add(node)
            return
        op = translation(node, bag_kwargs=self.bag_kwargs)
        if node.side_inputs:
            raise NotImplementedError(f"emopy's DaskRunner: side inputs of {node.full_label} (not a ParDo)")
        flatten = isinstance(op, beam_ops.Flatten)
        self.bags[node] = op.apply(inputs if flatten or len(inputs) != 1 else inputs[0])


def _ends(bags: dict[AppliedPTransform, Any]) -> list:
    """The bags of the transforms whose outputs no other transform reads: computing them runs every branch
    (defect 3)."""
    import dask.bag

    read = {value.producer for node in bags
            for value in (*node.inputs, *(side.pvalue for side in node.side_inputs))
            if isinstance(value, pvalue.PCollection)}
    ends, names = [], set()
    for node, bag in bags.items():
        if node not in read and isinstance(bag, dask.bag.Bag) and bag.name not in names:
            names.add(bag.name)
            ends.append(bag)
    return ends


class DaskRunner(beam_dask.DaskRunner):
    """Beam's DaskRunner, with the fixes of the DEFECTS that the installed Beam has."""

    def run_pipeline(self, pipeline, options):
        import dask.bag
        import dask.distributed

        settings = options.view_as(beam_dask.DaskOptions)
        client_options = settings.get_all_options(drop_default=True, current_only=True)
        # What the translation reads (dask.bag's partitioning, Beam 2.78's lazy side inputs); the rest is the client's.
        bag_kwargs = beam_dask.DaskOptions._extract_bag_kwargs(client_options)
        lazy = {"lazy_side_inputs": True} if client_options.pop("lazy_side_inputs", False) else {}
        # Made before the translation, so that GroupByKey's dask.bag shuffle is the one for clusters ("tasks").
        client = dask.distributed.Client(**client_options)
        if not bag_kwargs:
            # Set here on purpose: Beam's default, 128 elements a partition with a warning on every run, would put
            # all of a small build (fer2013's few dozen row batches) in one partition, on one worker.
            bag_kwargs["npartitions"] = PARTITIONS_PER_THREAD * max(1, sum(client.nthreads().values()))
            settings.npartitions = bag_kwargs["npartitions"]
        defects = defects_in()
        if not defects:
            client.close()
            return super().run_pipeline(pipeline, options)
        pipeline.replace_all(beam_overrides.dask_overrides())
        visitor = _BagVisitor(bag_kwargs) if defects & PARDO_DEFECTS else self.to_dask_bag_visitor(bag_kwargs, **lazy)
        pipeline.visit(visitor)
        # One collection of every branch's end, so that Dask optimizes one graph: optimized one by one, the ends'
        # graphs would have their shared stages renamed and run once for each end.
        everything = dask.bag.concat([end.map_partitions(_drained) for end in _ends(visitor.bags)])
        return _Result(client, [client.compute(everything)])


class _Result(beam_dask.DaskRunnerResult):
    """Beam's result, closing the pipeline's Dask client when the pipeline ends (Beam's leaves it open), and saying
    in one line why, when Dask gave up on a task whose workers died."""

    def wait_until_finish(self, duration=None) -> str:
        from dask.distributed import KilledWorker

        try:
            return super().wait_until_finish(duration)
        except KilledWorker as error:
            tries = error.allowed_failures + 1  # the scheduler's distributed.scheduler.allowed-failures, plus one
            raise DaskBuildError(
                f"a Dask worker died mid-build ({tries} worker(s) died running the same task), so the build stopped "
                "and wrote no dataset: if the workers ran out of memory, use fewer or bigger ones; otherwise run the "
                "same command again") from None
        finally:
            if self.state != PipelineState.RUNNING:
                self.client.cancel(self.futures)
                self.client.close()


class DaskBuildError(RuntimeError):
    """A build on Dask that could not start or did not finish, in one line saying what to do."""


def beam_flags(address: str) -> list[str]:
    """Beam options that run a pipeline on the Dask scheduler at `address` with this module's runner, which
    partitions the work by the cluster's threads unless other options say otherwise (PARTITIONS_PER_THREAD)."""
    return [f"--runner={RUNNER}", f"--dask_client_address={address}"]


@contextlib.contextmanager
def cluster(workers: int, address: str | None = None, *, timeout: float = 10) -> Iterator[tuple[str, int, str]]:
    """(scheduler address, number of workers, a description) of the Dask cluster to build on: the one at
    `address`, checked to answer and to have workers, or a LocalCluster of `workers` processes, closed on leaving.

    A local worker that dies fails the build at once (allowed_failures=0): on one machine that is mostly a worker
    out of memory, which would die again. A cluster at `address` retries as its scheduler is configured to (Dask's
    default: a task is tried on up to four workers). Either way the build then fails with a DaskBuildError.
    """
    import dask.distributed

    if address:
        try:
            with dask.distributed.Client(address, timeout=timeout) as client:
                count = len(client.nthreads())
        except (OSError, TimeoutError) as error:
            raise DaskBuildError(f"no Dask scheduler answered at --dask-address {address} within {timeout:g} s "
                                 f"({type(error).__name__}): start one (`dask scheduler`) or check the address")
        if not count:
            raise DaskBuildError(f"the Dask scheduler at --dask-address {address} has no workers: start some "
                                 f"(`dask worker {address}`)")
        yield address, count, f"Dask (the cluster at {address}, {count} worker{'s' if count > 1 else ''})"
        return
    _resource_tracker_started()
    # The scheduler and nannies run in this process: their start-up and shut-down lines would reach its log, and
    # so would the scheduler's account of a dead worker, which the build's own error says in one line.
    logger, level = logging.getLogger("distributed"), logging.getLogger("distributed").level
    logger.setLevel(logging.CRITICAL)
    try:
        # No dashboard, and the scheduler's HTTP routes (health, metrics), which it serves even so, on a free port:
        # its default, 8787, may be taken by another cluster or build. The workers' own logs stay quiet up to
        # CRITICAL: a task's error reaches the build as its exception, and when the cluster closes after a worker
        # died, a surviving worker can log its lost heartbeat at ERROR with a traceback, which is only noise.
        with dask.distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None, silence_logs=logging.CRITICAL,
                                           scheduler_kwargs={"allowed_failures": 0,
                                                             "dashboard_address": "127.0.0.1:0"}) as local:
            yield local.scheduler_address, workers, f"Dask (LocalCluster, {workers} process{'es' * (workers > 1)})"
    finally:
        logger.setLevel(level)


def _resource_tracker_started() -> None:
    """Starts multiprocessing's resource tracker with its stderr on /dev/null, if it is not running yet.

    The LocalCluster's workers start through multiprocessing's "spawn", which starts the tracker, a process that
    lives as long as this one and inherits its stderr. Under `emopy build`, stderr is a pipe that emopy_tfds.quiet
    reads until every writer has let go of it, so the tracker would hold the end of the build up by 10 s.
    """
    from multiprocessing import resource_tracker

    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        resource_tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
