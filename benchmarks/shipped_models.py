"""Benchmark of emopy's shipped models on the face crops of real fer2013 and FER+, beside published baselines.

Run: python benchmarks/shipped_models.py [--data-dir DIR] [--model NAME|EXPORT ...]

Reads real fer2013 built from ../shared/data/fer2013 into --data-dir, in both configs (`emopy build fer2013
--manual-dir ../shared/data/fer2013 --config original|ferplus --data-dir DIR`); says so plainly and stops when
either is not there.

Each model (default: every shipped one, `serving.shipped.SHIPPED`) is scored through its export's `pixels`
signature (`emopy evaluate --model M --dataset D --split validation`) on:
- FER+ PublicTest (3,410 faces), majority labels. A 7-class model cannot answer contempt: the 24 contempt faces
  are left out for it. Anchors: Barsoum et al. 2016's VGG13, 83.9 % with majority voting, 85.0 % trained on
  label distributions; the goal for the `ferplus` model is 85 %.
- fer2013 PublicTest (3,435 faces), fer2013's own 7 labels. An 8-class model's contempt answers count as wrong.
  Anchor: the `fer` package's model, 64.6 % on these faces (benchmarks/default_model.py --fer-weights).
The real-photo figures are benchmarks/wild_photos.py's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/serving.py would hide the serving package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

SOURCE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "fer2013"
# (dataset, what its labels are, [(baseline, accuracy)], target for the ferplus model)
DATASETS = (
    ("fer2013/ferplus", "FER+ PublicTest, majority labels",
     [("Barsoum et al. VGG13, majority", 0.839), ("Barsoum et al. VGG13, label distribution", 0.850)]),
    ("fer2013", "fer2013 PublicTest, fer2013's labels", [("the fer package", 0.646)]),
)


def check_built(data_dir: Path) -> None:
    import tensorflow_datasets as tfds

    import emopy_tfds  # noqa: F401  (registers the builders)

    for config in ("original", "ferplus"):
        if not tfds.builder(f"fer2013/{config}", data_dir=str(data_dir)).is_prepared():
            raise SystemExit(f"shipped_models: real fer2013/{config} is not built in {data_dir}; build it with "
                             f"`emopy build fer2013 --manual-dir {SOURCE} --config {config} --data-dir {data_dir}` "
                             f"(the real data is not part of the repository; see ../shared/data/README.md)")


def main() -> None:
    from emopy.serving import shipped

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("~/tensorflow_datasets").expanduser())
    parser.add_argument("--model", action="append", help="a shipped name or an export (repeatable)")
    args = parser.parse_args()
    check_built(args.data_dir)
    from emopy.pipeline import evaluate

    model_names = args.model or [name for name in shipped.SHIPPED if _present(name)]
    with tempfile.TemporaryDirectory() as scratch:
        for dataset, title, baselines in DATASETS:
            print(f"\n{title}")
            print(f"  {'model':<44} {'accuracy':>9} {'macro F1':>9}  recall per class; left out; contempt answers")
            for name in model_names:
                report = evaluate.run_export(name, dataset, "validation", data_dir=str(args.data_dir),
                                             output=Path(scratch) / f"{name}-{dataset.replace('/', '-')}.json")
                recalls = ", ".join(f"{label} {scores['recall']:.2f}" for label, scores in report["per_class"].items()
                                    if scores["support"])
                outside = sum(report.get("answers_outside_label_set", {}).values())
                print(f"  emopy {name:<38} {report['accuracy']:>9.4f} {report['macro_f1']:>9.4f}  {recalls}; "
                      f"{report.get('left_out', 0)}; {outside}")
                for baseline, accuracy in baselines:
                    print(f"    ratio to {baseline} ({accuracy:.3f}): {report['accuracy'] / accuracy:.3f}")
            for baseline, accuracy in baselines:
                print(f"  {baseline:<44} {accuracy:>9.4f}")


def _present(name: str) -> bool:
    from emopy.serving import shipped

    try:
        shipped.base_path(name)
    except FileNotFoundError:
        print(f"shipped_models: emopy's {name!r} model is not in this checkout; left out")
        return False
    return True


if __name__ == "__main__":
    main()
