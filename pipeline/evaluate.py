"""`emopy evaluate`: accuracy, per-class precision/recall/F1 and confusion matrix of a trained run or an export.

A run (`run`) is evaluated on its own dataset and labels. For the facs task (multi-label action units) it
reports per-AU precision, recall and F1 at a 0.5 threshold. The report goes to FILE.json (default
RUN_DIR/evaluation-SPLIT.json), the confusion matrix also to RUN_DIR/confusion-SPLIT.png. For the emotion task
each example's prediction goes to predictions-SPLIT.csv beside the report: its index, true and predicted class,
and the probability of every class.

An export (`run_export`: `emopy export`'s BASE or BASE/N, or emopy's default model) is evaluated through its
`pixels` signature, as served, on any dataset whose labels map to its classes. Its report, confusion matrix and
predictions go to evaluation-, confusion- and predictions-DATASET-SPLIT (`/` in DATASET as `-`), by default in
the current directory.

Labels and a model's classes need not be the same label set: labels are mapped into the model's classes through
emopy_tfds/labels.py. An example whose label has no class in the model (FER+ contempt under a 7-class model) is
left out, and the report's `left_out` counts them; an answer that is a class no label can name (contempt from an
8-class model on fer2013's labels) is simply wrong, and `answers_outside_label_set` counts them by class.

Photos (`emopy evaluate --photos DIR --labels FILE.csv`) are scored by pipeline/evaluate_photos.py; `summary`
prints either report.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import matplotlib
import numpy as np
import tensorflow as tf

from emopy import models
from emopy_tfds import labels
from emopy.pipeline import data
from emopy.pipeline.run_dir import RunDir
from emopy.serving import layout, shipped

matplotlib.use("Agg")  # files only, never a window: before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

# Sigmoid outputs above this count as "AU present".
AU_THRESHOLD = 0.5
# A photo where no face was found: its answer in the predictions CSV, and the confusion matrix's last column.


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def _prf(true_positives: float, false_positives: float, false_negatives: float) -> dict[str, float]:
    precision = _ratio(true_positives, true_positives + false_positives)
    recall = _ratio(true_positives, true_positives + false_negatives)
    return {"precision": precision, "recall": recall, "f1": _ratio(2 * precision * recall, precision + recall)}


def classification_report(true_ids: Sequence[int], predicted_ids: Sequence[int], class_names: Sequence[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support, their macro means, and the confusion matrix
    (rows: true class, columns: predicted class)."""
    true_ids, predicted_ids = np.asarray(true_ids, np.int64), np.asarray(predicted_ids, np.int64)
    count = len(class_names)
    confusion = np.zeros((count, count), np.int64)
    np.add.at(confusion, (true_ids, predicted_ids), 1)
    per_class = {}
    for index, name in enumerate(class_names):
        tp = confusion[index, index]
        scores = _prf(tp, confusion[:, index].sum() - tp, confusion[index, :].sum() - tp)
        per_class[name] = {**scores, "support": int(confusion[index, :].sum())}
    present = [scores for scores in per_class.values() if scores["support"]]
    return {
        "examples": int(len(true_ids)),
        "accuracy": _ratio(np.trace(confusion), confusion.sum()),
        "macro_f1": float(np.mean([scores["f1"] for scores in present])) if present else 0.0,
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
    }


def multilabel_report(true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
                      threshold: float = AU_THRESHOLD) -> dict:
    """Per-label precision/recall/F1/support of thresholded probabilities, and their mean F1."""
    true = np.asarray(true) > 0.5
    predicted = np.asarray(probabilities) > threshold
    per_label = {}
    for index, name in enumerate(class_names):
        tp = np.sum(true[:, index] & predicted[:, index])
        fp = np.sum(~true[:, index] & predicted[:, index])
        fn = np.sum(true[:, index] & ~predicted[:, index])
        per_label[name] = {**_prf(tp, fp, fn), "support": int(true[:, index].sum())}
    present = [scores for scores in per_label.values() if scores["support"]]
    return {
        "examples": int(len(true)),
        "threshold": threshold,
        "accuracy": float(np.mean(true == predicted)) if true.size else 0.0,  # over every (example, AU) pair
        "mean_f1": float(np.mean([scores["f1"] for scores in present])) if present else 0.0,
        "per_au": per_label,
    }


def write_predictions(path: str | os.PathLike, indices: Sequence[int], true_ids: Sequence[int],
                      probabilities: np.ndarray, class_names: Sequence[str]) -> None:
    """Writes one CSV row per example, in order: index, true and predicted (argmax) class names, then one
    probability column per class.

    indices: each example's `index` feature (fer2013's CSV row), -1 where the dataset has none; the example's
    position is written instead.
    """
    indices, true_ids = np.asarray(indices, np.int64), np.asarray(true_ids, np.int64)
    probabilities = np.asarray(probabilities, np.float32)
    if not len(indices) == len(true_ids) == len(probabilities):
        raise ValueError(f"{len(indices)} indices, {len(true_ids)} true classes and {len(probabilities)} "
                         f"predictions: one of each per example")
    indices = np.where(indices >= 0, indices, np.arange(len(indices)))
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["index", "true", "predicted", *class_names])
        for index, true_id, row in zip(indices.tolist(), true_ids.tolist(), probabilities):
            # str() of a float32 is its shortest decimal that reads back as the same float32.
            writer.writerow([index, class_names[true_id], class_names[int(row.argmax())], *map(str, row)])


def plot_confusion(confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | os.PathLike,
                   title: str, columns: Sequence[str] | None = None) -> None:
    """The confusion matrix as a picture, each cell shaded by its share of its row (the true class).

    columns: the predicted side's names where they are not the classes (photos: the classes, then not_found).
    """
    confusion = np.asarray(confusion)
    columns = class_names if columns is None else columns
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape, float), where=rows > 0)
    figure, axes = plt.subplots(figsize=(1.0 + 0.8 * len(columns), 0.8 + 0.7 * len(class_names)))
    axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (row, column), value in np.ndenumerate(confusion):
        axes.text(column, row, str(value), ha="center", va="center",
                  color="white" if share[row, column] > 0.5 else "black", fontsize=8)
    if len(columns) > len(class_names):  # the extra columns are no class: set them apart
        axes.axvline(len(class_names) - 0.5, color="gray", linewidth=1)
    axes.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _evaluate(classify: Callable[[dict], Any], config: data.DataConfig, split: str, spec: models.InputSpec,
              header: dict, *, name: str, output: Path, picture: Path, predictions: Path, batch_size: int) -> dict:
    """Classifies a split's batches (`classify`: model inputs -> probabilities), then writes the report to
    `output` and, for the emotion task, the confusion matrix to `picture` and every prediction to `predictions`.

    header: what was evaluated, the report's first keys (with its `class_names`); name: the model in the title.
    """
    class_names = header["class_names"]
    true, probabilities = [], []
    for inputs, targets in data.batches(config, split, spec, batch_size=batch_size):
        probabilities.append(np.asarray(classify(inputs), np.float32))
        true.append(targets.numpy())
    if not true:
        raise ValueError(f"the {split!r} split of {config.dataset} has no examples")
    true, probabilities = np.concatenate(true), np.concatenate(probabilities)
    output.parent.mkdir(parents=True, exist_ok=True)
    if config.task == "facs":
        report = multilabel_report(true, probabilities, class_names)
    else:
        predicted = probabilities.argmax(axis=1)
        report = classification_report(true, predicted, class_names)
        report["left_out"] = data.label_counts(config, split)["left_out"]
        unnamed = classes_unnamed([source.label_set for source in config.sources], config.scheme_name)
        report["answers_outside_label_set"] = answer_counts(predicted, class_names, unnamed)
        plot_confusion(report["confusion_matrix"], class_names, picture,
                       f"{name} on {config.dataset} {split}: accuracy {report['accuracy']:.3f}")
        report["confusion_matrix_png"] = str(picture)
        write_predictions(predictions, data.example_indices(config, split), true, probabilities, class_names)
        report["predictions_csv"] = str(predictions)
    report = {**header, **report}
    output.write_text(json.dumps(report, indent=2) + "\n")
    return report


def run(run_dir: str | os.PathLike, split: str = "test", output: str | os.PathLike | None = None,
        batch_size: int = 256) -> dict:
    """Evaluates a finished run on a split, on majority labels; writes and returns the report."""
    run = RunDir.open(run_dir)
    output = Path(output) if output else run.path / f"evaluation-{split}.json"
    # Scored on majority labels whatever the run learnt from (a `votes` run: crowd vote shares), as FER+ papers do.
    settings, config = run.settings, dataclasses.replace(run.train_config.data_config, targets="majority")
    model = run.load_model()
    header = {"run": str(run.path), "split": split, "dataset": settings["dataset"], "model": settings["model"],
              "class_names": run.class_names}
    return _evaluate(lambda inputs: model(inputs, training=False), config, split, run.input_spec, header,
                     name=settings["model"], output=output, picture=run.path / f"confusion-{split}.png",
                     predictions=output.parent / f"predictions-{split}.csv", batch_size=batch_size)


def model_scheme(class_names: Sequence[str], model: str | os.PathLike, labelled: str | os.PathLike) -> str:
    """The label scheme a model's classes are, for mapping `labelled`'s labels into them; a clear error if they
    are none (FACS action units)."""
    scheme = labels.label_set_of(class_names)
    if scheme is None:
        raise ValueError(f"{model}: its classes ({', '.join(class_names)}) are no emopy label scheme "
                         f"({', '.join(labels.SCHEMES)}), so {labelled}'s labels cannot be mapped to them")
    return scheme


def classes_unnamed(label_sets: Iterable[str], scheme: str) -> tuple[str, ...]:
    """The classes of `scheme` (a model's) that no label of `label_sets` maps to: contempt for an 8-class model
    scored on fer2013's labels. An answer of one of them is always wrong."""
    reached = {target for label_set in label_sets for target in labels.mapping(label_set, scheme)}
    return tuple(name for index, name in enumerate(labels.scheme(scheme).classes) if index not in reached)


def answer_counts(predicted_ids: Sequence[int], class_names: Sequence[str], counted: Sequence[str]) -> dict[str, int]:
    """How many answers were each of the `counted` classes (answers of -1, no face found, are none of them)."""
    predicted_ids = np.asarray(predicted_ids, np.int64)
    return {name: int(np.sum(predicted_ids == class_names.index(name))) for name in counted}


def _pixels_inputs(inputs: dict, spec: models.InputSpec) -> dict:
    """A batch of model inputs (`pipeline.data.batches`) as an export's `pixels` signature takes them: the crops
    are `image` for sequence models too, whose model input is `frames`; landmark-only models ignore the crops,
    but the signature takes them (their size says what the landmarks' pixels are), so they get zeros."""
    landmarks = inputs.get("landmarks")
    image = inputs.get("frames" if spec.is_sequence else "image")
    if image is None:
        time = [spec.sequence_length] if spec.is_sequence else []
        image = tf.zeros([tf.shape(landmarks)[0], *time, spec.image_size, spec.image_size, spec.channels], tf.uint8)
    return {"image": image, **({"landmarks": landmarks} if spec.uses_landmarks else {})}


def run_export(model: str | os.PathLike | None, dataset: str, split: str = "test",
               data_dir: str = "~/tensorflow_datasets", output: str | os.PathLike | None = None,
               batch_size: int = 256) -> dict:
    """Evaluates an export (BASE or BASE/N, or a shipped model's name; None: the default one) on a split of
    `dataset`, relabelled in the export's classes; writes and returns the report."""
    base = shipped.resolve_model(model)
    version_dir = layout.resolve_export(base)
    class_names, _, spec = layout.read_assets(version_dir)
    scheme = model_scheme(class_names, version_dir, dataset)
    config = data.DataConfig(dataset, data_dir=data_dir, labels=scheme, targets="majority")
    tag = f"{dataset.replace('/', '-')}-{split}"
    output = Path(output) if output else Path(f"evaluation-{tag}.json")
    loaded = tf.saved_model.load(str(version_dir))
    if layout.PIXELS_SIGNATURE not in loaded.signatures:
        raise ValueError(f"{version_dir}: the SavedModel has no {layout.PIXELS_SIGNATURE!r} signature")

    def classify(inputs: dict) -> tf.Tensor:
        # `loaded` owns the variables the signature reads: the closure keeps it alive.
        return loaded.signatures[layout.PIXELS_SIGNATURE](**_pixels_inputs(inputs, spec))["probabilities"]

    header = {"model": str(base), "export": str(version_dir), "split": split, "dataset": dataset,
              "class_names": class_names}
    return _evaluate(classify, config, split, spec, header, name=f"{version_dir.parent.name}/{version_dir.name}",
                     output=output, picture=output.parent / f"confusion-{tag}.png",
                     predictions=output.parent / f"predictions-{tag}.csv", batch_size=batch_size)


def _photo_summary(report: dict) -> list[str]:
    return [f"{report.get('export', report.get('model'))} on {report['photos']} photos of {report['labels_csv']}: "
            f"accuracy {report['accuracy']:.4f}; faces found {report['faces_found']}, not found "
            f"{report['not_found']['count']}; accuracy on found faces {report['accuracy_on_found_faces']:.4f}"]


def summary(report: dict) -> str:
    """A few lines for the terminal."""
    lines = _photo_summary(report) if "photos" in report else [
        f"{report.get('export', report['model'])} on {report['dataset']} {report['split']}: "
        f"{report['examples']} examples, accuracy {report['accuracy']:.4f}"]
    if report.get("left_out"):
        lines.append(f"  left out: {report['left_out']} examples whose label has no class in the model")
    scores = report.get("per_class") or report.get("per_au")
    for name, values in scores.items():
        lines.append(f"  {name:>10}  precision {values['precision']:.3f}  recall {values['recall']:.3f}  "
                     f"F1 {values['f1']:.3f}  support {values['support']}")
    if "macro_f1" in report:
        lines.append(f"  macro F1 {report['macro_f1']:.4f}; confusion matrix: {report['confusion_matrix_png']}")
        for name, count in report.get("answers_outside_label_set", {}).items():
            lines.append(f"  answers {name} (a class the labels do not have, so wrong): {count}")
    else:
        lines.append(f"  mean F1 over AUs {report['mean_f1']:.4f}")
    return "\n".join(lines)
