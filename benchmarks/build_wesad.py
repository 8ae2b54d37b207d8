"""Benchmark of `emopy build wesad`: build seconds per subject-hour of signal on Beam's DirectRunner and on Dask.

Run: python benchmarks/build_wesad.py [--manual-dir DIR] [--config chest] [--subjects 4] [--minutes 20]
                                      [--workers N] [--workdir DIR]

Builds one WESAD copy with `emopy build wesad` on both runners, the same number of local worker processes each (the
DirectRunner's multi-processing workers; a Dask LocalCluster the build makes, started and stopped inside the
command, as a user's `--runner dask` is). Each build's figure is the summary's time (from the builder's start to
the dataset written) over the subject-hours of signal read.

The ideal beside them: the same work (every pickle read and checked, every window's features and resampled signals)
done in this process with no Beam, divided by the workers: what a perfectly parallel build with free TFRecord
writing would take. Ratios: each runner's time over the ideal, and Dask's over the DirectRunner's.

The source: `--manual-dir` holding a real WESAD copy (SX/SX.pkl), when one is given; otherwise generated subjects in
WESAD's layout (emopy_tfds/wesad/dummy_data_generation.py), `--minutes` each through the four states. It says
which, and says plainly that no real copy was given.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUMMARY = re.compile(r"^built (\S+) in ([\d.]+) s on (.+): (\d+) examples$", re.MULTILINE)
HOURS = re.compile(r"([\d.]+) h of signal")


def generated_source(folder: Path, subjects: int, minutes: float) -> Path:
    from emopy_tfds.wesad import dummy_data_generation

    if not folder.is_dir():
        dummy_data_generation.small_dataset(folder, subjects, phase_seconds=round(minutes * 60 / 4))
    return folder


def ideal_seconds(manual: Path, config: str) -> tuple[float, int]:
    """Seconds to read every subject and compute every window's features and signals in this process, no Beam;
    and the windows made."""
    from etils import epath

    from emopy_tfds.wesad import wesad_dataset_builder, wesad_files, wesad_windows

    builder_config = next(c for c in wesad_dataset_builder.Builder.BUILDER_CONFIGS if c.name == config)
    sensors = wesad_files.SENSORS[config]
    spec = wesad_windows.WindowSpec(builder_config.window_seconds, builder_config.shift_seconds,
                                    builder_config.signal_rate)
    names = wesad_windows.channel_names(sensors)
    started, count = time.perf_counter(), 0
    for path in wesad_files.find_subject_files(epath.Path(manual)):
        recording = wesad_files.read_recording(path, sensors)
        kept, _ = wesad_files.windows(recording.labels, round(spec.window_seconds * wesad_files.CHEST_RATE),
                                      round(spec.shift_seconds * wesad_files.CHEST_RATE))
        resampled = wesad_windows.resampled_channels(recording.channels, names, spec.signal_rate)
        for window in kept:
            start = window.start / wesad_files.CHEST_RATE
            wesad_windows.window_features(recording.channels, sensors, start, spec.window_seconds)
            wesad_windows.window_signals(resampled, names, start, spec)
        count += len(kept)
    return time.perf_counter() - started, count


def build(runner: str, manual: Path, data_dir: Path, config: str, workers: int) -> dict:
    """One `emopy build wesad` from scratch: the summary's seconds, examples and subject-hours."""
    result = subprocess.run(["emopy", "build", "wesad", "--config", config, "--manual-dir", str(manual),
                             "--data-dir", str(data_dir), "--runner", runner, "--workers", str(workers), "--overwrite"],
                            capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"the {runner} build failed:\n{result.stderr[-4000:]}")
    name, seconds, on, examples = SUMMARY.search(result.stdout).groups()
    return {"seconds": float(seconds), "on": on, "examples": int(examples),
            "hours": float(HOURS.search(result.stdout).group(1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual-dir", help="a real WESAD copy (SX/SX.pkl folders); default: generated subjects")
    parser.add_argument("--config", default="chest", choices=["chest", "wrist", "both"])
    parser.add_argument("--subjects", type=int, default=4, help="generated subjects (without --manual-dir)")
    parser.add_argument("--minutes", type=float, default=20, help="each generated subject's recording")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--workdir", help="keep the generated source and the datasets here (default: a temp dir)")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="emopy-bench-wesad-"))
    if args.manual_dir:
        manual, what = Path(args.manual_dir).resolve(), f"the WESAD copy in {Path(args.manual_dir).resolve()}"
    else:
        manual = generated_source(workdir / "manual", args.subjects, args.minutes)
        what = (f"{args.subjects} generated subjects of {args.minutes:g} min (no real WESAD copy given: "
                "--manual-dir DIR builds one)")
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"{args.workers} worker processes per build; wesad/{args.config}; source: {what}")

    ideal, windows = ideal_seconds(manual, args.config)
    runs = {runner: build(runner, manual, workdir / f"data-{runner}", args.config, args.workers)
            for runner in ("direct", "dask")}
    hours = runs["direct"]["hours"]
    if runs["direct"]["examples"] != runs["dask"]["examples"] or runs["direct"]["examples"] != windows:
        sys.exit(f"different windows: in process {windows}, direct {runs['direct']['examples']}, "
                 f"dask {runs['dask']['examples']}")
    ideal_per_hour = ideal / args.workers / hours
    print(f"{hours:.2f} subject-hours of signal, {windows} windows of 60 s")
    print(f"  ideal (one process, no Beam, / {args.workers} workers) {ideal_per_hour:7.1f} s per subject-hour "
          f"({ideal:.1f} s in one process)")
    for runner, result in runs.items():
        per_hour = result["seconds"] / hours
        print(f"  {runner:<6} {per_hour:7.1f} s per subject-hour ({result['seconds']:.1f} s on {result['on']})   "
              f"ratio to the ideal {per_hour / ideal_per_hour:.2f}")
    print(f"ratio Dask / Direct  {runs['dask']['seconds'] / runs['direct']['seconds']:.2f}")


if __name__ == "__main__":
    main()
