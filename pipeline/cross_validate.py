"""Subject-independent K-fold cross-validation on CK+: one training run and one evaluation per fold.

Above both training and evaluation, so that neither imports the other.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import tf_keras as keras

from emopy.pipeline import evaluate, train
from emopy.pipeline.run_dir import write_json

CV_FILE = "cv.json"


def run(config: train.TrainConfig, folds: int, overwrite: bool = False) -> dict:
    """Fold k is the test set of run `fold-k`, the next fold its validation set. Writes cv.json with each fold's
    test accuracy and their mean and std. Each fold is a run of its own (train.run): a rerun keeps the folds that
    finished, resumes an interrupted one, and trains the rest; `overwrite` starts every fold over."""
    if not all(source.subject_folds for source in config.data_config.sources):
        raise ValueError("--cv needs a CK+ dataset (its subject folds keep each person in one fold)")
    if folds < 3:
        raise ValueError("--cv needs at least 3 folds: one to test, one to validate, the rest to train")
    results = []
    for fold in range(folds):
        fold_config = dataclasses.replace(config, out=str(Path(config.out) / f"fold-{fold}"), folds=folds,
                                          test_fold=fold)
        train.run(fold_config, overwrite=overwrite)
        keras.backend.clear_session()
        report = evaluate.run(fold_config.out, "test")
        results.append({"fold": fold, "accuracy": report["accuracy"], "examples": report["examples"]})
    accuracies = [result["accuracy"] for result in results]
    mean = sum(accuracies) / folds
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / folds)
    summary = {"folds": results, "accuracy_mean": mean, "accuracy_std": std}
    write_json(Path(config.out).expanduser() / CV_FILE, summary)
    print(f"{folds}-fold subject-independent accuracy: {mean:.4f} ± {std:.4f}")
    return summary
