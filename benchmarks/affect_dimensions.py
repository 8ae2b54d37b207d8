"""Benchmark of the rows' affect columns against FER+'s crowd: a model's valence, arousal and positive and negative
valence beside the same quantities from each face's vote shares, and against a split of the mean valence.

Run: python benchmarks/affect_dimensions.py [--data-dir DATA] [--model ferplus]

Reads real FER+ (`emopy build fer2013 --config ferplus --manual-dir DIR --data-dir DATA`) from --data-dir; says
so in one line and exits 1 when it is not built there.

The model (default: the shipped `ferplus`) classifies FER+ PublicTest (the `validation` split, 3,410 faces) through
its export's `pixels` signature, as `emopy evaluate --model M --dataset fer2013/ferplus --split validation` runs it
(pipeline.evaluate.run_export). Each face's probabilities give its row's four affect values
(labels.expected_affect, as serving/tables.py computes every prediction row). The ground truth is the same four
from the face's FER+ vote shares over its 8 emotions (unknown and not-a-face left out): the crowd's distribution,
which the shipped model was trained on and a regression head for these dimensions would target.

Printed, for each of valence, arousal, positive and negative valence: mean absolute error and Pearson r of the
model's against the crowd's. Then the baseline: positive and negative valence as a split of the model's mean
valence (positive = max(valence, 0), negative = max(-valence, 0)) against the crowd's unipolar values, side by
side with the derived ones, with the ratio of the two (split / derived for the error, derived / split for r).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import sys
import tempfile
from pathlib import Path

import numpy as np

# Run as a script, this folder comes first on sys.path, and benchmarks/serving.py would hide the serving package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

DATASET, SPLIT = "fer2013/ferplus", "validation"
# A crowd that puts at least this much on each side counts as ambivalent in the summary line.
AMBIVALENT = 0.1


def check_built(data_dir: Path) -> None:
    import tensorflow_datasets as tfds

    importlib.import_module("emopy_tfds")  # registers the builders
    if not tfds.builder(DATASET, data_dir=str(data_dir)).is_prepared():
        raise SystemExit(f"affect_dimensions: real {DATASET} is not built in {data_dir}; build it with `emopy build "
                         f"fer2013 --config ferplus --manual-dir DIR --data-dir {data_dir}` (DIR holding fer2013's "
                         f"CSV and Microsoft's fer2013new.csv)")


def crowd_shares(data_dir: Path) -> dict[int, np.ndarray]:
    """Each PublicTest face's share of the crowd's votes over FER+'s 8 emotions, by its fer2013 row (`index`)."""
    import tensorflow_datasets as tfds

    from emopy_tfds import labels

    emotions = len(labels.FERPLUS)
    ds = tfds.builder(DATASET, data_dir=str(data_dir)).as_dataset(
        split=SPLIT, decoders={"image": tfds.decode.SkipDecoding()})
    shares = {}
    for example in ds.as_numpy_iterator():
        votes = example["ferplus_votes"][:emotions].astype(np.float64)
        if votes.sum() > 0:
            shares[int(example["index"])] = votes / votes.sum()
    return shares


def model_probabilities(model: str, data_dir: Path, scratch: Path) -> tuple[list[str], dict[int, np.ndarray]]:
    """The model's class names and its probabilities for each PublicTest face, by fer2013 row, from the
    predictions CSV `emopy evaluate` writes."""
    from emopy.pipeline import evaluate

    report = evaluate.run_export(model, DATASET, SPLIT, data_dir=str(data_dir), output=scratch / "evaluation.json")
    with open(report["predictions_csv"], newline="") as file:
        rows = list(csv.reader(file))
    classes = rows[0][3:]
    return classes, {int(row[0]): np.array(row[3:], dtype=np.float64) for row in rows[1:]}


def mae_and_r(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    return float(np.mean(np.abs(predicted - truth))), float(np.corrcoef(predicted, truth)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("~/tensorflow_datasets").expanduser(),
                        help="where fer2013/ferplus is built (default: ~/tensorflow_datasets)")
    parser.add_argument("--model", default="ferplus", help="a shipped model's name or an export (default: ferplus)")
    args = parser.parse_args()
    check_built(args.data_dir)
    from emopy_tfds import labels

    shares = crowd_shares(args.data_dir)
    with tempfile.TemporaryDirectory() as scratch:
        classes, probabilities = model_probabilities(args.model, args.data_dir, Path(scratch))
    label_set = labels.label_set_of(classes)
    if label_set is None or labels.SCHEMES[label_set].coarse:
        raise SystemExit(f"affect_dimensions: {args.model}'s classes ({', '.join(classes)}) are no emotion label "
                         f"set, so its rows have no valence")
    rows = sorted(set(shares) & set(probabilities))
    predicted = labels.expected_affect(np.stack([probabilities[row] for row in rows]), label_set)
    truth = labels.expected_affect(np.stack([shares[row] for row in rows]), "ferplus")
    ambivalent = np.mean((truth[:, 2] >= AMBIVALENT) & (truth[:, 3] >= AMBIVALENT))
    print(f"{args.model} on FER+ PublicTest: {len(rows)} faces ({len(shares)} with crowd votes, "
          f"{len(probabilities)} classified); the crowd puts >= {AMBIVALENT} on both positive and negative valence "
          f"for {ambivalent:.1%} of them")
    print(f"\nmodel's probabilities vs the crowd's vote shares, through labels.expected_affect ({label_set} / ferplus)")
    print(f"  {'dimension':<18} {'MAE':>8} {'Pearson r':>10}")
    derived = {}
    for k, name in enumerate(labels.AFFECT_DIMENSIONS):
        derived[name] = mae_and_r(predicted[:, k], truth[:, k])
        print(f"  {name:<18} {derived[name][0]:>8.4f} {derived[name][1]:>10.4f}")
    valence = predicted[:, 0]
    split = {"positive_valence": np.maximum(valence, 0.0), "negative_valence": np.maximum(-valence, 0.0)}
    print("\nunipolar valence against the crowd's: derived per class (shipped) vs a split of the mean valence "
          "(baseline)")
    print(f"  {'dimension':<18} {'derived MAE':>12} {'split MAE':>10} {'split/derived':>14} "
          f"{'derived r':>10} {'split r':>8} {'derived/split':>14}")
    for name, values in split.items():
        k = labels.AFFECT_DIMENSIONS.index(name)
        split_mae, split_r = mae_and_r(values, truth[:, k])
        derived_mae, derived_r = derived[name]
        print(f"  {name:<18} {derived_mae:>12.4f} {split_mae:>10.4f} {split_mae / derived_mae:>14.2f} "
              f"{derived_r:>10.4f} {split_r:>8.4f} {derived_r / split_r:>14.2f}")


if __name__ == "__main__":
    main()
