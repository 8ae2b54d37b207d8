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
from pipeline import cli, evaluate

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
    """BASE/1 exported from a hand-made run directory holding an untrained `model` (as tests/test_predict.py
    makes one): the real export and signatures, without training."""
    import models
    from pipeline import run_dir
    from serving import export

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
    """An untrained multi_input (image + landmarks) export for fer2013's classes."""
    import models

    return _export(tmp_path_factory.mktemp("multi_input"), "multi_input", models.InputSpec(kind="image_landmarks"),
                   labels.FER2013)


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
    from pipeline import data

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
def test_landmark_and_sequence_exports_are_evaluated_too(model, kind, dataset, classes, training_data, tmp_path):
    import models
    import tensorflow as tf
    from pipeline import data

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
    (["--dataset", "fer2013"], ["shipped model 'fer2013' is missing", "{missing}"]),
    ([], ["evaluating an export (--model, or the default model) needs --dataset NAME"]),
    (["--run", "{missing}", "--dataset", "fer2013"], ["--dataset and --data-dir go with --model"]),
])
def test_usage_mistakes_are_one_line_errors(args, fragments, tmp_path, monkeypatch, capsys):
    from serving import shipped

    missing = tmp_path / "no_shipped_models"
    monkeypatch.setattr(shipped, "ROOT", missing)
    assert cli.main(["evaluate", *[arg.format(missing=missing) for arg in args]]) == 2
    error = capsys.readouterr().err
    assert error.startswith("emopy: error: ") and error.count("\n") == 1
    assert all(fragment.format(missing=missing) in error for fragment in fragments), error
