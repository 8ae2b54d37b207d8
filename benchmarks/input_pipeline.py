"""Benchmark of the tf.data input pipelines against the original Emopy's generator, and of models on CPU.

Run: python benchmarks/input_pipeline.py [--workdir DIR] [--rows 35887] [--batch-size 64]

1. Builds a full-size fer2013 (Kaggle's 35,887 rows, real face crops; reused from --workdir if there) with
   `emopy build`.
2. Baseline, in the same run: a Python generator in the original Emopy's style, which decoded each image with
   cv2 and recomputed its dlib landmarks for every batch, every epoch (the landmark features are the model's now).
3. examples/s of each pipeline kind (image, landmarks, image+landmarks) in training mode (shuffle, augmentation),
   over a warm epoch (the cache is filled by the first) and the first (cold) epoch.
4. Training steps/s of each model on CPU, fed batches already in memory: what a model consumes.
Target: every pipeline kind >= 10x the generator, and >= 3x the examples/s of the fastest model.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL_SIZE = 35887


def build_full_size(workdir: Path, rows: int) -> Path:
    from emopy_tfds.fer2013 import dummy_data_generation as generate
    from emopy_tfds.fer2013 import fer2013_csv

    sys.path.insert(0, str(Path(__file__).parent))
    from build_fer2013 import real_photo

    manual, data_dir = workdir / "manual", workdir / "data"
    if (data_dir / "fer2013" / "original").exists():
        print(f"reusing the fer2013 built in {data_dir}")
        return data_dir
    csv_path = manual / fer2013_csv.CSV_NAME
    if not csv_path.exists():
        images = generate.face_crops(real_photo(), rows, seed=0)
        emotions = np.random.default_rng(0).integers(0, 7, rows).tolist()
        generate.write_source(manual, images, emotions, generate.kaggle_usages(rows))
    started = time.perf_counter()
    result = subprocess.run(["emopy", "build", "fer2013", "--config", "original", "--manual-dir", str(manual),
                             "--data-dir", str(data_dir)], capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"build failed:\n{result.stderr[-4000:]}")
    print(f"built fer2013 ({rows} rows) in {time.perf_counter() - started:.0f} s")
    return data_dir


def original_style_generator(data_dir: Path, batch_size: int):
    """The original Emopy's loop: per batch, decode each image with cv2 and fit dlib's landmarks again."""
    import cv2
    import tensorflow_datasets as tfds

    from emopy_tfds import faces

    ds = tfds.builder("fer2013/original", data_dir=str(data_dir)).as_dataset(
        split="train", decoders={"image": tfds.decode.SkipDecoding()})
    encoded = [(example["image"], example["label"]) for example in tfds.as_numpy(ds)]
    faces.load_models()
    while True:
        for start in range(0, len(encoded) - batch_size + 1, batch_size):
            images, points, labels = [], [], []
            for png, label in encoded[start:start + batch_size]:
                image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
                # What emopy's pipeline hands the model: uint8 pixels and landmarks (the model computes the rest).
                images.append(image[:, :, None])
                points.append(faces.find_faces(image, already_cropped=True)[0].landmarks)
                labels.append(label)
            yield np.stack(images), np.stack(points), np.array(labels)


def examples_per_second(batches, batch_size: int, count: int) -> float:
    iterator = iter(batches)
    next(iterator)
    started = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count * batch_size / (time.perf_counter() - started)


def pipeline_speeds(data_dir: Path, batch_size: int) -> dict[str, dict[str, float]]:
    from emopy import models
    from emopy.pipeline import data

    config = data.DataConfig("fer2013", data_dir=str(data_dir))
    weights = data.balanced_class_weights(data.label_counts(config, "train"))
    speeds = {}
    for kind in ("image", "landmarks", "image_landmarks"):
        spec = models.InputSpec(kind=kind)
        ds = data.batches(config, "train", spec, batch_size=batch_size, training=True, class_weights=weights)
        started = time.perf_counter()
        epoch = sum(1 for _ in ds)
        cold = epoch * batch_size / (time.perf_counter() - started)
        started = time.perf_counter()
        epoch = sum(1 for _ in ds)
        warm = epoch * batch_size / (time.perf_counter() - started)
        speeds[kind] = {"cold": cold, "warm": warm}
    return speeds


def model_speeds(batch_size: int, steps: int) -> dict[str, float]:
    """Examples/s each model trains at on this CPU, from one batch held in memory."""
    import tensorflow as tf
    import tf_keras as keras

    from emopy import models

    speeds = {}
    for name, architecture in models.ARCHITECTURES.items():
        spec = models.InputSpec(kind=architecture.input_kind)
        inputs = {key: tf.random.uniform((batch_size, *shape)) for key, shape in models.input_shapes(spec).items()}
        targets = tf.random.uniform((batch_size,), 0, 7, tf.int64)
        model = models.build(name, spec, 7)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=models.loss(name))
        model.train_on_batch(inputs, targets)
        started = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(inputs, targets)
        speeds[name] = steps * batch_size / (time.perf_counter() - started)
        keras.backend.clear_session()
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="keep the generated CSV and the dataset here (default: a temp dir)")
    parser.add_argument("--rows", type=int, default=FULL_SIZE)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--generator-batches", type=int, default=30, help="batches timed for the baseline")
    parser.add_argument("--model-steps", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="emopy-bench-"))
    data_dir = build_full_size(workdir, args.rows)

    import emopy_tfds  # noqa: F401

    generator = examples_per_second(original_style_generator(data_dir, args.batch_size), args.batch_size,
                                    args.generator_batches)
    pipelines = pipeline_speeds(data_dir, args.batch_size)
    consumers = model_speeds(args.batch_size, args.model_steps)
    fastest_model = max(consumers, key=consumers.get)

    print(f"\nbatch size {args.batch_size}, {os.cpu_count()} cores, fer2013 train split")
    print(f"{'original-style generator (cv2 + dlib per batch)':<52}{generator:10.0f} examples/s   baseline")
    for kind, speed in pipelines.items():
        print(f"{'tf.data ' + kind + ', warm epoch':<52}{speed['warm']:10.0f} examples/s   "
              f"{speed['warm'] / generator:6.1f}x the generator, "
              f"{speed['warm'] / consumers[fastest_model]:5.1f}x the fastest model")
        print(f"{'tf.data ' + kind + ', first epoch (fills the cache)':<52}{speed['cold']:10.0f} examples/s   "
              f"{speed['cold'] / generator:6.1f}x the generator")
    print("\nmodels training on CPU (batches in memory):")
    for name, speed in sorted(consumers.items(), key=lambda item: -item[1]):
        print(f"  {name:<16}{speed:10.0f} examples/s  {speed / args.batch_size:8.1f} steps/s")
    slowest_pipeline = min(speed["warm"] for speed in pipelines.values())
    print(f"\ntarget: pipeline >= 10x generator: {slowest_pipeline / generator:.1f}x "
          f"({'met' if slowest_pipeline >= 10 * generator else 'NOT met'}); "
          f">= 3x the fastest model ({fastest_model}): {slowest_pipeline / consumers[fastest_model]:.1f}x "
          f"({'met' if slowest_pipeline >= 3 * consumers[fastest_model] else 'NOT met'})")


if __name__ == "__main__":
    main()
