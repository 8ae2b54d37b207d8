"""Training, leave-one-subject-out and evaluation on WESAD's physiological windows (the wesad_data fixture: 4 generated
subjects), and the refusals of models and datasets that do not go together."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tf_keras as keras

from emopy import models
from emopy.pipeline import cli, data, run_dir

from two_cpus import run_on_two_logical_cpus


def _train(*flags: str) -> int:
    keras.backend.clear_session()
    return cli.main(["train", "--epochs", "1", "--batch-size", "4", *flags])


def test_physio_mlp_and_signal_cnn_train_on_wesad_and_evaluate_accuracy_and_macro_f1(wesad_data, tmp_path, capsys):
    mlp = tmp_path / "mlp"
    assert _train("--dataset", "wesad/chest", "--data-dir", str(wesad_data), "--model", "physio_mlp",
                  "--out", str(mlp)) == 0
    run = run_dir.RunDir.open(mlp)
    config = data.DataConfig("wesad/chest", data_dir=str(wesad_data))
    metadata = data.dataset_info(config).metadata
    # The paper's three-class task by default: meditation is left out and counted.
    assert run.class_names == ["baseline", "stress", "amusement"]
    assert run.record["label_counts"]["train"]["left_out"] > 0
    assert run.input_spec == models.InputSpec(kind="signal_features", num_features=len(metadata["feature_names"]))
    # A signal run records its windows, not a face spec: feature names and channels in order, and its subjects.
    assert not (mlp / run_dir.FACE_SPEC_FILE).exists()
    spec = json.loads((mlp / run_dir.SIGNAL_SPEC_FILE).read_text())
    assert spec["feature_names"] == list(metadata["feature_names"]) and spec["channels"] == list(metadata["channels"])
    assert (spec["test_subjects"], spec["validation_subjects"]) == (["S2"], ["S3"])  # folds 0 and 1

    # The normalisation statistics are the train split's (NaN-aware), saved in model.keras.
    train_features = np.stack([record["features"] for record in data.examples(
        config, "train", run.input_spec).as_numpy_iterator()])
    layer = run.load_model().get_layer("features_normalization")
    finite = np.isfinite(train_features).any(axis=0)
    np.testing.assert_allclose(layer.adapt_mean.numpy()[finite], np.nanmean(train_features[:, finite], axis=0),
                               rtol=1e-4, atol=1e-4)

    capsys.readouterr()
    assert cli.main(["evaluate", "--run", str(mlp)]) == 0
    out = capsys.readouterr().out
    report = json.loads((mlp / "evaluation-test.json").read_text())
    assert report["examples"] > 0 and 0 <= report["macro_f1"] <= 1
    assert f"accuracy {report['accuracy']:.4f}" in out and f"macro F1 {report['macro_f1']:.4f}" in out

    # The CNN on the raw windows, on the binary stress task.
    cnn = tmp_path / "cnn"
    assert _train("--dataset", "wesad/wrist", "--data-dir", str(wesad_data), "--model", "signal_cnn",
                  "--labels", "stress", "--out", str(cnn)) == 0
    run = run_dir.RunDir.open(cnn)
    assert run.class_names == ["non_stress", "stress"]
    wrist = data.dataset_info(data.DataConfig("wesad/wrist", data_dir=str(wesad_data)))
    assert (run.input_spec.window_samples, run.input_spec.channels) == wrist.features["signals"].shape
    assert cli.main(["evaluate", "--run", str(cnn)]) == 0
    assert set(json.loads((cnn / "evaluation-test.json").read_text())["per_class"]) == {"non_stress", "stress"}


def test_leave_one_subject_out_has_a_fold_per_subject_and_no_subject_in_two_splits(wesad_data, tmp_path, capsys):
    out = tmp_path / "loso"
    assert _train("--dataset", "wesad/chest", "--data-dir", str(wesad_data), "--model", "physio_mlp",
                  "--labels", "stress", "--cv", "loso", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "cv.json").read_text())
    subjects = ["S2", "S3", "S4", "S5"]
    assert [fold["test_subjects"] for fold in summary["folds"]] == [[subject] for subject in subjects]
    accuracies = [fold["accuracy"] for fold in summary["folds"]]
    f1s = [fold["macro_f1"] for fold in summary["folds"]]
    assert summary["accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert summary["accuracy_std"] == pytest.approx(np.std(accuracies))
    assert summary["macro_f1_mean"] == pytest.approx(np.mean(f1s))
    assert summary["macro_f1_std"] == pytest.approx(np.std(f1s))
    pooled = summary["pooled"]
    assert pooled["examples"] == sum(fold["examples"] for fold in summary["folds"])
    assert pooled["accuracy"] == pytest.approx(
        sum(fold["accuracy"] * fold["examples"] for fold in summary["folds"]) / pooled["examples"])
    assert f"leave-one-subject-out accuracy: {np.mean(accuracies):.4f} ± {np.std(accuracies):.4f}" in printed
    assert f"pooled over {pooled['examples']} test examples: accuracy {pooled['accuracy']:.4f}" in printed
    # Every window with a class is tested exactly once, and no subject is in two of train, validation and test.
    config = data.DataConfig("wesad/chest", data_dir=str(wesad_data), labels="stress", folds=4)
    everything = sum(sum(data.label_counts(config, split)["classes"].values()) for split in data.SPLITS)
    assert pooled["examples"] == everything
    for fold in range(4):
        fold_config = data.DataConfig("wesad/chest", data_dir=str(wesad_data), folds=4, test_fold=fold)
        seen = {split: {example["subject"].decode() for example in data._read(
            data.WESAD_CHEST, fold_config, split).as_numpy_iterator()} for split in data.SPLITS}
        assert seen["test"] == {subjects[fold]} and seen["validation"] == {subjects[(fold + 1) % 4]}
        assert seen["train"] == set(subjects) - seen["test"] - seen["validation"]


@pytest.mark.parametrize("flags, message", [
    (("--dataset", "wesad/chest", "--model", "cnn"), "'wesad/chest' holds physiological signals"),
    (("--dataset", "fer2013", "--model", "physio_mlp"), "'fer2013' holds faces"),
    (("--dataset", "ck_plus", "--model", "cnn", "--cv", "loso"), "--cv loso needs a dataset of single subjects"),
    (("--dataset", "wesad/chest", "--model", "physio_mlp", "--cv", "9"), "wesad/chest has 4 subjects"),
    (("--dataset", "wesad/chest", "--model", "physio_mlp", "--labels", "fer2013"), "one cannot be mapped"),
], ids=["face model on wesad", "signal model on faces", "loso on ck_plus", "more folds than subjects",
        "emotion labels on states"])
def test_models_datasets_and_folds_that_do_not_go_together_are_refused(flags, message, wesad_data, tmp_path,
                                                                       capsys):
    assert _train(*flags, "--data-dir", str(wesad_data), "--out", str(tmp_path / "run")) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


MIRRORED_SCRIPT = """
import json, sys
import numpy as np
from emopy.pipeline import data, run_dir, train
record = train.run(train.TrainConfig(dataset="wesad/chest", model="physio_mlp", out=sys.argv[1], data_dir=sys.argv[2],
                                     strategy="mirrored", epochs=4, batch_size=4, seed=1))
run = run_dir.RunDir.open(sys.argv[1])
config = data.DataConfig("wesad/chest", data_dir=sys.argv[2])
features = np.stack([r["features"] for r in data.examples(config, "train", run.input_spec).as_numpy_iterator()])
mean = run.load_model().get_layer("features_normalization").adapt_mean.numpy()
finite = np.isfinite(features).any(axis=0)
print(json.dumps({"strategy": record["strategy"], "loss": record["history"]["loss"],
                  "mean_error": float(np.abs(mean[finite] - np.nanmean(features[:, finite], axis=0)).max())}))
"""


@pytest.mark.scale  # two logical CPUs in a process of their own, about 30 s: CI runs it with the scale checks
def test_physio_mlp_trains_mirrored_on_two_logical_cpus_with_the_train_splits_statistics(wesad_data, tmp_path):
    outcome = run_on_two_logical_cpus(MIRRORED_SCRIPT, str(tmp_path / "run"), str(wesad_data))
    assert outcome["strategy"] == {"name": "mirrored", "replicas": 2, "global_batch_size": 8}
    # 4 epochs of 36 windows are too few and too noisy for the loss to fall surely: the point is that the replicas
    # train and the normalisation was adapted on the train split under the strategy.
    assert len(outcome["loss"]) == 4 and all(np.isfinite(outcome["loss"]))
    assert outcome["mean_error"] < 1e-3
