"""Benchmark of `emopy build fer2013` at full size, judged by wall time over the ideal parallel time.

Run: python benchmarks/build_fer2013.py [--rows 35887] [--workers N] [--workdir DIR]

1. Writes a full-size fer2013.csv (Kaggle's 35,887 rows and split sizes) of real face crops: the
   astronaut photo (scikit-image's, or the sample shipped with emopy) with pose and lighting jitter.
2. Builds it with `emopy build fer2013` on all cores; records wall time and the peak memory (RSS) of the
   largest process.
3. In this process, measures the work no pipeline can avoid per row: parsing the pixels, fitting the
   landmarks and TFDS's encoding and serialisation of the example. Ideal = per-row cost x rows / cores.
   The shared machines this runs on drift by tens of percent within minutes, so the per-row cost is
   measured just before and just after the build, and the mean is used.
Target: wall / ideal <= 1.25 on the 2-core machine, peak memory <= 3 GB.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from emopy_tfds import faces
from emopy_tfds.data import sample_photo
from emopy_tfds.fer2013 import dummy_data_generation as generate
from emopy_tfds.fer2013 import fer2013_csv

FULL_SIZE = sum(generate.KAGGLE_SPLIT_SIZES.values())


def real_photo() -> np.ndarray:
    try:
        from skimage import data

        return data.astronaut()
    except ImportError:  # the test extra is not installed: use the copy shipped with emopy
        return faces.load_image(sample_photo())


def per_row_seconds(csv_path: Path, sample: int) -> dict[str, float]:
    """Seconds per row for each unavoidable step, measured in this process on `sample` rows."""
    import tensorflow_datasets as tfds

    import emopy_tfds  # noqa: F401
    from emopy_tfds.fer2013 import fer2013_beam

    builder = tfds.builder("fer2013", data_dir=tempfile.mkdtemp())
    features = builder.info.features
    serializer = tfds.core.example_serializer.ExampleSerializer(features.get_serialized_info())
    rows = fer2013_csv.scan_rows(csv_path).rows["train"][:sample]
    chunk = csv_path.read_bytes()
    texts = [chunk[offset : offset + length] for offset, length in zip(rows["pixels_offset"], rows["pixels_length"])]
    faces.load_models()

    started = time.perf_counter()
    images = [fer2013_csv.parse_pixels(text, where="") for text in texts]
    parse = time.perf_counter() - started

    started = time.perf_counter()
    marks = [faces.find_faces(image, already_cropped=True)[0].landmarks for image in images]
    landmarks = time.perf_counter() - started

    examples = [fer2013_beam.example(row, image, mark, ferplus=False) for row, image, mark in zip(rows, images, marks)]
    serializer.serialize_example(features.encode_example(examples[0]))  # warm up TF's PNG encoder
    started = time.perf_counter()
    for example in examples:
        serializer.serialize_example(features.encode_example(example))
    serialize = time.perf_counter() - started
    return {"parse": parse / sample, "landmarks": landmarks / sample, "serialize": serialize / sample}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=FULL_SIZE)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--sample", type=int, default=2000, help="rows timed in-process for the ideal")
    parser.add_argument("--workdir", help="keep the generated CSV and the dataset here (default: a temp dir)")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="emopy-bench-"))
    manual, data_dir = workdir / "manual", workdir / "data"

    started = time.perf_counter()
    csv_path = manual / fer2013_csv.CSV_NAME
    if not csv_path.exists():
        images = generate.face_crops(real_photo(), args.rows, seed=0)
        emotions = np.random.default_rng(0).integers(0, 7, args.rows).tolist()
        generate.write_source(manual, images, emotions, generate.kaggle_usages(args.rows))
    print(f"source: {csv_path} ({csv_path.stat().st_size / 1e6:.0f} MB, {args.rows} rows, "
          f"written in {time.perf_counter() - started:.1f} s)")

    before = per_row_seconds(csv_path, min(args.sample, args.rows))
    started = time.perf_counter()
    build = subprocess.run(
        ["emopy", "build", "fer2013", "--manual-dir", str(manual), "--data-dir", str(data_dir),
         "--workers", str(args.workers), "--overwrite"],
        capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    if build.returncode:
        sys.exit(f"build failed:\n{build.stderr[-4000:]}")
    # ru_maxrss of reaped descendants is the peak RSS of the largest one (KiB on Linux).
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9

    after = per_row_seconds(csv_path, min(args.sample, args.rows))
    per_row = {step: (before[step] + after[step]) / 2 for step in before}
    row_cost = sum(per_row.values())
    ideal = row_cost * args.rows / args.workers
    print(build.stdout.strip())
    print(f"per-row work, one process: parse {per_row['parse'] * 1e3:.3f} ms + landmarks "
          f"{per_row['landmarks'] * 1e3:.3f} ms + TFDS encode/serialise {per_row['serialize'] * 1e3:.3f} ms "
          f"= {row_cost * 1e3:.3f} ms (before the build {sum(before.values()) * 1e3:.3f} ms, "
          f"after {sum(after.values()) * 1e3:.3f} ms)")
    print(f"build wall time      {wall:7.1f} s   ({args.rows / wall:.0f} examples/s, {args.workers} workers)")
    print(f"ideal                {ideal:7.1f} s   (per-row work x {args.rows} rows / {args.workers} cores)")
    print(f"ratio wall / ideal   {wall / ideal:7.2f}     (target <= 1.25)")
    print(f"peak memory, largest process {peak_gb:.2f} GB (target <= 3 GB)")


if __name__ == "__main__":
    main()
