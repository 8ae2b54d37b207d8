"""Training end to end on built datasets: learning, strategies, resuming, cross-validation, AUs, errors."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
import tf_keras as keras

from emopy_tfds import faces, labels
from emopy.pipeline import cli, data, run_dir, train

from emopy import models

from two_cpus import run_on_two_logical_cpus


def emopy(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["emopy", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("name", list(models.ARCHITECTURES))
def test_every_recipe_key_is_carried_out_by_the_trainer(name):
    assert set(models.recipe(name)) <= train.RECIPE_KEYS


def test_vgg_trains_with_its_papers_optimizer():
    optimizer = train._optimizer(train.TrainConfig(dataset="fer2013", model="vgg", out="unused"), steps_per_epoch=10)
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.nesterov
    assert (float(optimizer.learning_rate), optimizer.momentum, optimizer.weight_decay) == pytest.approx(
        (0.01, 0.9, 1e-4))


def test_a_cosine_recipe_decays_the_learning_rate_to_zero_over_the_epochs_asked():
    config = train.TrainConfig(dataset="fer2013", model="vgg_small", out="unused", epochs=4)
    optimizer = train._optimizer(config, steps_per_epoch=10)
    schedule = keras.optimizers.schedules.deserialize(optimizer.get_config()["learning_rate"])
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert float(schedule(0)) == pytest.approx(1e-3) and float(schedule(40)) == pytest.approx(0.0, abs=1e-9)
    assert float(schedule(20)) == pytest.approx(5e-4)
    assert all(models.recipe(name).get("lr_schedule", "plateau") in train.LR_SCHEDULES for name in models.ARCHITECTURES)


def test_a_cosine_run_trains_every_epoch_and_a_plateau_run_may_stop_early(tmp_path):
    def kinds(model: str) -> dict[str, object]:
        callbacks = train.training_callbacks(models.recipe(model), 10, tmp_path, tmp_path, chief=True)
        return {type(callback).__name__: callback for callback in callbacks}

    cosine = kinds("vgg_small")
    assert "EarlyStopping" not in cosine and "ReduceLROnPlateau" not in cosine
    assert cosine["ModelCheckpoint"].monitor == "val_accuracy"  # the most accurate epoch is kept
    plateau = kinds("cnn")
    assert plateau["EarlyStopping"].patience == 10 and plateau["EarlyStopping"].monitor == "val_loss"
    assert plateau["ModelCheckpoint"].monitor == "val_loss" and "ReduceLROnPlateau" in plateau
    for found in (cosine, plateau):
        assert {"BackupAndRestore", "TensorBoard", "CSVLogger"} <= set(found)


def test_class_weight_power_goes_from_none_to_balanced():
    counts = {"classes": {"a": 100, "b": 25, "c": 0}}
    assert data.balanced_class_weights(counts) == {"a": 0.625, "b": 2.5, "c": 0.0}
    assert data.balanced_class_weights(counts, 0.5) == pytest.approx({"a": 0.625 ** 0.5, "b": 2.5 ** 0.5, "c": 0.0})
    assert data.balanced_class_weights(counts, 0.0) == {"a": 1.0, "b": 1.0, "c": 0.0}


def test_vgg_learning_rate_falls_on_a_validation_accuracy_plateau_as_its_paper():
    callback = train.plateau_callback(models.recipe("vgg"), patience=10)
    assert (callback.monitor, callback.mode, callback.factor, callback.patience) == ("val_accuracy", "max", 0.75, 5)
    # Models without a schedule in their recipe halve it on a validation loss plateau of half the patience.
    callback = train.plateau_callback(models.recipe("cnn"), patience=10)
    assert (callback.monitor, callback.mode, callback.factor, callback.patience) == ("val_loss", "auto", 0.5, 5)


def test_training_learns_the_signal_and_evaluate_reports_it(training_data, tmp_path, capsys):
    run_dir = tmp_path / "run"
    result = emopy("train", "--dataset", "fer2013", "--data-dir", str(training_data), "--model", "cnn",
                   "--out", str(run_dir), "--epochs", "30", "--batch-size", "32", "--seed", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    # Progress shows while training: Keras's line for each epoch trained (all 30, or up to an early stop).
    history = json.loads((run_dir / "history.json").read_text())
    shown = [line.strip() for line in result.stdout.splitlines()
             if line.startswith("Epoch ") and line.strip().endswith("/30")]  # not callbacks' "Epoch n: ..." lines
    assert shown and shown == [f"Epoch {epoch + 1}/30" for epoch in history["epoch"]], result.stdout[-2000:]

    # Everything export and prediction need is in the run directory.
    record = json.loads((run_dir / "config.json").read_text())
    assert record["class_names"] == list(labels.FER2013)
    assert (run_dir / "labels.txt").read_text().split() == list(labels.FER2013)
    assert faces.FaceSpec.from_json((run_dir / "face_spec.json").read_text()) == faces.FER2013_FRAMING
    assert record["input_spec"]["kind"] == "image" and record["train"]["model"] == "cnn"
    assert record["label_counts"]["train"]["classes"] == {name: 40 for name in labels.FER2013}
    assert record["class_weights"] == {name: pytest.approx(1.0) for name in labels.FER2013}
    assert history["epoch"] == list(range(len(history["epoch"]))) and history["loss"][-1] < history["loss"][0]
    assert (run_dir / "model.keras").exists() and (run_dir / "best_checkpoint.index").exists()
    assert list((run_dir / "logs").rglob("events.out.tfevents.*"))
    assert (run_dir / "backup" / "chief").is_dir()  # the last epoch's state: a larger --epochs continues

    output = tmp_path / "test.json"
    # The command's main() in this process: a process of its own would add only TensorFlow's start-up.
    assert cli.main(["evaluate", "--run", str(run_dir), "--split", "test", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(output.read_text())
    # 7 balanced classes: chance is 14%. The stripes are learnt to well above 80% in 30 short epochs.
    assert report["examples"] == 56 and report["accuracy"] >= 0.8, report["accuracy"]
    assert np.array(report["confusion_matrix"]).sum() == 56
    assert set(report["per_class"]) == set(labels.FER2013)
    assert Path(report["confusion_matrix_png"]).read_bytes()[:4] == b"\x89PNG"
    assert f"accuracy {report['accuracy']:.4f}" in printed

    # Beside --output: one row per test example, named by its fer2013 CSV row, with that row's true class.
    assert report["predictions_csv"] == str(tmp_path / "predictions-test.csv")
    with open(report["predictions_csv"], newline="") as file:
        rows = list(csv.DictReader(file))
    test_split = tfds.builder("fer2013/original", data_dir=str(training_data)).as_dataset(split="test")
    true_by_row = {int(example["index"]): labels.FER2013[int(example["label"])]
                   for example in test_split.as_numpy_iterator()}
    assert sorted(int(row["index"]) for row in rows) == sorted(true_by_row)
    assert all(row["true"] == true_by_row[int(row["index"])] for row in rows)
    assert sum(row["true"] == row["predicted"] for row in rows) / len(rows) == pytest.approx(report["accuracy"])


MIRRORED_SCRIPT = """
import json, sys
from emopy.pipeline import train
record = train.run(train.TrainConfig(dataset="fer2013", model="cnn", out=sys.argv[1], data_dir=sys.argv[2],
                                     strategy="mirrored", epochs=5, batch_size=16, seed=1))
print(json.dumps({"strategy": record["strategy"], "loss": record["history"]["loss"]}))
"""


@pytest.mark.scale  # two logical CPUs in a process of their own, about 40 s: CI runs it with the scale checks
def test_mirrored_on_two_logical_cpus_trains_and_the_loss_decreases(training_data, tmp_path):
    outcome = run_on_two_logical_cpus(MIRRORED_SCRIPT, str(tmp_path / "run"), str(training_data))
    assert outcome["strategy"] == {"name": "mirrored", "replicas": 2, "global_batch_size": 32}
    assert outcome["loss"][-1] < outcome["loss"][0]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.scale  # 47 s of two worker processes; CI runs it with the scale checks
def test_multi_worker_two_local_processes_train_and_both_finish(training_data, tmp_path):
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    run_dir = tmp_path / "run"
    command = ["emopy", "train", "--dataset", "fer2013", "--data-dir", str(training_data), "--model", "cnn",
               "--out", str(run_dir), "--strategy", "multi_worker", "--epochs", "3", "--batch-size", "16"]
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env={**os.environ, "TF_CONFIG": tf_config}))
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    record = json.loads((run_dir / "config.json").read_text())
    assert record["strategy"] == {"name": "multi_worker", "replicas": 2, "global_batch_size": 32}
    assert json.loads((run_dir / "history.json").read_text())["epoch"] == [0, 1, 2]
    assert (run_dir / "model.keras").exists()
    # The second worker wrote its copies to a scratch directory, not over the chief's.
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith("emopy-worker")) == []


@pytest.mark.parametrize("model, dataset", [
    ("landmarks", "fer2013"),
    ("multi_input", "fer2013+ck_plus"),
    ("landmark_lstm", "ck_plus/sequences"),
    ("image_lstm", "ck_plus/sequences"),
])
def test_each_input_kind_trains_from_its_dataset(training_data, tmp_path, model, dataset):
    config = train.TrainConfig(dataset=dataset, model=model, out=str(tmp_path / "run"), data_dir=str(training_data),
                               epochs=2, batch_size=4, sequence_length=4)
    record = train.run(config)
    assert len(record["history"]["loss"]) == 2 and np.isfinite(record["history"]["loss"]).all()
    reloaded = run_dir.RunDir.open(tmp_path / "run").load_model()
    spec = config.input_spec
    inputs, _, _ = next(iter(data.batches(config.data_config, "train", spec, batch_size=4, training=True,
                                          class_weights=record["class_weights"])))
    probabilities = reloaded(inputs).numpy()
    assert probabilities.shape == (4, len(record["class_names"]))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_joint_training_resizes_ck_plus_and_counts_contempt_as_left_out(training_data):
    config = data.DataConfig("fer2013+ck_plus", data_dir=str(training_data))
    assert data.class_names(config) == labels.FER2013
    ck_plus_alone = data.label_counts(data.DataConfig("ck_plus", data_dir=str(training_data)), "train")
    joint = data.label_counts(config, "train")
    assert joint["left_out"] == ck_plus_alone["classes"]["contempt"] > 0
    assert sum(joint["classes"].values()) == 280 + sum(ck_plus_alone["classes"].values()) - joint["left_out"]
    spec = models.InputSpec(kind="image_landmarks")
    records = list(data.examples(config, "train", spec).as_numpy_iterator())
    assert {record["image"].shape for record in records} == {(48, 48, 1)}
    ck_records = records[280:]
    assert ck_records and all(0 <= r["landmarks"].min() and r["landmarks"].max() < 48 for r in ck_records)


# 3 folds trained, about 40 s; WESAD's leave-one-subject-out runs the same code by default: CI runs it with the scale
# checks.
@pytest.mark.scale
def test_ck_plus_cross_validation_is_subject_independent(training_data, tmp_path, capsys):
    flags = ["--dataset", "ck_plus", "--data-dir", str(training_data), "--model", "cnn", "--out", str(tmp_path / "cv"),
             "--cv", "3", "--epochs", "1", "--batch-size", "4"]
    result = emopy("train", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    accuracies = [fold["accuracy"] for fold in summary["folds"]]
    assert [fold["fold"] for fold in summary["folds"]] == [0, 1, 2]
    assert summary["accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert summary["accuracy_std"] == pytest.approx(np.std(accuracies))
    assert f"3-fold subject-independent accuracy: {np.mean(accuracies):.4f} ± {np.std(accuracies):.4f}" in result.stdout
    # Each subject is tested exactly once: the test folds together hold every labelled frame once.
    config = data.DataConfig("ck_plus", data_dir=str(training_data), folds=3)
    everything = sum(sum(data.label_counts(config, split)["classes"].values()) for split in data.SPLITS)
    assert sum(fold["examples"] for fold in summary["folds"]) == everything == 48
    for fold in range(3):
        subjects = {}
        for split in data.SPLITS:
            fold_config = data.DataConfig("ck_plus", data_dir=str(training_data), folds=3, test_fold=fold)
            ds = data._read(data.CK_PLUS_EMOTION, fold_config, split)
            subjects[split] = {example["subject"] for example in ds.as_numpy_iterator()}
        assert not subjects["train"] & subjects["test"] and not subjects["validation"] & subjects["test"]
        assert not subjects["train"] & subjects["validation"] and all(subjects.values())

    # A rerun keeps the finished folds (their models' bytes and times, their logs), and summarises them again.
    def folds_written() -> list[tuple]:
        return [((fold / "model.keras").read_bytes(), (fold / "model.keras").stat().st_mtime_ns,
                 (fold / "history.csv").read_text()) for fold in sorted((tmp_path / "cv").glob("fold-*"))]

    before = folds_written()
    assert cli.main(["train", *flags]) == 0
    out = capsys.readouterr().out
    assert out.count("holds a finished run (1 of 1 epochs trained)") == 3 and "Epoch" not in out, out
    assert len(before) == 3 and folds_written() == before
    assert json.loads((tmp_path / "cv" / "cv.json").read_text()) == summary


def test_facs_task_trains_a_multi_label_head_and_reports_per_au_f1(training_data, tmp_path, capsys):
    # The commands run in this process (cli.main): test_training_learns_the_signal_and_evaluate_reports_it runs them
    # as commands, and each process would cost TensorFlow's import, about 7 s on 2 cores.
    run_dir = tmp_path / "facs"
    assert cli.main(["train", "--dataset", "ck_plus/facs", "--task", "facs", "--data-dir", str(training_data),
                     "--model", "cnn", "--out", str(run_dir), "--epochs", "2", "--batch-size", "4"]) == 0
    assert (run_dir / "labels.txt").read_text().split() == [f"AU{au}" for au in labels.FACS_ACTION_UNITS]
    capsys.readouterr()
    assert cli.main(["evaluate", "--run", str(run_dir), "--split", "train"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((run_dir / "evaluation-train.json").read_text())
    assert set(report["per_au"]) == {f"AU{au}" for au in labels.FACS_ACTION_UNITS}
    # Every AU coded in the generated sequences is counted in the support.
    assert report["per_au"]["AU12"]["support"] > 0 and report["per_au"]["AU27"]["support"] == 0
    assert 0.0 <= report["mean_f1"] <= 1.0 and "mean F1 over AUs" in printed
    assert "predictions_csv" not in report and not list(run_dir.glob("predictions-*.csv"))


def test_mistakes_are_one_line_errors(training_data, tmp_path, capsys):
    cases = [
        (["--dataset", "mnist", "--model", "cnn"], "unknown dataset 'mnist'"),
        (["--dataset", "fer2013", "--model", "resnet"], "unknown model 'resnet'"),
        (["--dataset", "fer2013", "--model", "image_lstm"], "need a sequence dataset"),
        (["--dataset", "fer2013", "--model", "cnn", "--labels", "valence"], "unknown label scheme 'valence'"),
        (["--dataset", "fer2013", "--model", "cnn", "--task", "facs"], "--task facs needs --dataset ck_plus/facs"),
    ]
    for number, (args, message) in enumerate(cases):
        status = cli.main(["train", *args, "--data-dir", str(training_data), "--out", str(tmp_path / str(number)),
                           "--epochs", "1"])
        stderr = capsys.readouterr().err
        assert status == 2 and stderr.startswith("emopy: error: ") and message in stderr, stderr
        assert not (tmp_path / str(number)).exists()  # refused before anything was written

    empty = tmp_path / "no_datasets"
    empty.mkdir()
    assert cli.main(["train", "--dataset", "fer2013/ferplus", "--model", "cnn", "--data-dir", str(empty),
                     "--out", str(tmp_path / "unbuilt"), "--epochs", "1"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("emopy: error: ") and "fer2013/ferplus is not built in" in stderr, stderr
    assert not (tmp_path / "unbuilt").exists()
    assert cli.main(["evaluate", "--run", str(tmp_path / "nothing")]) == 2
    assert "config.json does not exist" in capsys.readouterr().err


def test_a_different_run_into_an_existing_run_directory_is_refused(training_data, tmp_path):
    run_dir = tmp_path / "run"
    first = train.TrainConfig(dataset="fer2013", model="landmarks", out=str(run_dir), data_dir=str(training_data),
                              epochs=1, batch_size=32)
    train.run(first)
    with pytest.raises(ValueError, match="different settings \\(model\\)"):
        train.run(train.TrainConfig(dataset="fer2013", model="cnn", out=str(run_dir), data_dir=str(training_data),
                                    epochs=1, batch_size=32))


@pytest.mark.scale  # two runs trained and compared, about 35 s: CI runs it with the scale checks
def test_the_seed_option_makes_runs_repeat_exactly(training_data, tmp_path):
    losses = []
    for attempt in ("a", "b"):
        result = emopy("train", "--dataset", "fer2013", "--data-dir", str(training_data), "--model", "landmarks",
                       "--out", str(tmp_path / attempt), "--epochs", "2", "--batch-size", "32", "--seed", "7")
        assert result.returncode == 0, result.stderr[-3000:]
        losses.append(json.loads((tmp_path / attempt / "history.json").read_text())["loss"])
    assert losses[0] == losses[1]


def test_a_run_whose_model_took_preprocessed_inputs_is_refused_with_a_clear_error(tmp_path):
    """Models before the crop contract took [0, 1] floats and landmark features; exporting one would serve
    wrong answers."""
    spec = models.InputSpec(kind="image")
    image = keras.Input(shape=(48, 48, 1), name="image")  # float pixels in [0, 1], as emopy's old models took
    old = keras.Model(image, keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(image)))
    old.save(str(tmp_path / run_dir.MODEL_FILE))
    (tmp_path / run_dir.CONFIG_FILE).write_text(json.dumps({"input_spec": dataclasses.asdict(spec)}))
    with pytest.raises(ValueError, match="older emopy.*retrain"):
        run_dir.RunDir.open(tmp_path).load_model()


def test_ferplus_trains_on_the_vote_shares_and_reports_accuracy_on_majority_labels(training_data, tmp_path):
    # In this process (cli.main), as the facs test: the commands themselves are run by the test of the signal.
    run_dir = tmp_path / "votes"
    assert cli.main(["train", "--dataset", "fer2013/ferplus", "--labels", "fer2013_contempt", "--data-dir",
                     str(training_data), "--model", "cnn", "--out", str(run_dir), "--epochs", "20", "--batch-size",
                     "32", "--seed", "1"]) == 0
    record = json.loads((run_dir / "config.json").read_text())
    assert record["targets"] == "votes" and record["train"]["targets"] is None  # votes: the dataset's default
    assert record["class_names"] == list(labels.FER2013_CONTEMPT)
    # Class weights follow the majority labels: the fixture's are fer2013's, so contempt has none.
    assert record["label_counts"]["train"]["classes"] == {**{name: 40 for name in labels.FER2013}, "contempt": 0}
    history = json.loads((run_dir / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]
    # Cross-entropy against a 0.7/0.3 target cannot fall below that target's entropy (0.61 nats).
    assert min(history["loss"]) > 0.5

    output = tmp_path / "validation.json"
    assert cli.main(["evaluate", "--run", str(run_dir), "--split", "validation", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    # Scored on majority labels, the faces' own classes (chance: 14 %).
    assert report["examples"] == 56 and report["accuracy"] >= 0.6, report["accuracy"]
    assert sum(values["support"] for values in report["per_class"].values()) == 56


def test_vote_targets_are_shares_topped_by_the_majority_label(training_data):
    spec = models.InputSpec(kind="image")
    for scheme in ("ferplus", "fer2013_contempt", "fer2013"):
        votes = data.DataConfig("fer2013/ferplus", data_dir=str(training_data), labels=scheme)
        majority = dataclasses.replace(votes, targets="majority")
        assert (votes.target_kind, majority.target_kind) == ("votes", "majority")
        soft = np.concatenate([y for _, y, *_ in data.batches(votes, "validation", spec, batch_size=64)])
        ids = np.concatenate([y for _, y, *_ in data.batches(majority, "validation", spec, batch_size=64)])
        assert soft.shape == (56, len(data.class_names(votes))) and np.allclose(soft.sum(axis=1), 1.0)
        assert (soft.argmax(axis=1) == ids).all()
        assert np.allclose(np.sort(soft, axis=1)[:, -2:], [0.3, 0.7], atol=2e-3)


def test_vote_targets_need_a_dataset_with_votes(training_data, tmp_path, capsys):
    with pytest.raises(ValueError, match="--targets votes needs a dataset with crowd votes"):
        data.DataConfig("fer2013", targets="votes")
    assert cli.main(["train", "--dataset", "fer2013", "--targets", "votes", "--data-dir", str(training_data),
                     "--model", "cnn", "--out", str(tmp_path / "run")]) != 0
    assert "--targets votes needs a dataset with crowd votes" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert train.TrainConfig.__dataclass_fields__["targets"].metadata["choices"] == labels.TARGETS
