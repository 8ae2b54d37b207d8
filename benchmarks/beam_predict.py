"""Benchmark of `emopy predict --beam` on the local DirectRunner: photos per second with 1 and 2 worker processes.

Run: python benchmarks/beam_predict.py [--photos 0] [--repeats 2] [--model NAME|BASE] [--detector auto|hog|cnn]

1. The photos: the first --photos (0, the default: all) of ../shared/data/wild_dev/photos (823 real photos, most
   350x350 grey crops of news photos) when that folder is present; otherwise, said so plainly, --photos (0: 400)
   copies of emopy's sample photo and scikit-image's astronaut (PNG, each copy cropped 2 px differently).
2. Each worker count runs the pipeline `emopy predict --beam "direct_num_workers=N" PHOTOS` runs
   (beam_predict.build on the multi_processing DirectRunner, flags from pipeline.build.beam_flags), --repeats
   times, 1 and 2 workers interleaved, the best time of each kept. Its predicting step also logs when each photo
   started and finished, per worker process, which gives two times:
   - processing: from the first photo started to the last finished (each worker's start-up, which loads
     TensorFlow, the model and dlib once, is before it), and the photos each worker process did;
   - whole pipeline: start-up, matching and writing the outputs included.
3. Scaling efficiency from 1 worker to 2 = t1 / (2 t2), of the processing times; target >= 0.8. The whole
   pipeline's ratio is printed beside it.
The machine's cores, load average before and after, and whether an `emopy train` process was running at the time
are in the header and footer lines: on a machine shared with training the figure says as much about the load
as about the pipeline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from emopy_tfds.detection import DETECTORS

# Run as a script, this folder comes first on sys.path, and benchmarks/serving.py would hide the serving package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

WILD_DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "wild_dev" / "photos"
TARGET_EFFICIENCY = 0.8


def training_running() -> bool:
    """Whether an `emopy train` process runs on this machine (read from /proc; nothing is touched)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(word.endswith(b"emopy") for word in words) and b"train" in words:
            return True
    return False


def machine() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"{os.cpu_count()} cores, load average {load} (1, 5, 15 min), "
            f"emopy train {'RUNNING' if training_running() else 'not running'}")


def photo_set(count: int, folder: Path) -> tuple[list[Path], str]:
    """The photos to predict on, copied into `folder`, and where they came from."""
    if WILD_DEV.is_dir():
        found = sorted(path for path in WILD_DEV.iterdir() if path.suffix.lower() in (".jpg", ".jpeg", ".png"))
        chosen = found[:count] if count else found
        for path in chosen:
            shutil.copy(path, folder / path.name)
        return sorted(folder.iterdir()), f"{len(chosen)} of wild_dev's {len(found)} real photos ({WILD_DEV})"
    import cv2
    from skimage import data

    from emopy_tfds.data import sample_photo

    print(f"{WILD_DEV} is not present: using copies of emopy's sample photo and scikit-image's astronaut instead")
    sources = [cv2.imread(str(sample_photo())),
               cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)]
    count = count or 400
    for index in range(count):
        image = sources[index % 2]
        cv2.imwrite(str(folder / f"copy{index:04d}.png"), image[2 * (index // 2) % 40:, :])
    return sorted(folder.iterdir()), f"{count} copies of the sample photo and the astronaut"


def timed_step(log_dir: Path, model: str | None, detector: str | None):
    """beam_predict.PredictFiles that also logs, per worker process, when each file started and finished."""
    from emopy.serving import beam_predict

    class TimedPredictFiles(beam_predict.PredictFiles):
        def process(self, path: str):
            started = time.time()
            results = list(super().process(path))
            with open(log_dir / f"{os.getpid()}.times", "a") as log:
                log.write(f"{started} {time.time()}\n")
            yield from results

    return TimedPredictFiles(model, detector=detector)


def timed_run(photos: Path, count: int, workers: int, model: str | None, detector: str | None,
              workdir: Path) -> tuple[float, float, list[int]]:
    """Seconds of the whole pipeline as `emopy predict --beam "direct_num_workers=N" PHOTOS` builds it (start-up
    included), seconds from the first file started to the last finished, and the files each worker did."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from emopy.pipeline.build import beam_flags
    from emopy_tfds import quiet
    from emopy.serving import beam_predict, layout, shipped

    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    output, log_dir = run_dir / "out", run_dir / "times"
    log_dir.mkdir()
    classes = layout.read_assets(layout.resolve_export(shipped.resolve_model(model))).class_names
    started = time.perf_counter()
    with quiet.start_up_lines_filtered():
        with beam.Pipeline(options=PipelineOptions(beam_flags(workers, None))) as pipeline:
            beam_predict.build(pipeline, beam_predict.patterns_of([str(photos)]), str(output), classes,
                               timed_step(log_dir, model, detector))
    whole = time.perf_counter() - started
    rows, no_face, errors = beam_predict.read_outputs(str(output))
    if rows["file"].nunique() + len(no_face) + len(errors) != count:
        raise SystemExit(f"the run with {workers} worker(s) accounts for {rows['file'].nunique() + len(no_face)} "
                         f"+ {len(errors)} of {count} photos")
    times = [[tuple(map(float, line.split())) for line in log.read_text().splitlines()]
             for log in sorted(log_dir.iterdir())]
    span = max(end for log in times for _, end in log) - min(start for log in times for start, _ in log)
    per_worker = sorted((len(log) for log in times), reverse=True)
    print(f"  {workers} worker(s): {whole:6.1f} s whole pipeline, {span:6.1f} s from the first photo started to "
          f"the last finished; photos per worker process {per_worker}; {len(rows)} rows, {len(no_face)} without "
          f"a face, {len(errors)} unreadable", flush=True)
    shutil.rmtree(run_dir)
    return whole, span, per_worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=0, help="how many photos (0: all of wild_dev, or 400 copies)")
    parser.add_argument("--model", help="a shipped model's name or an export (default: the default model)")
    parser.add_argument("--detector", choices=DETECTORS, help="default: the model's own (auto)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each worker count, interleaved; best kept")
    args = parser.parse_args()

    from emopy.pipeline.cli import start_tensorflow
    from emopy_tfds import quiet

    start_tensorflow()  # its C++ start-up lines stay off the terminal, as in the emopy command
    with quiet.start_up_lines_filtered():  # Beam's import warns that Google Cloud's optional clients are missing
        from emopy.serving import beam_predict  # noqa: F401
    print(f"emopy predict --beam, DirectRunner multi_processing: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir) / "photos"
        folder.mkdir()
        photos, source = photo_set(args.photos, folder)
        print(f"photos: {source}; detector {args.detector or 'the model default'}", flush=True)
        whole: dict[int, list[float]] = {1: [], 2: []}
        span: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeats):  # interleaved, so that load from other processes falls on both alike
            for workers in (1, 2):
                seconds, busy, _ = timed_run(folder, len(photos), workers, args.model, args.detector, Path(workdir))
                whole[workers].append(seconds)
                span[workers].append(busy)
        best = {workers: (min(whole[workers]), min(span[workers])) for workers in (1, 2)}
        for workers, (seconds, busy) in best.items():
            print(f"{workers} worker(s): {len(photos) / busy:6.2f} photos/s processing, {len(photos) / seconds:6.2f} "
                  f"photos/s whole pipeline (best of {args.repeats})")
        efficiency = best[1][1] / (2 * best[2][1])
        print(f"scaling efficiency 1 -> 2 workers, t1 / (2 t2): {efficiency:.2f} processing, "
              f"{best[1][0] / (2 * best[2][0]):.2f} whole pipeline (target >= {TARGET_EFFICIENCY}, processing: "
              f"{'met' if efficiency >= TARGET_EFFICIENCY else 'NOT met'})")
    print(f"after: {machine()}")


if __name__ == "__main__":
    main()
