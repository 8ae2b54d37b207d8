"""Benchmark of `emopy build ck_plus` at full size, judged by tracking's cost against detecting every frame.

Run: python benchmarks/build_ck_plus.py [--workers N] [--workdir DIR] [--sample 20]

1. Writes a full-size CK+ tree (123 subjects, 593 sequences, 10,708 frames of 640x490, 327 labelled) with
   a real face (the astronaut) composited into each frame, moving slightly from frame to frame.
2. Builds the `emotion` and `sequences` configs with `emopy build` on all cores; prints wall time, frames
   per second, detections run (from the dataset's metadata) and peak memory of the largest process.
3. In this process, on a sample of sequences, times the face work as the builder does it (detect on the
   first frame, then track) against detecting on every frame. Target: ratio <= 0.3.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from emopy_tfds import faces, tracking
from emopy_tfds.ck_plus import ck_plus_files
from emopy_tfds.ck_plus.dummy_data_generation import SequenceSpec, write_tree

SUBJECTS, SEQUENCES, FRAMES, LABELLED = 123, 593, 10_708, 327


def full_size_specs(seed: int = 0) -> list[SequenceSpec]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(10, 27, SEQUENCES)
    while lengths.sum() != FRAMES:  # nudge to CK+'s exact frame count
        lengths[rng.integers(SEQUENCES)] += 1 if lengths.sum() < FRAMES else -1
    subjects = np.sort(rng.integers(0, SUBJECTS, SEQUENCES))
    subjects[:SUBJECTS] = np.arange(SUBJECTS)  # every subject has at least one sequence
    subjects.sort()
    labelled = set(rng.choice(SEQUENCES, LABELLED, replace=False).tolist())
    specs, counts = [], {}
    for i, (subject, length) in enumerate(zip(subjects, lengths)):
        counts[subject] = counts.get(subject, 0) + 1
        specs.append(SequenceSpec(f"S{subject + 5:03d}", f"{counts[subject]:03d}", frames=int(length),
                                  emotion=int(rng.integers(1, 8)) if i in labelled else None,
                                  facs=((12, 3),), colour=i % 50 == 0))
    return specs


def build(manual: Path, data_dir: Path, config: str, workers: int) -> tuple[float, dict]:
    started = time.perf_counter()
    result = subprocess.run(["emopy", "build", "ck_plus", "--config", config, "--manual-dir", str(manual),
                             "--data-dir", str(data_dir), "--workers", str(workers), "--overwrite"],
                            capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"build failed:\n{result.stderr[-4000:]}")
    metadata = json.loads(next(data_dir.glob(f"ck_plus/{config}/1.0.0/metadata.json")).read_text())
    return wall, metadata


def tracking_against_every_frame(manual: Path, sample: int) -> tuple[float, float, int]:
    """Seconds for the sample's face work done as the builder does it, and detecting on every frame."""
    sequences = ck_plus_files.index_sequences(ck_plus_files.find_roots(manual, extract=lambda p: p))[:sample]
    frames = [[faces.load_image(path) for path in sequence.frames] for sequence in sequences]
    faces.load_models()
    started = time.perf_counter()
    for sequence_frames in frames:
        tracking.track_face(sequence_frames)
    tracked = time.perf_counter() - started
    started = time.perf_counter()
    for sequence_frames in frames:
        for frame in sequence_frames:
            faces.find_faces(frame)
    every_frame = time.perf_counter() - started
    return tracked, every_frame, sum(len(f) for f in frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--sample", type=int, default=20, help="sequences timed in-process")
    parser.add_argument("--workdir", help="keep the generated tree and datasets here (default: a temp dir)")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="emopy-bench-ck-"))
    manual = workdir / "manual"
    if not (manual / "cohn-kanade-images").exists():
        started = time.perf_counter()
        write_tree(manual, full_size_specs(), layout="folders")
        print(f"wrote a full-size CK+ tree in {time.perf_counter() - started:.0f} s: {manual}")

    for config in ("emotion", "sequences"):
        wall, metadata = build(manual, workdir / "data", config, args.workers)
        print(f"{config:<9} build {wall:6.1f} s: {metadata['frames_processed']} frames "
              f"({metadata['frames_processed'] / wall:.0f} frames/s), {metadata['detections']} detections "
              f"for {metadata['sequences_found']} sequences found, {metadata['sequences_left_out']} left out")
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9
    print(f"peak memory, largest process {peak_gb:.2f} GB")

    tracked, every_frame, frame_count = tracking_against_every_frame(manual, args.sample)
    print(f"face work on {args.sample} sequences ({frame_count} frames), one process: detect once + track "
          f"{tracked:.2f} s, detect every frame {every_frame:.2f} s")
    print(f"ratio tracking / detect-every-frame   {tracked / every_frame:.2f}   (target <= 0.3)")


if __name__ == "__main__":
    main()
