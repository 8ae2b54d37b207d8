"""Evaluation numbers against a hand computation on a tiny case, the predictions CSV, and `emopy evaluate` on
exports (`--model`, or the default model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from emopy_tfds import faces, labels
from emopy.pipeline import cli, evaluate, evaluate_photos

NAMES = ("a", "b", "c")


def test_classification_report_matches_hand_computation(tmp_path):
    true = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
    predicted = [0, 0, 1, 1, 2, 2, 2, 2, 0, 2]
    report = evaluate.classification_report(true, predicted, NAMES)
    # By hand: confusion rows are true classes.
    #   a: 2 right, 1 called b          -> precision 2/3 (a predicted 3 times: 2 right, 1 from c)
    #   b: 1 right, 1 called c          -> precision 1/2 (b predicted twice, once from a)
    #   c: 4 right, 1 called a          -> precision 4/5 (c predicted 5 times, once from b)
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 4]]
    assert report["accuracy"] == pytest.approx(7 / 10)
    assert report["examples"] == 10
    expected = {"a": (2 / 3, 2 / 3, 3), "b": (1 / 2, 1 / 2, 2), "c": (4 / 5, 4 / 5, 5)}
    for name, (precision, recall, support) in expected.items():
        scores = report["per_class"][name]
        assert scores["precision"] == pytest.approx(precision)
        assert scores["recall"] == pytest.approx(recall)
        assert scores["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
        assert scores["support"] == support
    assert report["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 4 / 5) / 3)

    picture = tmp_path / "confusion.png"
    evaluate.plot_confusion(report["confusion_matrix"], NAMES, picture, "tiny")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_class_never_predicted_or_absent_scores_zero_not_nan():
    report = evaluate.classification_report([0, 0, 1], [0, 0, 0], NAMES)
    assert report["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["per_class"]["c"]["support"] == 0
    # Macro F1 averages over the classes present in the split: a (0.8) and b (0).
    assert report["macro_f1"] == pytest.approx((0.8 + 0.0) / 2)


def test_multilabel_report_per_action_unit():
    true = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], np.float32)
    probabilities = np.array([[0.9, 0.2], [0.4, 0.7], [0.6, 0.8], [0.1, 0.6]], np.float32)
    report = evaluate.multilabel_report(true, probabilities, ("AU1", "AU2"))
    # AU1: predicted for rows 0 and 2; true in rows 0 and 1 -> tp 1, fp 1, fn 1.
    assert report["per_au"]["AU1"]["precision"] == pytest.approx(0.5)
    assert report["per_au"]["AU1"]["recall"] == pytest.approx(0.5)
    # AU2: predicted for rows 1, 2, 3; true in rows 1 and 2 -> tp 2, fp 1, fn 0.
    assert report["per_au"]["AU2"]["precision"] == pytest.approx(2 / 3)
    assert report["per_au"]["AU2"]["recall"] == pytest.approx(1.0)
    assert report["per_au"]["AU2"]["f1"] == pytest.approx(0.8)
    assert report["mean_f1"] == pytest.approx((0.5 + 0.8) / 2)
    assert report["accuracy"] == pytest.approx(5 / 8)


def test_predictions_csv_has_a_row_per_example_in_order(tmp_path):
    indices = [17, 3, -1]  # the last example's dataset has no index feature: its position stands in
    true = [0, 2, 1]
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [1 / 3, 0.6, 1e-30]], np.float32)
    path = tmp_path / "predictions-test.csv"
    evaluate.write_predictions(path, indices, true, probabilities, NAMES)

    with path.open(newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["index", "true", "predicted", *NAMES]
    assert len(rows) == 1 + len(true)
    assert [int(row[0]) for row in rows[1:]] == [17, 3, 2]
    assert [row[1] for row in rows[1:]] == ["a", "c", "b"]
    read_back = np.array([[float(value) for value in row[3:]] for row in rows[1:]], np.float32)
    np.testing.assert_array_equal(read_back, probabilities)
    assert [row[2] for row in rows[1:]] == [NAMES[i] for i in read_back.argmax(axis=1)] == ["a", "c", "b"]


def test_predictions_csv_refuses_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match="one of each per example"):
        evaluate.write_predictions(tmp_path / "p.csv", [0, 1], [0], np.ones((2, 3), np.float32), NAMES)


# --- Exports: `emopy evaluate --model` ------------------------------------------------------------------------


def _export(folder: Path, model: str, spec, classes: Sequence[str]) -> Path:
    """BASE/1 exported from a hand-made run directory holding an untrained `model` (as tests/serving_fixtures.py
    makes one): the real export and signatures, without training."""
    from emopy import models
    from emopy.pipeline import run_dir
    from emopy.serving import export

    run = folder / "run"
    run.mkdir()
    models.build(model, spec, len(classes)).save(str(run / run_dir.MODEL_FILE))
    (run / run_dir.CONFIG_FILE).write_text(json.dumps({"input_spec": spec.__dict__, "class_names": list(classes),
                                                     "train": {"model": model}}))
    (run / run_dir.LABELS_FILE).write_text("".join(f"{name}\n" for name in classes))
    (run / run_dir.FACE_SPEC_FILE).write_text(faces.FaceSpec(crop_size=spec.image_size).to_json() + "\n")
    base = folder / "export"
    export.export(run, base)
    return base


@pytest.fixture(scope="module")
def export_base(tmp_path_factory) -> Path:
    """An untrained multi_input (image + landmarks) export for fer2013's classes (the session's, shared with the
    serving tests)."""
    from serving_fixtures import write_test_model

    base = tmp_path_factory.mktemp("multi_input") / "export"
    write_test_model(base, 1, landmarks=True)
    return base


def _rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_an_export_is_evaluated_through_its_pixels_signature(export_base, training_data, tmp_path, monkeypatch,
                                                             capsys):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    monkeypatch.chdir(tmp_path)  # the default output goes to the current directory
    assert cli.main(["evaluate", "--model", str(export_base), "--dataset", "fer2013", "--split", "validation",
                     "--data-dir", str(training_data)]) == 0
    report = json.loads((tmp_path / "evaluation-fer2013-validation.json").read_text())
    assert f"accuracy {report['accuracy']:.4f}" in capsys.readouterr().out
    assert report["model"] == str(export_base) and report["export"] == str(export_base / "1") and "run" not in report
    assert (report["dataset"], report["split"], report["class_names"]) == ("fer2013", "validation",
                                                                          list(labels.FER2013))
    assert report["examples"] == 56 and np.array(report["confusion_matrix"]).sum() == 56
    assert set(report["per_class"]) == set(labels.FER2013) and 0.0 <= report["macro_f1"] <= 1.0
    assert report["confusion_matrix_png"] == "confusion-fer2013-validation.png"
    assert (tmp_path / report["confusion_matrix_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["predictions_csv"] == "predictions-fer2013-validation.csv"

    rows = _rows(tmp_path / report["predictions_csv"])
    probabilities = np.array([[float(row[name]) for name in labels.FER2013] for row in rows], np.float32)
    predicted = [labels.FER2013[i] for i in probabilities.argmax(axis=1)]
    assert [row["predicted"] for row in rows] == predicted
    assert np.mean([row["true"] == name for row, name in zip(rows, predicted)]) == pytest.approx(report["accuracy"])

    # The same crops, read straight from the dataset by their CSV row, through the export's pixels signature.
    split = tfds.builder("fer2013/original", data_dir=str(training_data)).as_dataset(split="validation")
    by_index = {int(example["index"]): example for example in tfds.as_numpy(split)}
    indices = [int(row["index"]) for row in rows]
    assert sorted(indices) == sorted(by_index)
    assert [row["true"] for row in rows] == [labels.FER2013[by_index[i]["label"]] for i in indices]
    signature = tf.saved_model.load(str(export_base / "1")).signatures["pixels"]
    expected = signature(image=tf.constant(np.stack([by_index[i]["image"] for i in indices])),
                         landmarks=tf.constant(np.stack([by_index[i]["landmarks"] for i in indices])))
    np.testing.assert_allclose(probabilities, expected["probabilities"].numpy(), atol=1e-6)


def test_a_dataset_is_relabelled_in_the_exports_classes(export_base, training_data, tmp_path):
    from emopy.pipeline import data

    # CK+'s labels in fer2013's classes: its contempt sequences have no class there and are left out.
    report = evaluate.run_export(export_base / "1", "ck_plus", "train", data_dir=str(training_data),
                                 output=tmp_path / "ck_plus.json")
    counts = data.label_counts(data.DataConfig("ck_plus", data_dir=str(training_data), labels="fer2013"), "train")
    assert report["examples"] == sum(counts["classes"].values()) > 0 and counts["left_out"] > 0
    assert {name: scores["support"] for name, scores in report["per_class"].items()} == counts["classes"]
    assert report["model"] == report["export"] == str(export_base / "1")
    assert report["predictions_csv"] == str(tmp_path / "predictions-ck_plus-train.csv")
    assert {row["true"] for row in _rows(report["predictions_csv"])} <= set(labels.FER2013)


@pytest.mark.parametrize("model, kind, dataset, classes", [
    ("landmarks", "landmarks", "fer2013", labels.FER2013),  # the signature takes crops it ignores
    ("image_lstm", "image_sequence", "ck_plus/sequences", labels.CK_PLUS),  # the model's frames are its `image`
])
@pytest.mark.scale  # two runs trained and exported, about 30 s: CI runs it with the scale checks
def test_landmark_and_sequence_exports_are_evaluated_too(model, kind, dataset, classes, training_data, tmp_path):
    from emopy import models
    import tensorflow as tf
    from emopy.pipeline import data

    spec = models.InputSpec(kind=kind, sequence_length=4)
    base = _export(tmp_path, model, spec, classes)
    report = evaluate.run_export(base, dataset, "train", data_dir=str(training_data), output=tmp_path / "r.json")
    rows = _rows(report["predictions_csv"])
    assert len(rows) == report["examples"] > 0
    batches = data.batches(data.DataConfig(dataset, data_dir=str(training_data)), "train", spec, batch_size=256)
    inputs = {name: tf.concat([batch[name] for batch, _ in batches], 0) for name in models.input_shapes(spec)}
    crops = inputs["frames"] if spec.is_sequence else tf.random.uniform([len(rows), 48, 48, 1], 0, 256, tf.int32)
    feeds = {"image": tf.cast(crops, tf.uint8), **({"landmarks": inputs["landmarks"]} if spec.uses_landmarks else {})}
    expected = tf.saved_model.load(str(base / "1")).signatures["pixels"](**feeds)["probabilities"].numpy()
    probabilities = np.array([[float(row[name]) for name in classes] for row in rows], np.float32)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)


def test_an_export_whose_classes_are_no_label_scheme_is_refused(tmp_path, capsys):
    version = tmp_path / "aus" / "1"
    (version / "assets").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")  # refused on its assets, before the SavedModel is read
    (version / "assets" / "labels.txt").write_text("AU1\nAU2\n")
    (version / "assets" / "face_spec.json").write_text(faces.FaceSpec().to_json())
    (version / "assets" / "input_spec.json").write_text('{"kind": "image"}')
    assert cli.main(["evaluate", "--model", str(tmp_path / "aus"), "--dataset", "ck_plus/facs"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(version) in error and "(AU1, AU2) are no emopy label scheme" in error


def test_run_and_model_together_are_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--run", str(tmp_path), "--model", str(tmp_path), "--dataset", "fer2013"])
    assert exit_info.value.code == 2
    assert "argument --model: not allowed with argument --run" in capsys.readouterr().err


@pytest.mark.parametrize("args, fragments", [
    # neither --run nor --model: the default model
    (["--dataset", "fer2013"], ["shipped model '{default}' is missing", "{missing}"]),
    ([], ["evaluating an export (--model, or the default model) needs --dataset NAME"]),
    (["--run", "{missing}", "--dataset", "fer2013"], ["--dataset and --data-dir go with --model"]),
])
def test_usage_mistakes_are_one_line_errors(args, fragments, tmp_path, monkeypatch, capsys):
    from emopy.serving import shipped

    missing = tmp_path / "no_shipped_models"
    monkeypatch.setattr(shipped, "ROOT", missing)
    assert cli.main(["evaluate", *[arg.format(missing=missing) for arg in args]]) == 2
    error = capsys.readouterr().err
    assert error.startswith("emopy: error: ") and error.count("\n") == 1
    assert all(fragment.format(missing=missing, default=shipped.DEFAULT) in error for fragment in fragments), error


# --- Across label sets: a 7-class model on FER+'s labels, an 8-class one on fer2013's -----------------------------

# FER+ votes for tiny_fer2013's 21 rows: row i's majority is FER+ class i % 8, so contempt (7) is the majority of
# rows 7 and 15; row 15 is a validation row (PublicTest: rows 13..16).
TINY_USAGES = ["Training"] * 13 + ["PublicTest"] * 4 + ["PrivateTest"] * 4


@pytest.fixture(scope="module")
def tiny_fer2013(tmp_path_factory, astronaut) -> Path:
    """fer2013/original and fer2013/ferplus built from the same 21 faces (13 train, 4 validation, 4 test), in this
    process (builds.build_here)."""
    from builds import build_here
    from emopy_tfds.fer2013 import dummy_data_generation as generate

    rows = len(TINY_USAGES)
    manual, data_dir = tmp_path_factory.mktemp("tiny_fer2013"), tmp_path_factory.mktemp("tiny_fer2013_data")
    generate.write_source(manual, generate.face_crops(astronaut, rows, seed=1), [i % 7 for i in range(rows)],
                          TINY_USAGES, form="plain")
    votes = [[7 if emotion == i % 8 else 3 if emotion == (i + 1) % 8 else 0 for emotion in range(10)]
             for i in range(rows)]
    generate.write_ferplus(manual, votes, TINY_USAGES)
    for config in ("original", "ferplus"):
        build_here("fer2013", manual, data_dir, config)
    return data_dir


@pytest.fixture(scope="module")
def contempt_export_base(tmp_path_factory) -> Path:
    """An untrained multi_input export in the fer2013_contempt scheme: fer2013's 7 classes, then contempt."""
    from emopy import models

    return _export(tmp_path_factory.mktemp("contempt"), "multi_input", models.InputSpec(kind="image_landmarks"),
                   labels.FER2013_CONTEMPT)


def test_a_7_class_model_on_ferplus_leaves_contempt_faces_out(export_base, tiny_fer2013, tmp_path):
    report = evaluate.run_export(export_base, "fer2013/ferplus", "validation", data_dir=str(tiny_fer2013),
                                 output=tmp_path / "r.json")
    # Validation rows 13..16 have FER+ majorities 5, 6, 7 (contempt), 0: contempt has no class in fer2013's labels.
    assert (report["examples"], report["left_out"]) == (3, 1)
    assert report["answers_outside_label_set"] == {}
    # FER+'s classes 5, 6 and 0 are disgust, fear and neutral.
    assert {name: scores["support"] for name, scores in report["per_class"].items() if scores["support"]} == {
        "disgust": 1, "fear": 1, "neutral": 1}
    assert "left out: 1 examples whose label has no class in the model" in evaluate.summary(report)


def test_an_8_class_model_on_fer2013_counts_its_contempt_answers_as_wrong(contempt_export_base, tiny_fer2013,
                                                                          tmp_path):
    report = evaluate.run_export(contempt_export_base, "fer2013", "validation", data_dir=str(tiny_fer2013),
                                 output=tmp_path / "r.json")
    rows = _rows(report["predictions_csv"])
    assert report["class_names"] == list(labels.FER2013_CONTEMPT) and report["per_class"]["contempt"]["support"] == 0
    assert (report["examples"], report["left_out"]) == (4, 0)
    contempt = sum(row["predicted"] == "contempt" for row in rows)
    assert report["answers_outside_label_set"] == {"contempt": contempt}
    assert np.array(report["confusion_matrix"])[:, 7].sum() == contempt
    assert report["accuracy"] == pytest.approx(np.mean([row["true"] == row["predicted"] for row in rows]))

    # On FER+'s labels contempt is a class the labels have: nothing is left out or outside.
    ferplus = evaluate.run_export(contempt_export_base, "fer2013/ferplus", "validation", data_dir=str(tiny_fer2013),
                                  output=tmp_path / "ferplus.json")
    assert (ferplus["examples"], ferplus["left_out"], ferplus["answers_outside_label_set"]) == (4, 0, {})
    assert ferplus["per_class"]["contempt"]["support"] == 1


def test_a_run_trained_on_votes_is_scored_on_majority_labels(tiny_fer2013, tmp_path):
    from emopy import models
    from emopy.pipeline import run_dir

    run = tmp_path / "votes_run"
    run.mkdir()
    spec = models.InputSpec(kind="image")
    models.build("cnn", spec, 8).save(str(run / run_dir.MODEL_FILE))
    settings = {"dataset": "fer2013/ferplus", "model": "cnn", "out": str(run), "data_dir": str(tiny_fer2013),
                "labels": "fer2013_contempt", "targets": "votes"}
    (run / run_dir.CONFIG_FILE).write_text(json.dumps({"input_spec": spec.__dict__, "train": settings,
                                                       "class_names": list(labels.FER2013_CONTEMPT)}))
    report = evaluate.run(run, "validation")
    rows = _rows(report["predictions_csv"])
    # Rows 13..16's majorities, one class each (not vote shares), in fer2013_contempt's classes.
    assert {int(row["index"]): row["true"] for row in rows} == {13: "disgust", 14: "fear", 15: "contempt",
                                                                16: "neutral"}
    assert report["examples"] == 4 and report["left_out"] == 0


# --- Photos: `emopy evaluate --photos DIR --labels FILE.csv` ---------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut) -> Path:
    """Real photos of one face (scikit-image's astronaut, and the package's JPEG of it) and one of no face."""
    import shutil

    import cv2

    import emopy_tfds.data

    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "astronaut.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    shutil.copy(Path(emopy_tfds.data.__file__).parent / "astronaut.jpg", folder / "astronaut.jpg")
    cv2.imwrite(str(folder / "grey.png"), np.full((96, 128, 3), 128, np.uint8))  # small: the CNN detector looks too
    return folder


def _labels_csv(folder: Path, text: str) -> Path:
    path = folder / "labels.csv"
    path.write_text(text)
    return path


def test_photos_are_scored_with_a_face_not_found_counted_wrong(photos, tmp_path, capsys):
    labels_csv = _labels_csv(tmp_path, "file,emotion\nastronaut.png,happy\nastronaut.jpg,sad\n\ngrey.png,neutral\n")
    output = tmp_path / "out" / "report.json"
    assert cli.main(["evaluate", "--photos", str(photos), "--labels", str(labels_csv), "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert "accuracy 0.3333; faces found 2, not found 1; accuracy on found faces 0.5000" in capsys.readouterr().out
    classes = report["class_names"]
    assert (report["photos_dir"], report["labels_csv"], report["label_set"]) == (str(photos), str(labels_csv),
                                                                                 "fer2013")
    assert (report["photos"], report["examples"], report["faces_found"]) == (3, 3, 2)
    assert report["not_found"] == {"count": 1, "files": ["grey.png"]}
    # The astronaut smiles: right as happy, wrong as sad; the grey photo is wrong for want of a face.
    assert report["accuracy"] == pytest.approx(1 / 3) and report["accuracy_on_found_faces"] == pytest.approx(1 / 2)
    recalls = {name: (scores["recall"], scores["support"]) for name, scores in report["per_class"].items()}
    assert (recalls["happy"], recalls["sad"], recalls["neutral"]) == ((1.0, 1), (0.0, 1), (0.0, 1))
    assert set(report["per_class"]) == set(classes) and report["per_class"]["happy"]["precision"] == 0.5
    # Rows: true classes; columns: the classes, then not_found.
    assert report["confusion_columns"] == [*classes, "not_found"]
    confusion = np.array(report["confusion_matrix"])
    assert confusion.shape == (len(classes), len(classes) + 1) and confusion.sum() == 3
    happy, sad, neutral = (classes.index(name) for name in ("happy", "sad", "neutral"))
    assert confusion[happy, happy] == confusion[sad, happy] == confusion[neutral, -1] == 1
    assert report["answers_outside_label_set"] == {name: 0 for name in classes if name not in labels.FER2013}
    assert report["confusion_matrix_png"] == str(output.parent / "confusion-photos-labels.png")
    assert Path(report["confusion_matrix_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert report["predictions_csv"] == str(output.parent / "predictions-photos-labels.csv")
    with open(report["predictions_csv"], newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["file", "true", "predicted", "found", *classes]
    assert [row[:4] for row in rows[1:]] == [["astronaut.png", "happy", "happy", "1"],
                                             ["astronaut.jpg", "sad", "happy", "1"],
                                             ["grey.png", "neutral", "not_found", "0"]]
    for row in rows[1:3]:
        probabilities = np.array(row[4:], np.float64)
        assert probabilities.sum() == pytest.approx(1, abs=1e-4) and classes[probabilities.argmax()] == "happy"
    assert rows[3][4:] == [""] * len(classes)


def test_an_answer_the_labels_cannot_name_counts_as_wrong(photos, tmp_path):
    from emopy.serving.recognizer import Recognizer

    fer2013_model = Recognizer.default("fer2013")

    def contempt_first(pixels: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
        # The fer2013 model's answers at 40 %, and contempt at 60 %: every face found is called contempt.
        seven = fer2013_model.classify_crops(list(pixels), landmarks)
        return np.concatenate([0.4 * seven, np.full((len(seven), 1), 0.6)], axis=1)

    eight = Recognizer(contempt_first, labels.FER2013_CONTEMPT, fer2013_model.face_spec, fer2013_model.inputs)
    labels_csv = _labels_csv(tmp_path, "file,emotion\nastronaut.png,happy\ngrey.png,neutral\n")
    report = evaluate_photos.evaluate_photos(eight, photos, labels_csv, {"model": "eight"}, tmp_path / "r.json")
    assert report["class_names"] == list(labels.FER2013_CONTEMPT) and report["label_set"] == "fer2013"
    assert report["answers_outside_label_set"] == {"contempt": 1}
    assert (report["accuracy"], report["accuracy_on_found_faces"], report["faces_found"]) == (0.0, 0.0, 1)
    assert np.array(report["confusion_matrix"]).shape == (8, 9) and report["per_class"]["contempt"]["support"] == 0
    assert "answers contempt (a class the labels do not have, so wrong): 1" in evaluate.summary(report)

    # Labels that can name contempt (here, by naming it) make a contempt answer an ordinary one.
    labels_csv = _labels_csv(tmp_path, "file,emotion\nastronaut.png,contempt\nastronaut.jpg,angry\n")
    report = evaluate_photos.evaluate_photos(eight, photos, labels_csv, {"model": "eight"}, tmp_path / "r.json")
    assert (report["label_set"], report["answers_outside_label_set"], report["accuracy"]) == (
        "fer2013_contempt", {}, 0.5)


@pytest.mark.parametrize("text, line, fragment", [
    ("path,label\nastronaut.png,happy\n", 1, "the header must be 'file,emotion', not 'path,label'"),
    ("file,emotion\nastronaut.png,happy\nmissing.png,sad\n", 3, "no photo 'missing.png' in "),
    ("file,emotion\nastronaut.png,bored\n", 2, "unknown emotion 'bored'; known: "),
    # A blank line still counts: lines are the file's.
    ("file,emotion\nastronaut.png,happy\n\ngrey.png,contempt\n", 4,
     "the model has no class for 'contempt' (its classes: angry, disgust, fear, happy, sad, surprise, neutral)"),
    ("file,emotion\nastronaut.png\n", 2, "expected file,emotion, two non-empty fields"),
])
def test_a_bad_labels_csv_is_a_one_line_error_naming_the_line(text, line, fragment, photos, tmp_path, monkeypatch,
                                                              capsys):
    def never(*args, **kwargs):
        raise AssertionError("no photo is classified before every line is checked")

    monkeypatch.setattr(evaluate_photos, "classify_photos", never)
    labels_csv = _labels_csv(tmp_path, text)
    assert cli.main(["evaluate", "--model", "fer2013", "--photos", str(photos), "--labels", str(labels_csv),
                     "--output", str(tmp_path / "r.json")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"emopy: error: {labels_csv}, line {line}: ") and error.count("\n") == 1, error
    assert fragment in error
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--photos", "{photos}"], "--photos DIR and --labels FILE.csv go together"),
    (["--photos", "{photos}", "--labels", "l.csv", "--dataset", "fer2013"], "not with --run, --dataset or --data-dir"),
    (["--dataset", "fer2013", "--detector", "hog"], "--detector goes with --photos"),
    (["--photos", "{photos}/nowhere", "--labels", "l.csv"], "nowhere: no such folder of photos"),
])
def test_photo_usage_mistakes_are_one_line_errors(args, fragment, photos, capsys):
    assert cli.main(["evaluate", *[arg.format(photos=photos) for arg in args]]) == 2
    error = capsys.readouterr().err
    assert error.startswith("emopy: error: ") and error.count("\n") == 1 and fragment in error, error


@pytest.mark.parametrize("emotions, scheme", [
    (labels.FER2013, "fer2013"),  # not fer2013_contempt, which also spells them
    (("angry", "contempt"), "fer2013_contempt"),
    (("happiness", "anger"), "ferplus"),
    (("sadness", "happy"), "ck_plus"),
    (("happy", "happiness"), "fer2013"),  # spelled by no one set: the smallest that has both emotions
])
def test_the_labels_scheme_is_the_smallest_set_that_names_them(emotions, scheme):
    assert evaluate_photos.labels_scheme(emotions) == scheme


def test_classes_no_label_can_name():
    assert evaluate.classes_unnamed(["fer2013"], "fer2013_contempt") == ("contempt",)
    assert evaluate.classes_unnamed(["fer2013"], "ferplus") == ("contempt",)
    assert evaluate.classes_unnamed(["ferplus"], "fer2013") == ()
    assert evaluate.classes_unnamed(["fer2013", "ck_plus"], "ferplus") == ()  # CK+ has contempt
    assert evaluate.answer_counts([7, 0, 7, -1], labels.FER2013_CONTEMPT, ["contempt"]) == {"contempt": 2}
