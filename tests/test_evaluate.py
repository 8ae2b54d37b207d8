"""Evaluation numbers against a hand computation on a tiny case, and the predictions CSV."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from pipeline import evaluate

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
