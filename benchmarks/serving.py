"""Benchmark of serving: the Keras call, the in-process SavedModel and gRPC through `emopy serve`.

Run: python benchmarks/serving.py [--model multi_input] [--requests 300] [--workdir DIR]

1. Makes a run to export: builds the 8-row fer2013 dummy data and trains one epoch of --model (latency does
   not depend on what the weights learnt), then `emopy export`s it.
2. Single face and batch of 32 (the sample photo's face crop), in the same run:
   - the raw Keras model call on preprocessed inputs (pixels and landmark features): the floor; and the same
     call inside a tf.function, which has no per-layer Python dispatch, for comparison;
   - the exported SavedModel's serving_default signature in this process (PNG decode, gray, resize and
     landmark features in-graph);
   - EmotionClient -> gRPC over loopback -> `emopy serve` (a separate process) -> the same signature.
   p50/p99 latency and throughput (sequential requests) of each.
Targets: in-process single-face p50 <= 1.5x the Keras call; gRPC overhead (gRPC p50 - in-process p50) < 2 ms.
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

# Run as a script, this folder comes first on sys.path, and this file's name would hide the serving package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

DUMMY_FER2013 = Path(__file__).resolve().parent.parent / "emopy_tfds" / "fer2013" / "dummy_data"


def make_export(workdir: Path, model: str) -> Path:
    base = workdir / "export"
    if base.exists():
        return base
    data_dir, run_dir = workdir / "data", workdir / "run"
    commands = [
        ["emopy", "build", "fer2013", "--config", "original", "--manual-dir", str(DUMMY_FER2013),
         "--data-dir", str(data_dir), "--workers", "1"],
        ["emopy", "train", "--dataset", "fer2013", "--data-dir", str(data_dir), "--model", model,
         "--out", str(run_dir), "--epochs", "1", "--batch-size", "2"],
        ["emopy", "export", "--run", str(run_dir), "--model-base-path", str(base)],
    ]
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return base


def timings(call, requests: int, warmup: int = 20) -> np.ndarray:
    for _ in range(warmup):
        call()
    seconds = np.empty(requests)
    for index in range(requests):
        started = time.perf_counter()
        call()
        seconds[index] = time.perf_counter() - started
    return seconds


def start_server(base: Path) -> tuple[subprocess.Popen, int]:
    server = subprocess.Popen(["emopy", "serve", "--model-base-path", str(base), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    if "Serving model" not in line:
        server.kill()
        sys.exit(f"emopy serve did not start: {line}")
    return server, int(line.rsplit(":", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="multi_input")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--workdir", help="keep the run and export here (default: a temp dir)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="emopy-bench-serving-"))
    base = make_export(workdir, args.model)

    import tensorflow as tf

    from emopy_tfds import faces
    from emopy.pipeline import data
    from emopy.pipeline.run_dir import RunDir
    from emopy.serving import export, layout

    export_dir = layout.resolve_export(base)
    from emopy.serving.client import EmotionClient

    class_names, face_spec, spec = layout.read_assets(export_dir)
    face = export.sample_face(face_spec)
    keras_model = RunDir.open(workdir / "run").load_model()
    loaded = tf.saved_model.load(str(export_dir))
    signature = loaded.signatures["serving_default"]
    encoded = faces.encode_png(face.image)
    server, port = start_server(base)
    rows = []
    try:
        with EmotionClient(f"127.0.0.1:{port}", timeout=30) as client:
            for batch in (1, 32):
                records = {"image": np.repeat(face.image[None], batch, 0),
                           "landmarks": np.repeat(face.landmarks[None], batch, 0)}
                model_inputs = data.model_inputs(records, spec)
                arguments = {"image_bytes": tf.constant([encoded] * batch)}
                crops, points = [encoded] * batch, None
                if spec.uses_landmarks:
                    arguments["landmarks"] = tf.constant(records["landmarks"])
                    points = records["landmarks"]
                compiled = tf.function(lambda inputs: keras_model(inputs, training=False))
                measured = {
                    "Keras model call (floor)": timings(lambda: keras_model(model_inputs, training=False), args.requests),
                    "Keras call in tf.function": timings(lambda: compiled(model_inputs), args.requests),
                    "SavedModel in process": timings(lambda: signature(**arguments), args.requests),
                    "gRPC via emopy serve": timings(lambda: client.predict(crops, points), args.requests),
                }
                for name, seconds in measured.items():
                    rows.append((batch, name, np.percentile(seconds, 50) * 1e3, np.percentile(seconds, 99) * 1e3,
                                 batch / seconds.mean()))
    finally:
        server.terminate()
        server.wait()

    print(f"\n{args.model}, {args.requests} sequential requests each, {os.cpu_count()} cores")
    print(f"{'batch':>5}  {'path':<28}{'p50 ms':>9}{'p99 ms':>9}{'faces/s':>10}")
    for batch, name, p50, p99, throughput in rows:
        print(f"{batch:>5}  {name:<28}{p50:9.2f}{p99:9.2f}{throughput:10.0f}")
    p50 = {(batch, name): value for batch, name, value, _, _ in rows}
    single_ratio = p50[(1, "SavedModel in process")] / p50[(1, "Keras model call (floor)")]
    for batch in (1, 32):
        overhead = p50[(batch, "gRPC via emopy serve")] - p50[(batch, "SavedModel in process")]
        print(f"batch {batch}: gRPC overhead at p50 {overhead:.2f} ms"
              + (f" (target < 2 ms: {'met' if overhead < 2 else 'NOT met'})" if batch == 1 else ""))
    print(f"in-process single-face p50 / Keras call: {single_ratio:.2f} "
          f"(target <= 1.5: {'met' if single_ratio <= 1.5 else 'NOT met'})")
    # The eager call pays Python dispatch per layer; against the same graph without eager overhead, what
    # the SavedModel adds is its in-graph preprocessing (PNG decode, gray, resize, landmark features).
    graph_ratio = p50[(1, "SavedModel in process")] / p50[(1, "Keras call in tf.function")]
    print(f"in-process single-face p50 / Keras call in tf.function: {graph_ratio:.2f}")


if __name__ == "__main__":
    main()
