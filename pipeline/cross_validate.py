"""Subject-independent cross-validation (CK+'s K folds, WESAD's leave-one-subject-out): one training run and one
evaluation per fold.

Above both training and evaluation, so that neither imports the other.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import tf_keras as keras

from emopy.pipeline import data, evaluate, train
from emopy.pipeline.run_dir import write_json

CV_FILE = "cv.json"
# `--cv loso`: one fold per subject of the dataset.
LOSO = "loso"


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((value - mean) ** 2 for value in values) / len(values))


def fold_count(config: train.TrainConfig, folds: int | str) -> int:
    """The number of folds `--cv` asks for: K, or with "loso" the dataset's subjects (WESAD's only: CK+'s folds
    are groups of subjects made when it was built)."""
    sources = config.data_config.sources
    if not all(source.subject_folds for source in sources):
        raise ValueError("--cv needs a dataset with subject folds (ck_plus, wesad/...): they keep each person in one "
                         "fold")
    signals = sources[0].signals
    subjects = len(data.dataset_info(config.data_config).metadata["subjects"]) if signals else None
    if folds == LOSO:
        if not signals:
            raise ValueError(f"--cv {LOSO} needs a dataset of single subjects' folds (wesad/...); CK+'s folds are "
                             f"groups of subjects: use --cv K")
        folds = subjects
    if not isinstance(folds, int) or folds < 3:
        raise ValueError("--cv needs at least 3 folds: one to test, one to validate, the rest to train")
    if subjects is not None and folds > subjects:
        raise ValueError(f"{config.dataset} has {subjects} subjects, so at most {subjects} folds: --cv {subjects} or "
                         f"--cv {LOSO}")
    return folds


def pooled(confusions: list[list[list[int]]], class_names: list[str]) -> dict:
    """Accuracy and macro F1 over every fold's test predictions together, from the folds' confusion matrices."""
    confusion = np.sum(np.asarray(confusions, np.int64), axis=0)
    true, predicted = np.nonzero(confusion)
    counts = confusion[true, predicted]
    report = evaluate.classification_report(np.repeat(true, counts), np.repeat(predicted, counts), class_names)
    return {key: report[key] for key in ("examples", "accuracy", "macro_f1", "confusion_matrix")}


def run(config: train.TrainConfig, folds: int | str, overwrite: bool = False) -> dict:
    """Fold k is the test set of run `fold-k`, the next fold its validation set. Writes cv.json with each fold's
    test accuracy and macro F1 (and, for WESAD, its test subjects), their mean and std, and both pooled over every
    fold's predictions. Each fold is a run of its own (train.run): a rerun keeps the folds that finished, resumes an
    interrupted one, and trains the rest; `overwrite` starts every fold over."""
    loso = folds == LOSO
    folds = fold_count(config, folds)
    results, confusions = [], []
    for fold in range(folds):
        fold_config = dataclasses.replace(config, out=str(Path(config.out) / f"fold-{fold}"), folds=folds,
                                          test_fold=fold)
        record = train.run(fold_config, overwrite=overwrite)
        keras.backend.clear_session()
        report = evaluate.run(fold_config.out, "test")
        result = {"fold": fold, "accuracy": report["accuracy"], "macro_f1": report.get("macro_f1"),
                  "examples": report["examples"]}
        if config.data_config.sources[0].signals:
            result["test_subjects"] = train.signal_spec(fold_config.data_config)["test_subjects"]
        results.append(result)
        subjects = f" ({', '.join(result['test_subjects'])})" if "test_subjects" in result else ""
        scores = f", macro F1 {result['macro_f1']:.4f}" if result["macro_f1"] is not None else ""
        print(f"fold {fold}{subjects}: test accuracy {result['accuracy']:.4f}{scores} on {result['examples']} examples")
        if "confusion_matrix" in report:
            confusions.append(report["confusion_matrix"])
    accuracy_mean, accuracy_std = _mean_std([result["accuracy"] for result in results])
    summary = {"folds": results, "accuracy_mean": accuracy_mean, "accuracy_std": accuracy_std}
    if confusions:
        summary["macro_f1_mean"], summary["macro_f1_std"] = _mean_std([result["macro_f1"] for result in results])
        summary["pooled"] = pooled(confusions, record["class_names"])
        summary["class_names"] = record["class_names"]
    write_json(Path(config.out).expanduser() / CV_FILE, summary)
    name = "leave-one-subject-out" if loso else f"{folds}-fold subject-independent"
    print(f"{name} accuracy: {accuracy_mean:.4f} ± {accuracy_std:.4f}")
    if confusions:
        print(f"{name} macro F1: {summary['macro_f1_mean']:.4f} ± {summary['macro_f1_std']:.4f}; pooled over "
              f"{summary['pooled']['examples']} test examples: accuracy {summary['pooled']['accuracy']:.4f}, "
              f"macro F1 {summary['pooled']['macro_f1']:.4f}")
    return summary
