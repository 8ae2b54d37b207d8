"""Benchmark of `emopy build fer2013 --runner dask` beside the DirectRunner, judged by Dask time / Direct time.

Run: python benchmarks/build_dask.py [--rows 4000] [--workers N] [--repeats 2] [--real] [--workdir DIR]

Builds one fer2013 source with `emopy build` on both runners, the same number of local worker processes each: the
DirectRunner's multi-processing workers, and a Dask LocalCluster the build makes (so each Dask figure includes
starting and stopping the cluster, as a user's `--runner dask` does). Runs alternate, direct then dask, `--repeats`
times; each runner's best is its figure, because the shared machines this runs on drift by tens of percent within
minutes. Two times are printed per build: the summary's (from the builder's start to the dataset written) and the
whole command's wall time (with Python, TensorFlow and Beam starting).

The source: with `--real`, ../shared/data/fer2013 (the real fer2013 archive; it says so, and stops, when absent);
otherwise `--rows` generated rows of real face crops (the astronaut photo with pose and lighting jitter), in
Kaggle's split proportions. Both builds must report the same examples per split.
Target: Dask / Direct <= 1.25 on the summary's time.
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

import numpy as np

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fer2013"
SUMMARY = re.compile(r"^built (\S+) in ([\d.]+) s on (.+): (\d+) examples$", re.MULTILINE)


def generated_source(folder: Path, rows: int) -> Path:
    from skimage import data

    from emopy_tfds.fer2013 import dummy_data_generation as generate

    if not (folder / "fer2013.csv").exists():
        emotions = np.random.default_rng(0).integers(0, 7, rows).tolist()
        generate.write_source(folder, generate.face_crops(data.astronaut(), rows, seed=0), emotions,
                              generate.kaggle_usages(rows))
    return folder


def build(runner: str, manual: Path, data_dir: Path, workers: int) -> dict:
    """One `emopy build` from scratch: the summary's seconds, the command's wall seconds and the split lines."""
    started = time.perf_counter()
    result = subprocess.run(["emopy", "build", "fer2013", "--manual-dir", str(manual), "--data-dir", str(data_dir),
                             "--runner", runner, "--workers", str(workers), "--overwrite"],
                            capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"the {runner} build failed:\n{result.stderr[-4000:]}")
    name, seconds, on, examples = SUMMARY.search(result.stdout).groups()
    splits = [line.strip() for line in result.stdout.splitlines() if line.strip().endswith(" examples")
              and not line.startswith("built ")]
    return {"seconds": float(seconds), "wall": wall, "on": on, "examples": int(examples), "splits": splits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000, help="generated rows (not with --real)")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--real", action="store_true", help=f"build {REAL.resolve()} instead of generated rows")
    parser.add_argument("--workdir", help="keep the generated source and the datasets here (default: a temp dir)")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="emopy-bench-dask-"))
    if args.real:
        if not REAL.is_dir():
            sys.exit(f"--real: {REAL.resolve()} is not here (real data is for development machines only); "
                     "run without --real to build generated rows")
        manual, what = REAL.resolve(), f"the real fer2013 in {REAL.resolve()}"
    else:
        manual = generated_source(workdir / "manual", args.rows)
        what = f"{args.rows} generated rows (real data {'is here, not used: add --real' if REAL.is_dir() else 'absent'})"

    load = os.getloadavg()[0]
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load average {load:.1f} at the start; "
          f"{args.workers} worker processes per build; source: {what}")
    runs: dict[str, list[dict]] = {"direct": [], "dask": []}
    for repeat in range(args.repeats):
        for runner in runs:
            result = build(runner, manual, workdir / f"data-{runner}", args.workers)
            runs[runner].append(result)
            print(f"  run {repeat + 1} {runner:<6} {result['seconds']:7.1f} s in the summary, {result['wall']:7.1f} s "
                  f"whole command, {result['examples']} examples on {result['on']} (load {os.getloadavg()[0]:.1f})")
    direct, dask = (min(runs[runner], key=lambda run: run["seconds"]) for runner in ("direct", "dask"))
    if direct["splits"] != dask["splits"]:
        sys.exit(f"the runners built different splits: {direct['splits']} and {dask['splits']}")
    print(f"best of {args.repeats}: DirectRunner {direct['seconds']:.1f} s ({direct['wall']:.1f} s whole), Dask "
          f"{dask['seconds']:.1f} s ({dask['wall']:.1f} s whole); {direct['examples']} examples each "
          f"({', '.join(direct['splits'])})")
    print(f"ratio Dask / Direct  {dask['seconds'] / direct['seconds']:.2f} in the summary, "
          f"{dask['wall'] / direct['wall']:.2f} whole command   (target <= 1.25 in the summary)")


if __name__ == "__main__":
    main()
