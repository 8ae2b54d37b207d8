"""Benchmark of whole photo pipelines on labelled real photos of people: emopy's shipped models side by side, and
the `fer` package's pipeline as a baseline.

Run: python benchmarks/wild_photos.py [--model NAME|DIR ...] [--fer-python PYTHON] [--photos DIR] [--labels CSV]
                                      [--detector auto|blazeface|hog|cnn] [--out DIR] [--markdown] [--time-predict]

Reads ../shared/data/wild_dev (photos/ and labels.csv, `file,emotion` with fer2013's names; beside the repository,
not in it) unless --photos and --labels name other photos; says so and exits 1 when they are not there.

Each --model (a shipped model's name or an export; default: fer2013 and ferplus, the models emopy ships) is scored
by `emopy evaluate --photos DIR --labels CSV --model M`: detection, the model's own crop, the model, as `emopy
predict` runs them, on each photo's largest face. A photo where no face is found counts as wrong. The table gives,
per pipeline: accuracy on all photos, accuracy on the faces found, faces found, and each class's recall over all
photos; then each pipeline's figure over the first's (the ratio columns). Each evaluation's JSON report, confusion
matrix and predictions are kept under --out (default: a temporary folder, removed at the end). --time-predict
also times the whole `emopy predict PHOTOS` command, start-up included, under `auto` and under `--detector hog`,
with the first model: their ratio, and the share of photos where each found a face.

The `fer` package (https://github.com/justinshenk/fer, MIT) runs in an interpreter of its own, given by
--fer-python: it needs OpenCV 4's Haar cascade, and emopy installs opencv-python-headless 5, which has none. That
interpreter runs benchmarks/fer_photos.py (its Haar-cascade detector and its mini-Xception, emotion_model.hdf5;
the largest face's top emotion), and its answers are scored here exactly as emopy's (pipeline.evaluate_photos.photo_report).
Set up its venv once (about 1 GB; `fer`'s own requirements also pull PyTorch and moviepy, which its Haar-cascade
pipeline never imports, hence --no-deps; setuptools < 81 for the pkg_resources it imports):

    python -m venv /work/fer-venv
    /work/fer-venv/bin/pip install --no-deps fer
    /work/fer-venv/bin/pip install "opencv-python<5" tensorflow Pillow requests "setuptools<81"
    python benchmarks/wild_photos.py --model fer2013 --fer-python /work/fer-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from emopy_tfds.detection import DETECTORS

# Run as a script, this folder comes first on sys.path, and benchmarks/serving.py would hide the serving package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

REPO = Path(__file__).resolve().parent.parent
WILD_DEV = REPO.parent / "shared" / "data" / "wild_dev"
FER_SCRIPT = Path(__file__).resolve().parent / "fer_photos.py"
DEFAULT_MODELS = ("fer2013", "ferplus")
FER_NAME = "fer package"


def emopy_report(model: str, photos: Path, labels_csv: Path, out: Path, detector: str | None) -> dict:
    """`emopy evaluate --photos` of one model, run as a user runs it; its JSON report."""
    output = out / Path(model).name / "evaluation.json"
    command = [sys.executable, "-m", "emopy.pipeline.cli", "evaluate", "--photos", str(photos), "--labels", str(labels_csv),
               "--model", model, "--output", str(output), *(["--detector", detector] if detector else [])]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"wild_photos: `emopy evaluate` of {model} failed:\n{result.stderr.strip()}")
    return json.loads(output.read_text())


def timed_predict(photos: Path, model: str, detector: str, out: Path) -> tuple[float, int, int]:
    """The whole `emopy predict PHOTOS` command under one detector, as a user runs it: its seconds (start-up
    included), the photos it read and those with at least one face."""
    import time

    import pandas as pd

    output = out / f"predict-{detector}.csv"
    command = [sys.executable, "-m", "emopy.pipeline.cli", "predict", str(photos), "--model", model,
               "--detector", detector, "--output", str(output), "--overwrite"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"wild_photos: `emopy predict --detector {detector}` failed:\n{result.stderr.strip()}")
    table = pd.read_csv(output)
    files = len([path for path in photos.iterdir() if path.is_file()])
    return seconds, files, table.loc[table["face_id"].notna(), "file"].nunique()


def print_predict_times(photos: Path, model: str, out: Path) -> None:
    """`emopy predict` under `auto` against `--detector hog` on the same photos, in the same run."""
    timed = {detector: timed_predict(photos, model, detector, out) for detector in ("hog", "auto")}
    print(f"\nthe whole `emopy predict {photos} --model {model}` command, per detector:")
    for detector, (seconds, files, found) in timed.items():
        print(f"  --detector {detector:<5} {seconds:7.1f} s  {1000 * seconds / files:6.1f} ms a photo  "
              f"faces found in {found / files:.1%} of {files} photos")
    ratio = timed["auto"][0] / timed["hog"][0]
    print(f"  auto's time / hog's: {ratio:.2f} (target <= 1.00: {'met' if ratio <= 1 else 'NOT met'}); "
          f"auto finds {timed['auto'][2] / timed['auto'][1]:.1%} (target >= 98 %)")


def fer_report(fer_python: str, photos: Path, labels_csv: Path, out: Path) -> dict:
    """The `fer` package's answers (from FER_SCRIPT in its own interpreter) scored as emopy's photo reports are."""
    from emopy.pipeline.cli import start_tensorflow

    start_tensorflow()  # TensorFlow's start-up lines, which pipeline.evaluate's import would print, stay hidden
    from emopy_tfds import labels
    from emopy.pipeline import evaluate_photos

    labelled = evaluate_photos.read_photo_labels(labels_csv, photos, "fer2013")  # fer answers in fer2013's classes
    files = [photo.file for photo in labelled]
    folder = out / "fer"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "files.json").write_text(json.dumps(files))
    result = subprocess.run([fer_python, str(FER_SCRIPT), str(photos), str(folder / "files.json"),
                             str(folder / "answers.json")], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode != 0:
        raise SystemExit(f"wild_photos: the fer package's pipeline failed under {fer_python}:\n"
                         f"{result.stderr.strip()[-3000:]}")
    ran = json.loads((folder / "answers.json").read_text())
    predicted = [-1 if ran["answers"][name] is None else labels.FER2013.index(ran["answers"][name]) for name in files]
    report = evaluate_photos.photo_report([photo.class_id for photo in labelled], predicted, labels.FER2013, files)
    return {"model": ran["pipeline"], "class_names": list(labels.FER2013), **report}


def rows(reports: dict[str, dict]) -> list[tuple[str, list[float], str]]:
    """The table's rows: (what, one figure per pipeline, how to print it)."""
    first = next(iter(reports.values()))
    table = [
        ("accuracy, all photos", [report["accuracy"] for report in reports.values()], "percent"),
        ("accuracy, faces found", [report["accuracy_on_found_faces"] for report in reports.values()], "percent"),
        (f"faces found (of {first['photos']})",
         [report["faces_found"] / report["photos"] for report in reports.values()], "percent"),
        ("macro F1, all photos", [report["macro_f1"] for report in reports.values()], "fraction"),
    ]
    # The labels' classes, in the first pipeline's order; a class no photo has (contempt) has no recall.
    for name, scores in first["per_class"].items():
        if scores["support"]:
            table.append((f"recall: {name} ({scores['support']})",
                          [report["per_class"][name]["recall"] for report in reports.values()], "fraction"))
    outside = sorted({name for report in reports.values() for name in report.get("answers_outside_label_set", {})})
    for name in outside:
        table.append((f"answers {name} (always wrong)",
                      [report.get("answers_outside_label_set", {}).get(name, 0) for report in reports.values()],
                      "count"))
    return table


def formatted(value: float, how: str) -> str:
    if how == "percent":
        return f"{100 * value:.1f} %"
    return f"{value:.3f}" if how == "fraction" else str(value)


def table_lines(reports: dict[str, dict], markdown: bool = False) -> list[str]:
    """The side-by-side table: a column per pipeline, then each pipeline's figure over the first's."""
    names = list(reports)
    header = ["", *names, *(f"{name} / {names[0]}" for name in names[1:])]
    body = []
    for what, values, how in rows(reports):
        ratios = [f"{value / values[0]:.2f}" if values[0] else "-" for value in values[1:]]
        body.append([what, *(formatted(value, how) for value in values), *ratios])
    if markdown:
        return [f"| {' | '.join(row)} |" for row in (header, ["---"] * len(header), *body)]
    widths = [max(len(row[column]) for row in (header, *body)) for column in range(len(header))]
    return ["  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                      for column, (cell, width) in enumerate(zip(row, widths))) for row in (header, *body)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=WILD_DEV / "photos", help="default: %(default)s")
    parser.add_argument("--labels", type=Path, default=WILD_DEV / "labels.csv", help="default: %(default)s")
    parser.add_argument("--model", action="append", metavar="NAME|DIR",
                        help=f"an emopy model to score (repeat for several; default: {', '.join(DEFAULT_MODELS)})")
    parser.add_argument("--fer-python", metavar="PYTHON", help="an interpreter with the fer package: score its "
                        "pipeline too (see this script's docstring for its venv)")
    parser.add_argument("--detector", choices=DETECTORS, help="emopy's face detector (default: the "
                        "one each model's face spec records)")
    parser.add_argument("--out", type=Path, help="keep each evaluation's report, confusion matrix and predictions "
                        "here (default: a temporary folder)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--time-predict", action="store_true", help="also time the whole `emopy predict` command "
                        "on the photos under `auto` and under `--detector hog` (the first model)")
    args = parser.parse_args()
    if not args.photos.is_dir() or not args.labels.is_file():
        print(f"wild_photos: no labelled photos at {args.photos} and {args.labels}: the real photos are not part of "
              f"the repository (see ../shared/data/README.md); give --photos DIR --labels FILE.csv", file=sys.stderr)
        sys.exit(1)

    with tempfile.TemporaryDirectory(prefix="wild_photos-") as temporary:
        out = args.out or Path(temporary)
        reports = {model: emopy_report(model, args.photos, args.labels, out, args.detector)
                   for model in args.model or DEFAULT_MODELS}
        if args.fer_python:
            reports[FER_NAME] = fer_report(args.fer_python, args.photos, args.labels, out)
        if args.time_predict:
            print_predict_times(args.photos, (args.model or DEFAULT_MODELS)[0], out)
    first = next(iter(reports.values()))
    print(f"{first['photos']} labelled photos: {args.photos} ({args.labels.name}); a photo whose face is not found "
          f"counts as wrong")
    for name, report in reports.items():
        print(f"  {name}: {report.get('export', report['model'])}"
              f"{', detector ' + report['detector'] if 'detector' in report else ''}")
    print("\n".join(table_lines(reports, args.markdown)))


if __name__ == "__main__":
    main()
