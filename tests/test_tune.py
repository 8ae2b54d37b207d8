"""`emopy tune`: the search space read from the registry, pruning by epoch, trials as run directories, and two
worker processes sharing one SQLite study, one of them killed."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import tf_keras as keras

from emopy import models
from emopy.pipeline import train, tune
from emopy.pipeline.run_dir import RunDir
from emopy.pipeline.train_config import AUGMENTATIONS, LR_SCHEDULES, TrainConfig


def test_the_search_space_comes_from_the_registry_and_the_train_settings():
    space = tune.search_space("fer2013", ["vgg_small", "cnn"])
    assert space["model"] == ("vgg_small", "cnn")
    assert set(space["lr_schedule"]) == set(LR_SCHEDULES) == set(train.LR_SCHEDULES)
    assert set(space["augmentation"]) == {"none", *AUGMENTATIONS}
    assert {"width", "dropout", "learning_rate", "batch_size", "class_weights"} <= set(space)
    assert "targets" not in space  # fer2013 has no votes
    assert tune.search_space("fer2013/ferplus", ["cnn"])["targets"] == ("votes", "majority")
    # The landmark network takes neither a width nor a dropout: a study of it alone searches neither.
    assert not {"width", "dropout"} & set(tune.search_space("ck_plus", ["landmarks"]))
    with pytest.raises(ValueError, match="unknown model 'resnet'; known: cnn"):
        tune.search_space("fer2013", ["resnet"])


def test_each_sampled_trial_is_a_train_config_the_architecture_takes(tmp_path):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = tune.search_space("fer2013/ferplus", ["landmarks", "cnn"])
    base = TrainConfig(dataset="fer2013/ferplus", model="cnn", out="unused", epochs=2)
    seen = set()
    for _ in range(20):
        trial = study.ask()
        settings = tune.suggest(trial, space)
        config = tune.trial_config(base, settings, tmp_path / f"trial-{trial.number:04d}")
        models.check_hyperparameters(config.model, config.width, config.dropout)
        assert config.out.endswith(f"trial-{trial.number:04d}") and config.epochs == 2
        assert config.augment == (settings["augmentation"] != "none")
        if config.model == "landmarks":
            assert "width" not in trial.params and config.width == 1.0 and config.dropout is None
        seen.add(config.model)
        study.tell(trial, 0.5)
    assert seen == {"landmarks", "cnn"}


def test_width_and_dropout_reach_the_layers():
    spec = models.InputSpec(kind="image")
    narrow = models.build("vgg_small", spec, 7, width=0.5, dropout=0.3)
    wide = models.build("vgg_small", spec, 7)
    assert narrow.count_params() < wide.count_params() / 3
    assert {layer.rate for layer in narrow.layers if isinstance(layer, keras.layers.Dropout)} == {0.3}
    assert models.build("cnn", spec, 7, width=2.0).count_params() > 3 * models.build("cnn", spec, 7).count_params()
    with pytest.raises(ValueError, match="model 'landmarks' takes no width; those that do: cnn, vgg, vgg_small"):
        models.check_hyperparameters("landmarks", width=2.0)
    with pytest.raises(ValueError, match="dropout 1.5 is outside"):
        models.check_hyperparameters("cnn", dropout=1.5)


def test_a_study_that_every_trial_would_fail_is_refused_before_it_starts(training_data, tmp_path):
    base = TrainConfig(dataset="fer2013", model="cnn", out=str(tmp_path / "study"), data_dir=str(tmp_path), epochs=1)
    with pytest.raises(FileNotFoundError, match="fer2013/original is not built in"):
        tune.run(base, ["cnn"], trials=1)
    base = TrainConfig(dataset="fer2013", model="cnn", out=str(tmp_path / "study"), data_dir=str(training_data))
    with pytest.raises(ValueError, match="'landmark_sequence' inputs need a sequence dataset"):
        tune.run(base, ["cnn", "landmark_lstm"], trials=1)
    assert not list((tmp_path / "study").glob("trial-*"))


def test_a_trial_below_the_median_is_pruned_at_the_epochs_end_and_keeps_its_model():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    distribution = optuna.distributions.CategoricalDistribution(("cnn",))
    study.add_trial(optuna.trial.create_trial(value=0.9, params={"model": "cnn"},
                                              distributions={"model": distribution},
                                              intermediate_values={0: 0.8, 1: 0.9}))
    trial = study.ask()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    pruning = tune.PruneByEpoch(trial, epochs=5)
    x, y = np.zeros((8, 2), "float32"), np.zeros(8, "int64")
    history = model.fit(x, y, validation_data=(x, 1 - y), epochs=5, verbose=0, callbacks=[pruning])
    # Validation accuracy 0 against the median 0.8: stopped after the first epoch, as an early stop would.
    assert pruning.pruned_at == 0 and len(history.history["loss"]) == 1
    assert study.trials[-1].intermediate_values == {0: 0.0}
    # On its last epoch a trial is not pruned: it has cost all it will, and its value counts.
    last = tune.PruneByEpoch(study.ask(), epochs=1)
    model.fit(x, y, validation_data=(x, 1 - y), epochs=1, verbose=0, callbacks=[last])
    assert last.pruned_at is None


def _tune(out: Path, data_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(["emopy", "tune", "--dataset", "fer2013", "--data-dir", str(data_dir), "--models", "cnn",
                             "--epochs", "2", "--out", str(out), "--study", "shared", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _trial_records(out: Path) -> dict[str, dict]:
    records = {}
    for path in sorted(out.glob("trial-*/trial.json")):
        try:
            records[path.parent.name] = json.loads(path.read_text())
        except ValueError:  # being written
            continue
    return records


def _open_study_when_all_are_ready(url: str, ready, errors) -> None:
    ready.wait()
    try:
        tune.open_study(tune.DEFAULT_STUDY, url)
    except Exception as error:  # noqa: BLE001 - the parent reports whatever a worker met
        errors.put(f"{type(error).__name__}: {error}"[:300])


def test_workers_that_start_together_on_a_new_database_all_open_the_study(tmp_path):
    # Optuna does not serialise making the tables and stamping the schema: without retries, most of these rounds
    # lose a worker to "table studies already exists" or a duplicate alembic_version row.
    context = multiprocessing.get_context("fork")
    for round_ in range(3):
        url = tune.default_storage(tmp_path / f"round-{round_}")
        (tmp_path / f"round-{round_}").mkdir()
        ready, errors = context.Barrier(4), context.Queue()
        workers = [context.Process(target=_open_study_when_all_are_ready, args=(url, ready, errors)) for _ in range(4)]
        # A forked child that garbage-collects TensorFlow objects it inherited calls into a runtime whose threads
        # stayed in the parent, and can segfault (it did once in a full run): frozen, they are never collected there.
        gc.freeze()
        try:
            for worker in workers:
                worker.start()
        finally:
            gc.unfreeze()
        for worker in workers:
            worker.join(timeout=120)
        assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
        assert errors.empty(), errors.get()
        assert optuna.load_study(study_name=tune.DEFAULT_STUDY, storage=url).study_name == tune.DEFAULT_STUDY


@pytest.mark.scale
def test_two_workers_share_one_study_and_a_killed_ones_trial_is_resumed_by_the_other(training_data, tmp_path):
    out = tmp_path / "study"
    first = _tune(out, training_data, "--trials", "5")
    second = _tune(out, training_data, "--trials", "5")
    # Kill the first worker in the middle of a trial of its own, once the study has finished trials.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        records = _trial_records(out)
        finished = [r for r in records.values() if r["state"] != "running"]
        running = [name for name, r in records.items() if r["state"] == "running" and r["worker"]["pid"] == first.pid
                   and (out / name / "progress.json").exists()]
        if finished and running:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the first worker never got to a second trial: {first.communicate(timeout=60)[0][-2000:]}")
    finished_before = {name: r["value"] for name, r in _trial_records(out).items() if r["state"] != "running"}
    killed = running[0]
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()
    output = second.communicate(timeout=600)[0]
    assert second.returncode == 0, output[-3000:]
    # Once the dead worker's heartbeat is stale (tune.GRACE), the next worker to start a trial fails the killed
    # one and retries it first: a third worker, started as a user would start one more.
    time.sleep(max(0.0, killed_at + tune.GRACE + 1 - time.monotonic()))
    third = _tune(out, training_data, "--trials", "6")
    output += third.communicate(timeout=600)[0]
    assert third.returncode == 0, output[-3000:]

    study = optuna.load_study(study_name="shared", storage=tune.default_storage(out))
    states = optuna.trial.TrialState
    done = [t for t in study.trials if t.state in (states.COMPLETE, states.PRUNED)]
    assert len(done) >= 6
    # No trial ran twice: one run directory per finished trial, and each trial of the study is in one of them.
    directories = [t.user_attrs["run_dir"] for t in done]
    assert len(set(directories)) == len(directories)
    records = _trial_records(out)
    # Every trial finished before the kill is still there, with its value.
    for name, value in finished_before.items():
        assert records[name]["value"] == value
    # The killed trial was failed by its stale heartbeat, retried with the same settings, and resumed in its own
    # run directory: its history has each epoch once.
    failed = [t for t in study.trials if t.state == states.FAIL]
    assert [t.user_attrs["run_dir"] for t in failed] == [killed]
    assert killed in directories
    assert records[killed]["state"] in ("complete", "pruned") and records[killed]["worker"]["pid"] != first.pid
    history = json.loads((out / killed / "history.json").read_text())
    assert history["epoch"] == list(range(len(history["epoch"])))
    # The second worker ran trials beside the first (whose killed trial the third worker took over).
    assert second.pid in {r["worker"]["pid"] for r in records.values()}

    # The summary names the best trial, which `emopy export --run` takes as any run.
    assert "pruning saved" in output and "export it: emopy export --run" in output
    summary = json.loads((out / "study.json").read_text())
    best = RunDir.open(summary["best"]["path"])
    assert best.record["finished"]["epochs"] == 2 and best.model_file.exists()
    assert summary["complete"] + summary["pruned"] == len(done)
    # Each trial is a session of TensorBoard's HParams dashboard.
    assert any("events" in path.name for path in (out / killed / "logs").iterdir())
