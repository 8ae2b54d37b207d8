"""`emopy evaluate --photos DIR --labels FILE.csv`: the whole photo pipeline scored on labelled photos.

It runs as `emopy predict` does (serving.recognizer.Recognizer: detection, the model's own crop, the model): each
photo's largest face is classified, and a photo where no face is found counts as wrong. Its report, confusion
matrix and predictions go to evaluation-, confusion- and predictions-photos-LABELS (the CSV's name).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm import tqdm

from emopy_tfds import faces, labels
from emopy.pipeline.evaluate import _ratio, answer_counts, classes_unnamed, classification_report, model_scheme, plot_confusion
from emopy.serving import layout, shipped
from emopy.serving.recognizer import Recognizer

NOT_FOUND = "not_found"
PHOTO_LABELS_HEADER = ("file", "emotion")


@dataclasses.dataclass(frozen=True)
class LabelledPhoto:
    """One line of a photo labels CSV, checked: the photo exists and its emotion has a class in the model."""

    file: str  # as the CSV names it, relative to the photos folder
    emotion: str  # as the CSV spells it
    class_id: int  # the model's class for it


def _labelled_photo(row: Sequence[str], where: str, photos_dir: Path, scheme: labels.LabelScheme) -> LabelledPhoto:
    if len(row) != len(PHOTO_LABELS_HEADER) or not all(cell.strip() for cell in row):
        raise ValueError(f"{where}: expected {','.join(PHOTO_LABELS_HEADER)}, two non-empty fields, not {row}")
    file, emotion = (cell.strip() for cell in row)
    if not (photos_dir / file).is_file():
        raise FileNotFoundError(f"{where}: no photo {file!r} in {photos_dir}")
    try:
        target = scheme.class_of(emotion)
    except ValueError as error:  # labels.canonical: an emotion no label set names
        raise ValueError(f"{where}: {error}") from None
    if target is None:
        raise ValueError(f"{where}: the model has no class for {emotion!r} (its classes: {', '.join(scheme.classes)})")
    return LabelledPhoto(file, emotion, scheme.classes.index(target))


def read_photo_labels(labels_csv: str | os.PathLike, photos_dir: str | os.PathLike, scheme: str
                      ) -> list[LabelledPhoto]:
    """The photos a `file,emotion` CSV lists, each emotion mapped into `scheme`'s classes (the model's).

    Every line is checked before any photo is classified: a wrong header, a photo missing from `photos_dir`, or an
    emotion the model has no class for is an error naming the CSV and the line. Blank lines are skipped.
    """
    labels_csv, photos_dir = Path(labels_csv), Path(photos_dir)
    if not photos_dir.is_dir():
        raise FileNotFoundError(f"{photos_dir}: no such folder of photos")
    model = labels.scheme(scheme)
    photos = []
    with labels_csv.open(newline="", encoding="utf-8-sig") as file:  # utf-8-sig: a spreadsheet's BOM is no header
        reader = csv.reader(file)
        header = next(reader, [])
        if [cell.strip().lower() for cell in header] != list(PHOTO_LABELS_HEADER):
            raise ValueError(f"{labels_csv}, line 1: the header must be {','.join(PHOTO_LABELS_HEADER)!r}, "
                             f"not {','.join(header)!r}")
        for row in reader:
            if any(cell.strip() for cell in row):
                photos.append(_labelled_photo(row, f"{labels_csv}, line {reader.line_num}", photos_dir, model))
    if not photos:
        raise ValueError(f"{labels_csv}: no photos listed")
    return photos


def labels_scheme(emotions: Iterable[str]) -> str:
    """The label set that names these emotions: the smallest emopy scheme that spells them all as given (fer2013's
    seven names: fer2013, not fer2013_contempt), else the smallest whose emotions cover them.

    It says which of a model's answers the labels could never give (`classes_unnamed`).
    """
    spelled = {emotion.strip().lower() for emotion in emotions}
    wanted = {labels.canonical(emotion) for emotion in spelled}
    covering = [scheme for scheme in labels.SCHEMES.values()
                if not scheme.coarse and scheme.states is None and wanted <= {labels.canonical(name) for name in scheme.classes}]
    return min(covering, key=lambda scheme: (not spelled <= set(scheme.classes), scheme.num_classes)).name


def classify_photos(recognizer: Recognizer, paths: Sequence[str | os.PathLike], progress: bool = False) -> np.ndarray:
    """Probabilities [N, K] of each photo's largest face, as `emopy predict` finds and classifies it; a row of NaN
    where no face is found. Raises faces.ImageError naming a photo that cannot be read."""
    rows = []
    for path in tqdm(paths, unit="photo", file=sys.stderr, disable=not progress):
        found, probabilities = recognizer.classify_faces(faces.load_image(path))  # largest face first
        rows.append(probabilities[0] if found else np.full(len(recognizer.classes), np.nan))
    return np.stack(rows) if rows else np.zeros((0, len(recognizer.classes)))


def answers(probabilities: np.ndarray) -> np.ndarray:
    """Each photo's class id: the most probable class, or -1 where no face was found (a row of NaN)."""
    probabilities = np.asarray(probabilities, np.float64)
    found = ~np.isnan(probabilities).any(axis=1)
    return np.where(found, np.nan_to_num(probabilities, nan=-1.0).argmax(axis=1), -1)


def photo_report(true_ids: Sequence[int], predicted_ids: Sequence[int], class_names: Sequence[str],
                 files: Sequence[str]) -> dict:
    """classification_report over all photos, where a photo with no face found (predicted -1) counts as wrong,
    with `photos`, `faces_found`, `not_found` ({count, files}) and `accuracy_on_found_faces`.

    The confusion matrix has one more column than rows, `not_found` (the report's `confusion_columns`), so each
    row still adds up to the class's photos and per-class recall is over all of them; precision is over the
    answers given, to which a photo without a face adds nothing.
    """
    true, predicted = np.asarray(true_ids, np.int64), np.asarray(predicted_ids, np.int64)
    found = predicted >= 0
    columns = (*class_names, NOT_FOUND)
    # NOT_FOUND as one more class nobody has: its row stays empty, its column holds each class's lost photos.
    report = classification_report(true, np.where(found, predicted, len(class_names)), columns)
    del report["per_class"][NOT_FOUND]
    return {
        "photos": int(len(true)),
        "faces_found": int(found.sum()),
        "not_found": {"count": int((~found).sum()), "files": [file for file, ok in zip(files, found) if not ok]},
        "accuracy": report.pop("accuracy"),
        "accuracy_on_found_faces": _ratio(np.sum(true[found] == predicted[found]), found.sum()),
        **report,
        "confusion_matrix": report["confusion_matrix"][:-1],
        "confusion_columns": list(columns),
    }


def write_photo_predictions(path: str | os.PathLike, files: Sequence[str], true_ids: Sequence[int],
                            probabilities: np.ndarray, class_names: Sequence[str]) -> None:
    """One CSV row per photo, in the labels' order: file, true and predicted class (not_found where no face was
    found), found (1 or 0), then each class's probability (empty where no face was found)."""
    predicted = answers(probabilities)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "true", "predicted", "found", *class_names])
        for name, true_id, answer, row in zip(files, true_ids, predicted.tolist(), np.asarray(probabilities)):
            found = answer >= 0
            writer.writerow([name, class_names[true_id], class_names[answer] if found else NOT_FOUND, int(found),
                             *(map(str, row.astype(np.float32)) if found else [""] * len(class_names))])


def evaluate_photos(recognizer: Recognizer, photos_dir: str | os.PathLike, labels_csv: str | os.PathLike,
                    header: dict, output: str | os.PathLike | None = None, *, name: str = "model",
                    progress: bool = False) -> dict:
    """Scores a Recognizer on the photos a `file,emotion` CSV labels (read_photo_labels: all checked first);
    writes the report to `output` (default ./evaluation-photos-LABELS.json), the confusion matrix and the
    predictions beside it, and returns the report.

    header: what was evaluated (model, export), the report's first keys after the photos and labels; name: the
    model in the picture's title.
    """
    photos_dir, labels_csv = Path(photos_dir), Path(labels_csv)
    scheme = model_scheme(recognizer.classes, header.get("export", name), labels_csv)
    photos = read_photo_labels(labels_csv, photos_dir, scheme)
    label_set = labels_scheme(photo.emotion for photo in photos)
    tag = f"photos-{labels_csv.stem}"
    output = Path(output) if output else Path(f"evaluation-{tag}.json")
    picture, predictions = output.parent / f"confusion-{tag}.png", output.parent / f"predictions-{tag}.csv"
    output.parent.mkdir(parents=True, exist_ok=True)

    class_names = list(recognizer.classes)
    files, true = [photo.file for photo in photos], [photo.class_id for photo in photos]
    probabilities = classify_photos(recognizer, [photos_dir / file for file in files], progress=progress)
    predicted = answers(probabilities)
    report = {"photos_dir": str(photos_dir), "labels_csv": str(labels_csv), **header, "detector": recognizer.detector,
              "label_set": label_set, "class_names": class_names, **photo_report(true, predicted, class_names, files)}
    report["answers_outside_label_set"] = answer_counts(predicted, class_names, classes_unnamed([label_set], scheme))
    plot_confusion(report["confusion_matrix"], class_names, picture, f"{name} on {labels_csv.name}: accuracy "
                   f"{report['accuracy']:.3f}", columns=report["confusion_columns"])
    report["confusion_matrix_png"] = str(picture)
    write_photo_predictions(predictions, files, true, probabilities, class_names)
    report["predictions_csv"] = str(predictions)
    output.write_text(json.dumps(report, indent=2) + "\n")
    return report


def run_photos(photos_dir: str | os.PathLike, labels_csv: str | os.PathLike, model: str | os.PathLike | None = None,
               *, detector: str | None = None, output: str | os.PathLike | None = None,
               progress: bool = False) -> dict:
    """Evaluates the whole photo pipeline of an export (BASE or BASE/N, or a shipped model's name; None: the
    default one) on labelled photos (evaluate_photos); writes and returns the report.

    detector: faces.DETECTORS; None: the one the export's face spec records.
    """
    base = shipped.resolve_model(model)
    version_dir = layout.resolve_export(base)
    with Recognizer.from_export(version_dir, detector=detector) as recognizer:
        return evaluate_photos(recognizer, photos_dir, labels_csv, {"model": str(base), "export": str(version_dir)},
                               output, name=f"{version_dir.parent.name}/{version_dir.name}", progress=progress)
