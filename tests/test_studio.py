"""The studio's work behind its pages, without a browser: the form checked against the registries, paths kept
inside --runs, processes started without a shell and their failures recorded, uploads held to the pixel limit."""

from __future__ import annotations

import json
import shutil
import struct
import time
import zlib

import pytest

from emopy_tfds.data import sample_photo
from emopy.pipeline import train_config
from emopy.studio import forms
from emopy.studio import runs as studio_runs
from emopy.studio.jobs import Jobs
from emopy.studio.try_models import TryModels, face_bars, model_choices


@pytest.fixture
def folder(tmp_path) -> studio_runs.RunsFolder:
    return studio_runs.RunsFolder.at(tmp_path / "runs")


def _defaults() -> dict:
    return {setting.name: setting.default for setting in forms.form_settings()}


def test_the_form_has_every_train_flag_but_the_folders_and_the_registries_choices():
    names = [setting.name for setting in forms.form_settings()]
    assert names == [s.name for s in train_config.settings() if s.name not in ("out", "data_dir")]
    by_name = {setting.name: setting for setting in forms.form_settings()}
    assert "vgg_small" in by_name["model"].choices and "fer2013/ferplus" in by_name["dataset"].choices
    assert by_name["augmentation"].choices == train_config.AUGMENTATIONS
    assert by_name["epochs"].default == 30 and by_name["batch_size"].default == 64


def test_a_form_becomes_the_train_command_line_with_only_what_differs_from_the_defaults(folder):
    values = {**_defaults(), "dataset": "fer2013", "model": "vgg_small", "epochs": 2.0, "width": 0.5, "dropout": "",
              "augment": False, "lr_schedule": "cosine"}
    arguments = forms.train_arguments(values, folder, "run-1", "/data")
    assert arguments == ["train", "--out", str(folder.root / "run-1"), "--data-dir", "/data", "--dataset", "fer2013",
                         "--model", "vgg_small", "--epochs", "2", "--width", "0.5", "--lr-schedule", "cosine",
                         "--no-augment"]
    # What the command line parses is what the form said.
    import argparse

    parser = argparse.ArgumentParser()
    train_config.add_arguments(parser)
    config = train_config.from_args(parser.parse_args(arguments[1:]))
    assert (config.epochs, config.width, config.dropout, config.augment) == (2, 0.5, None, False)


@pytest.mark.parametrize("change, message", [
    ({"model": "resnet"}, "--model: 'resnet' is not one of cnn, landmarks"),
    ({"dataset": "imagenet"}, "--dataset: 'imagenet' is not one of fer2013"),
    ({"strategy": "everywhere"}, "--strategy: 'everywhere' is not one of auto"),
    ({"epochs": "many"}, "--epochs: 'many' is not a number"),
    ({"epochs": 2.5}, "--epochs: 2.5 is not a whole number"),
    ({"epochs": 0}, "--epochs: 0 is outside 1-10000"),
    ({"learning_rate": "nan"}, "--learning-rate: 'nan' is not a finite number"),
    ({"model": "landmarks", "dataset": "ck_plus", "width": 2}, "model 'landmarks' takes no width"),
    ({"augment": "yes"}, "--no-augment: 'yes' is not true or false"),
])
def test_a_value_outside_the_registry_is_refused_naming_the_flag(folder, change, message):
    values = {**_defaults(), "dataset": "fer2013", "model": "cnn", **change}
    with pytest.raises(ValueError, match=message):
        forms.train_arguments(values, folder, "run-1", "/data")


@pytest.mark.parametrize("name", ["../escape", "/etc", "a/b", "", ".hidden", "x" * 65, "run;rm -rf /"])
def test_run_names_are_plain_folder_names(folder, name):
    with pytest.raises(ValueError, match="is not a name the studio takes"):
        forms.train_arguments({**_defaults(), "dataset": "fer2013", "model": "cnn"}, folder, name, "/data")


def test_paths_cannot_leave_the_folder(folder, tmp_path):
    (tmp_path / "secret").mkdir()
    (folder.root / "link").symlink_to(tmp_path / "secret")
    for path in ("../secret", "/etc/passwd", "link", "link/x", "a/../../secret"):
        with pytest.raises(studio_runs.OutsideError, match="outside the studio's folder"):
            folder.resolve(path)
    assert folder.resolve("a/b") == folder.root / "a" / "b"


def test_the_tune_form_is_checked_too(folder):
    arguments = forms.tune_arguments("study-1", "fer2013", ["cnn"], 4, 2, folder, "/data")
    assert arguments == ["tune", "--dataset", "fer2013", "--data-dir", "/data", "--models", "cnn", "--trials", "4",
                         "--epochs", "2", "--study", "study-1", "--out", str(folder.root / "study-1")]
    with pytest.raises(ValueError, match="choose at least one architecture"):
        forms.tune_arguments("study-1", "fer2013", [], 4, 2, folder, "/data")
    with pytest.raises(ValueError, match="unknown model"):
        forms.tune_arguments("study-1", "fer2013", ["resnet"], 4, 2, folder, "/data")
    with pytest.raises(ValueError, match="outside 1-1000"):
        forms.tune_arguments("study-1", "fer2013", ["cnn"], 5000, 2, folder, "/data")


def test_a_process_is_started_without_a_shell_and_its_failure_is_recorded_with_its_error(folder):
    jobs = Jobs()
    run = folder.resolve("run-1")
    # A shell would run the command after ";"; without one it is a single (unknown) dataset name.
    marker = folder.root / "shell-ran"
    jobs.start(run, ["train", "--dataset", f"x; touch {marker}", "--model", "cnn", "--out", str(run)])
    with pytest.raises(ValueError, match="run-1 is already running"):
        jobs.start(run, ["train"])
    deadline = time.monotonic() + 120
    while not (run / studio_runs.EXIT_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert json.loads((run / studio_runs.EXIT_FILE).read_text())["returncode"] == 2
    assert studio_runs.run_state(run) == "failed"
    assert "emopy: error: unknown dataset 'x; touch" in studio_runs.log_tail(run)
    assert not marker.exists()
    # The Train page shows the failed run's error, and the studio keeps answering.
    from emopy.studio.pages import Studio

    studio = Studio(folder.root, "127.0.0.1", "unused")
    status, _, log = studio.watch("run-1")
    assert "failed" in status and '<pre class="emopy-error">' in status and "unknown dataset" in status
    _, bars, _ = studio.try_photo(str(sample_photo()), "shipped: ferplus")
    assert "happy" in bars


def test_a_stopped_process_is_told_from_a_failed_one(folder):
    jobs = Jobs()
    run = folder.resolve("run-2")
    # `emopy studio` runs until stopped; stopped while it starts, its exit is recorded as a stop, not a failure.
    jobs.start(run, ["studio", "--runs", str(folder.root / "inner"), "--port", "0"])
    assert jobs.running(run)
    assert jobs.stop(run) and not jobs.running(run)
    assert not jobs.stop(run)  # nothing left to stop
    deadline = time.monotonic() + 10
    while not (run / studio_runs.EXIT_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    ended = json.loads((run / studio_runs.EXIT_FILE).read_text())
    assert ended["stopped"] and ended["returncode"] != 0
    assert studio_runs.run_state(run) == "stopped"


def _png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height gray pixels, with one empty data chunk: Pillow reads its size."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_the_try_page_answers_a_photo_and_refuses_a_bomb_before_decoding(folder, tmp_path):
    photo = str(sample_photo())
    models = TryModels(folder)
    choices = model_choices(folder)
    assert choices[:2] == ["shipped: ferplus", "shipped: fer2013"]
    picture, table = models.answer(photo, choices[0])
    assert picture.ndim == 3 and list(table["top_emotion"]) == ["happy"]
    bars = face_bars(table, models.recognizer(choices[0]).classes)
    assert "Face #0: <span class=\"emopy-top\">happy</span>" in bars and "valence" in bars and "arousal" in bars
    row = table.iloc[0]
    assert (f"positive valence <b>{row['positive_valence']:.2f}</b>" in bars
            and f"negative valence <b>{row['negative_valence']:.2f}</b>" in bars)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_bomb(100_000, 100_000))
    with pytest.raises(ValueError, match="bomb.png: image .*too large to decode safely"):
        models.answer(str(bomb), choices[0])
    with pytest.raises(ValueError, match="'shipped: mine' is not a model the studio offers"):
        models.answer(photo, "shipped: mine")
    for choice in ("run: ../../elsewhere", "export: ../../elsewhere"):
        with pytest.raises(studio_runs.OutsideError):
            models.answer(photo, choice)


def test_the_compare_table_lists_finished_runs_with_their_settings_and_metrics(runs, tmp_path):
    root = tmp_path / "compared"
    shutil.copytree(runs["cnn"], root / "cnn")  # a run directory as emopy train left it
    folder = studio_runs.RunsFolder.at(root)
    table = studio_runs.runs_table(folder)
    row = table.set_index("run").loc["cnn"]
    assert row["state"] == "finished" and row["model"] == "cnn" and row["epochs_trained"] == 1
    assert 0 <= row["best_val_accuracy"] <= 1
    curves = studio_runs.history_frame(folder, [root / "cnn"])
    assert set(curves["metric"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    progress = studio_runs.progress(root / "cnn")
    assert progress["fraction"] == 1.0 and progress["text"] == "1/1 epochs trained"
    assert model_choices(folder)[-1] == "run: cnn"


def test_compare_filters_and_sorts_runs_and_shows_a_studys_trials_and_their_importance(runs, tmp_path):
    import optuna

    from emopy.pipeline import tune
    from emopy.studio.pages import Studio

    root = tmp_path / "compared"
    for name in ("cnn", "multi_input"):
        shutil.copytree(runs[name], root / name)
    studio = Studio(root, "127.0.0.1", "unused")
    assert list(studio.compare_table("multi", "run", False)["run"]) == ["multi_input"]
    assert list(studio.compare_table("", "run", True)["run"]) == ["multi_input", "cnn"]
    curves = studio.compare_curves(["cnn", "multi_input", "../outside"], "val_accuracy")
    assert set(curves["run"]) == {"cnn", "multi_input"} and list(curves.columns) == ["epoch", "value", "run"]

    # A study's trials and the importance of each setting, read from its database.
    (root / "study-1").mkdir()
    study = tune.open_study("study-1", tune.default_storage(root / "study-1"))
    distributions = {"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
                     "batch_size": optuna.distributions.CategoricalDistribution((32, 64))}
    for index, (rate, batch) in enumerate([(1e-4, 32), (1e-3, 64), (1e-2, 32), (3e-3, 64), (5e-4, 32)]):
        study.add_trial(optuna.trial.create_trial(value=0.2 + 20 * rate, params={"learning_rate": rate,
                                                                                 "batch_size": batch},
                                                  distributions=distributions, user_attrs={"run_dir": f"t{index}"}))
    trials, importance = studio.study_view("study-1")
    assert len(trials) == 5 and "params_learning_rate" in trials.columns
    assert importance.iloc[0]["setting"] == "learning_rate"


def test_the_dashboards_the_compare_page_links_to_answer(tmp_path):
    import urllib.request

    from emopy.pipeline import tune
    from emopy.studio.pages import Studio

    studio = Studio(tmp_path / "runs", "127.0.0.1", "unused")
    (studio.folder.root / "study-1").mkdir()
    tune.open_study("study-1", tune.default_storage(studio.folder.root / "study-1"))
    links = studio.start_study_dashboard("study-1")
    links = studio.start_tensorboard()
    assert 'id="link-tensorboard"' in links and 'id="link-optuna-dashboard-study-1"' in links
    for kind, url in studio.dashboards.items():
        assert url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200, kind
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def test_a_runs_settings_loaded_into_the_form_give_back_the_same_run_so_it_resumes(runs, tmp_path):
    import argparse

    from emopy.studio.pages import Studio

    root = tmp_path / "loaded"
    shutil.copytree(runs["cnn"], root / "cnn")
    studio = Studio(root, "127.0.0.1", str(tmp_path / "data"))
    name, *values = studio.load_settings("cnn")
    settings = dict(zip([setting.name for setting in forms.form_settings()], values))
    arguments = forms.train_arguments(settings, studio.folder, name, studio.data_dir)
    parser = argparse.ArgumentParser()
    train_config.add_arguments(parser)
    config = train_config.from_args(parser.parse_args(arguments[1:]))
    recorded = studio_runs.RunDir.open(root / "cnn").settings
    # Every setting but where the run and its data are is the run's own: emopy train resumes it, not refuses it.
    assert {k: v for k, v in vars(config).items() if k not in ("out", "data_dir")} == \
        {k: v for k, v in recorded.items() if k in vars(config) and k not in ("out", "data_dir")}
    assert config.out == str(root / "cnn")

    # The confusion matrices `emopy evaluate --run` draws beside a run are what Compare shows for it.
    (root / "cnn" / "confusion-validation.png").write_bytes(b"\x89PNG")
    assert studio.confusions(["cnn"]) == [(str(root / "cnn" / "confusion-validation.png"), "cnn: confusion-validation")]
