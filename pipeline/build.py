"""`emopy build`: prepares a dataset with its TFDS builder, in parallel on local cores or any Beam runner."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from pathlib import Path
from typing import Iterator, TextIO

from emopy_tfds import quiet

DEFAULT_DATA_DIR = "~/tensorflow_datasets"
# --beam-options that keep the DirectRunner in the calling process: for pipelines too small to repay a worker
# process's start-up (TensorFlow, dlib and Beam in each: about 15 s on 2 cores).
IN_MEMORY = "direct_running_mode=in_memory"


def beam_flags(workers: int, beam_options: str | None, *, dask_address: str | None = None) -> list[str]:
    """Pipeline flags: local multi-processing with one process per worker, unless another runner is asked for.

    `beam_options` uses `tfds build --beam_pipeline_options` syntax: "runner=DataflowRunner,project=p,...".
    `allow_unsafe_triggers` makes Beam 2.77's DirectRunner skip its first step, fetching a Prism runner
    binary from the network; the option only relaxes a check that our global-window pipelines never meet.
    With `dask_address`, the pipeline runs on that Dask scheduler's workers (pipeline/dask_runner.py), and
    `beam_options` add to it (dask_npartitions or dask_partition_size replace the runner's partitioning).
    """
    user_flags = [f"--{option.strip()}" for option in (beam_options or "").split(",") if option.strip()]
    if dask_address:
        from emopy.pipeline import dask_runner

        return dask_runner.beam_flags(dask_address) + user_flags
    other_runner = any(
        flag.startswith("--runner=") and flag.split("=", 1)[1] not in ("DirectRunner", "direct") for flag in user_flags
    )
    if other_runner:
        return user_flags
    local = ["--runner=DirectRunner", "--allow_unsafe_triggers", "--direct_running_mode=multi_processing",
             f"--direct_num_workers={workers}", "--default_sdk_harness_log_level=ERROR"]
    return local + user_flags


@contextlib.contextmanager
def tfds_console_left_out() -> Iterator[None]:
    """Leaves TFDS's own console output out of the block: its header ("Downloading and preparing dataset Unknown
    size (download: Unknown size, ...)": a manual download's sizes are unknown to it) and footer, printed to
    stdout, and its "Generating splits..." tqdm bar, which reaches 3/3 before Beam has started (TFDS only lays out
    the pipeline there). emopy's header, its Beam workers' progress lines and its summary say all of it, once."""
    import tensorflow_datasets as tfds  # TensorFlow: run() has imported it by now
    from tensorflow_datasets.core.utils import tqdm_utils

    shown = getattr(tqdm_utils, "_active", True)  # as the caller had it: TFDS has no public getter
    tfds.display_progress_bar(False)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        tfds.display_progress_bar(shown)


def run(
    dataset: str,
    *,
    manual_dir: str,
    data_dir: str = DEFAULT_DATA_DIR,
    config: str | None = None,
    workers: int | None = None,
    beam_options: str | None = None,
    runner: str = "direct",
    dask_address: str | None = None,
    skip_bad_rows: bool = False,
    landmark_model: str | None = None,
    detector: str = "auto",
    overwrite: bool = False,
    verbose: bool = False,
    header: bool = True,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Builds `dataset` and prints a summary; returns the exit status. Errors are one line, naming the file.

    runner "direct": Beam's DirectRunner, `workers` local processes. "dask": Beam's DaskRunner (with emopy's fixes,
    pipeline/dask_runner.py) on the dask.distributed scheduler at `dask_address`, or on a LocalCluster of
    `workers` processes made for the build when there is none.

    Unless `verbose`, Beam's and its workers' TensorFlow start-up lines are left out of stderr (emopy_tfds.quiet), and
    so are TFDS's own header, footer and progress bar (tfds_console_left_out). header: print emopy's line naming
    the dataset, workers and manual dir before the build starts (the quick start's step line says it instead).
    """
    # The streams of the moment (a default argument would keep those of the moment this module was imported).
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    # Quiet TensorFlow's C++ start-up chatter here and in the Beam workers, which inherit the environment.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The local runner re-logs every worker's warnings; the workers' own errors still show.
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    # Beam's import warns that Google Cloud's optional clients (never used by local builds) are missing, and each
    # worker prints TensorFlow's C++ start-up lines before any log setting applies: emopy_tfds.quiet leaves them out.
    with contextlib.nullcontext() if verbose else quiet.start_up_lines_filtered():
        # Beam and TensorFlow read the log settings once, when first imported: they come after.
        from apache_beam.options.pipeline_options import PipelineOptions
        import tensorflow_datasets as tfds
        from etils import epath

        import emopy_tfds  # noqa: F401  (registers the builders)
        from emopy_tfds import faces
        from emopy_tfds.ck_plus import ck_plus_files
        from emopy_tfds.fer2013 import fer2013_csv
        from emopy_tfds.wesad import wesad_files

        workers = workers or os.cpu_count() or 1
        data_dir = str(Path(data_dir).expanduser())
        # fer2013's faces come cropped: only CK+'s builder runs a detector. WESAD has no faces.
        builder_kwargs = {
            "fer2013": {"skip_bad_rows": skip_bad_rows, "landmark_model": landmark_model},
            "wesad": {},
        }.get(dataset, {"detector": detector, "landmark_model": landmark_model})
        errors = (FileNotFoundError, fer2013_csv.BadRowError, ck_plus_files.CkPlusFileError,
                  wesad_files.WesadFileError, faces.LandmarkModelNotFoundError)
        on = f"DirectRunner ({workers} process{'es' if workers > 1 else ''})"
        cluster = contextlib.ExitStack()  # the Dask cluster of a Dask build, closed once the build is over
        started = time.perf_counter()
        try:
            # TFDS's own check of the manual dir is an AssertionError with a traceback: here it is one line.
            manual = epath.Path(manual_dir).expanduser()
            if not manual.is_dir() or not any(manual.iterdir()):
                raise FileNotFoundError(f"no {dataset} data in --manual-dir {manual_dir}: the folder "
                                        f"{'is empty' if manual.is_dir() else 'does not exist'}")
            # Resolve the landmark model here, so a wrong path is one clear error before any worker starts.
            faces.landmark_model_path(landmark_model)
            builder = tfds.builder(dataset, config=config, data_dir=data_dir, **builder_kwargs)
            if runner == "dask":
                from emopy.pipeline import dask_runner

                errors += (dask_runner.DaskBuildError,)
                dask_address, workers, on = cluster.enter_context(dask_runner.cluster(workers, dask_address))
            download_config = tfds.download.DownloadConfig(
                manual_dir=manual_dir,
                beam_options=PipelineOptions(flags=beam_flags(workers, beam_options, dask_address=dask_address)),
                download_mode=(tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite
                               else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS),
                # Several shards per split let every worker write, and later let tf.data read in parallel.
                num_shards=max(4, 2 * workers),
            )
            if header:
                print(f"emopy build {builder.info.full_name}: {on}, manual dir {manual_dir}", file=stderr)
            with contextlib.nullcontext() if verbose else tfds_console_left_out():
                builder.download_and_prepare(download_config=download_config)
        except errors as error:
            cluster.close()  # first, so that no worker of a failed Dask build prints after the error
            print(f"emopy: error: {error}", file=stderr)
            return 1
        finally:
            cluster.close()
        print_summary(builder, data_dir, time.perf_counter() - started, stdout, on=on)
        return 0


def print_summary(builder, data_dir: str, seconds: float, stdout, *, on: str | None = None) -> None:
    """Examples per split, time taken (`on` what), where the data is, and anything left out."""
    info = builder.info
    total = sum(split.num_examples for split in info.splits.values())
    print(f"built {info.full_name} in {seconds:.1f} s{f' on {on}' if on else ''}: {total} examples", file=stdout)
    for name, split in info.splits.items():
        print(f"  {name:<11} {split.num_examples:>7} examples", file=stdout)
    metadata = dict(info.metadata or {})
    if metadata.get("bad_rows_skipped"):
        print(f"  skipped {metadata['bad_rows_skipped']} bad row(s) (--skip-bad-rows); first: "
              f"{metadata['bad_rows'][0]}", file=stdout)
    left_out = {reason: count for reason, count in (metadata.get("ferplus_rows_left_out") or {}).items() if count}
    if left_out:
        print(f"  FER+ left out {sum(left_out.values())} row(s): "
              + ", ".join(f"{count} {reason}" for reason, count in left_out.items()), file=stdout)
    if metadata.get("frames_processed"):
        print(f"  {metadata['frames_processed']} frames, {metadata['detections']} face detections "
              "(detected once per sequence, then tracked)", file=stdout)
    if "windows_per_subject" in metadata:
        per_subject = metadata["windows_per_subject"]
        print(f"  {len(per_subject)} subjects, {metadata['recorded_hours']:.2f} h of signal: "
              + ", ".join(f"{subject} {count}" for subject, count in per_subject.items())
              + f" windows; {metadata['windows_unlabelled']} left out (no state in most of their samples)", file=stdout)
        if metadata["recordings_too_short"]:
            print(f"  too short for one {metadata['window_seconds']:g} s window, no examples: "
                  + ", ".join(metadata["recordings_too_short"]), file=stdout)
    if metadata.get("sequences_left_out"):
        print(f"  left out {metadata['sequences_left_out']} sequence(s) with no face and no CK+ landmarks: "
              + ", ".join(metadata["left_out"]), file=stdout)
    print(f"  data: {builder.data_dir}", file=stdout)
    print(f'  load: tfds.load("{info.full_name.rsplit("/", 1)[0]}", data_dir="{data_dir}")', file=stdout)
