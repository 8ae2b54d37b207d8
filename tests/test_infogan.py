"""The InfoGAN: its train step, saving, `emopy train --model infogan` (resumed, mirrored) and `emopy generate`."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from emopy import models
from emopy.models import infogan
from emopy.pipeline import cli, data, generate, infogan_faces, train
from emopy.pipeline.run_dir import RunDir

from two_cpus import run_on_two_logical_cpus

CLASSES = 8


def _batch(size: int = 8, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (size, 48, 48, 1), dtype=np.uint8)}, rng.integers(0, CLASSES, size)


def test_a_train_step_moves_both_networks_and_the_saved_model_makes_the_same_faces(tmp_path):
    model = models.build("infogan", models.InputSpec(kind="image"), CLASSES)
    assert model.input_names == ["image"] and model.output.dtype == tf.float32
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), models.loss("infogan"),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    generator_before = [w.numpy().copy() for w in model.generator.trainable_weights]
    critic_before = [w.numpy().copy() for w in model.critic.trainable_weights]
    logs = model.train_on_batch(*_batch(), return_dict=True)
    assert {"loss", "accuracy", "critic_loss", "generator_loss", "info_loss", "fake_expression_accuracy"} <= set(logs)
    assert all(np.isfinite(value) for value in logs.values())
    for before, weights in ((generator_before, model.generator.trainable_weights),
                            (critic_before, model.critic.trainable_weights)):
        assert not [w.name for b, w in zip(before, weights) if np.array_equal(b, w.numpy())]
    # Validation reports the expression head only: no GAN losses that would read 0.
    assert set(model.evaluate(*_batch(seed=1), return_dict=True, verbose=0)) == {"loss", "accuracy"}

    faces = model.sample(np.arange(CLASSES), seed=3)
    assert faces.shape == (CLASSES, 48, 48, 1) and faces.dtype == np.uint8
    np.testing.assert_array_equal(model.sample(np.arange(CLASSES), seed=3), faces)
    assert not np.array_equal(model.sample(np.arange(CLASSES), seed=4), faces)

    path = str(tmp_path / "infogan.keras")
    model.save(path)
    loaded = keras.models.load_model(path, custom_objects=models.custom_objects(), compile=False)
    assert models.is_generative(loaded) and not models.is_generative(models.build("cnn", models.InputSpec("image"), 7))
    np.testing.assert_array_equal(loaded.sample(np.arange(CLASSES), seed=3), faces)
    x, _ = _batch(seed=2)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_under_mixed_precision_both_networks_train_with_loss_scaling():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = models.build("infogan", models.InputSpec(kind="image"), CLASSES)
        model.compile(keras.optimizers.Adam(2e-4), models.loss("infogan"))
        assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
        assert isinstance(model.generator_optimizer, keras.mixed_precision.LossScaleOptimizer)
        assert model.optimizer.inner_optimizer is not model.generator_optimizer.inner_optimizer
        logs = model.train_on_batch(*_batch(), return_dict=True)
        assert all(np.isfinite(value) for value in logs.values())
        assert model.sample(np.arange(2), seed=0).dtype == np.uint8
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_the_grid_and_tile_place_each_face():
    faces = np.stack([np.full((4, 4, 1), value, np.uint8) for value in (10, 20, 30)])
    tiled = infogan.tile(faces, 2)
    assert tiled.shape == (8, 8, 1)
    assert (tiled[:4, :4] == 10).all() and (tiled[:4, 4:] == 20).all() and (tiled[4:, :4] == 30).all()
    assert (tiled[4:, 4:] == 0).all()  # the short last row is blank
    canvas = generate.grid([("happy", faces[:2]), ("sad", faces[2:])])
    assert canvas.shape == (8, generate.LABEL_WIDTH + 8)
    assert (canvas[4:, generate.LABEL_WIDTH:generate.LABEL_WIDTH + 4] == 30).all()


@pytest.fixture(scope="module")
def infogan_run(training_data, tmp_path_factory) -> Path:
    """An InfoGAN trained for one epoch on the learnable FER+ faces, then continued to two: a continued run."""
    out = tmp_path_factory.mktemp("infogan") / "run"
    config = train.TrainConfig(dataset="fer2013/ferplus", model="infogan", out=str(out), data_dir=str(training_data),
                               epochs=1, batch_size=16, augment=False)
    train.run(config)
    record = train.run(train.TrainConfig(**{**config.__dict__, "epochs": 2}))
    assert record["history"]["epoch"] == [0, 1]
    return out


def test_emopy_train_makes_an_infogan_run_with_samples_in_tensorboard(infogan_run):
    run = RunDir.open(infogan_run)
    history = run.history()
    assert {"critic_loss", "generator_loss", "info_loss", "val_accuracy"} <= set(history)
    assert "val_critic_loss" not in history
    assert run.record["finished"] == {"epochs": 2, "epochs_trained": 2, "stopped_early": False}
    assert len(run.class_names) == 8 and "contempt" in run.class_names
    grids = []
    for event_file in (infogan_run / "logs" / "samples").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            grids += [(event.step, value) for value in event.summary.value if value.tag == "samples"]
    assert sorted(step for step, _ in grids) == [0, 1]
    grid = tf.io.decode_png(grids[-1][1].tensor.string_val[2]).numpy()
    assert grid.shape == (8 * 48, 8 * 48, 1)  # a row per expression, eight faces each
    # The continued run restored both optimizers from its backup: the generator's counts every step of both epochs.
    backup = tf.train.load_checkpoint(str(infogan_run / "backup" / "chief"))
    steps = {name: int(backup.get_tensor(f"model/{name}/_iterations/.ATTRIBUTES/VARIABLE_VALUE"))
             for name in ("optimizer", "generator_optimizer")}
    assert steps["generator_optimizer"] == steps["optimizer"] > 0


def test_generate_writes_a_grid_and_single_faces_the_same_under_a_seed(infogan_run, tmp_path, capsys):
    assert cli.main(["generate", "--run", str(infogan_run), "--all", "--count", "3", "--output",
                     str(tmp_path / "grid.png")]) == 0
    grid = cv2.imread(str(tmp_path / "grid.png"), cv2.IMREAD_UNCHANGED)
    assert grid.shape == (8 * 48, generate.LABEL_WIDTH + 3 * 48)
    assert "24 faces of neutral, happiness, surprise" in capsys.readouterr().out

    for folder in ("a", "b"):
        assert cli.main(["generate", "--run", str(infogan_run), "--emotion", "disgust", "--count", "5", "--seed", "7",
                         "--output", str(tmp_path / folder)]) == 0
    names = sorted(path.name for path in (tmp_path / "a").iterdir())
    assert names == [f"disgust-{number:04d}.png" for number in range(5)]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # Another seed, other faces; the same face is the same in a grid of every expression and alone.
    assert cli.main(["generate", "--run", str(infogan_run), "--emotion", "disgust", "--count", "5", "--seed", "8",
                     "--output", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / names[0]).read_bytes() != (tmp_path / "a" / names[0]).read_bytes()

    assert cli.main(["generate", "--run", str(infogan_run), "--emotion", "happiness", "--count", "2", "--vary", "1",
                     "--output", str(tmp_path / "sweep")]) == 0
    swept = sorted((tmp_path / "sweep").iterdir())
    assert len(swept) == 2 * generate.SWEEP_STEPS and swept[0].name.startswith("happiness-0000-code1")


def test_a_sweep_holds_the_face_and_moves_one_code(infogan_run):
    opened = infogan_faces.generator_run(infogan_run)
    model = infogan_faces.load_generator(opened)
    swept = generate.generate(model, opened.class_names, [3], count=2, seed=5, vary=0)
    assert swept.faces.shape == (2 * generate.SWEEP_STEPS, 48, 48, 1)
    assert swept.code_values[:generate.SWEEP_STEPS] == pytest.approx(list(np.linspace(-1, 1, generate.SWEEP_STEPS)))
    assert len(swept.rows) == 2 and all(len(faces) == generate.SWEEP_STEPS for _, faces in swept.rows)
    plain = generate.generate(model, opened.class_names, [3, 4], count=2, seed=5)
    alone = generate.generate(model, opened.class_names, [4], count=2, seed=5)
    np.testing.assert_array_equal(plain.faces[2:], alone.faces)


@pytest.mark.parametrize("arguments, message", [
    (["--emotion", "joy"], "unknown emotion 'joy'; this run makes: neutral, happiness"),
    (["--all", "--count", "0"], "--count 0: give 1 to 10,000 faces"),
    (["--all", "--count", "10001"], "--count 10001: give 1 to 10,000 faces"),
    (["--all", "--vary", "5"], "--vary 5: this InfoGAN has continuous codes 0 to 1"),
])
def test_bad_requests_get_one_line_naming_the_value(infogan_run, tmp_path, capsys, arguments, message):
    assert cli.main(["generate", "--run", str(infogan_run), *arguments, "--output", str(tmp_path / "x.png")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not (tmp_path / "x.png").exists()


def test_a_run_that_is_not_an_infogan_is_refused(runs, tmp_path, capsys):
    assert cli.main(["generate", "--run", str(runs["cnn"]), "--all", "--output", str(tmp_path / "x.png")]) == 2
    assert f"{runs['cnn']} is a cnn run, not an InfoGAN" in capsys.readouterr().err


def test_files_already_there_are_kept_unless_overwrite(infogan_run, tmp_path, capsys):
    target = tmp_path / "grid.png"
    target.write_bytes(b"mine")
    assert cli.main(["generate", "--run", str(infogan_run), "--all", "--output", str(target)]) == 2
    assert target.read_bytes() == b"mine" and "add --overwrite" in capsys.readouterr().err
    assert cli.main(["generate", "--run", str(infogan_run), "--all", "--output", str(target), "--overwrite"]) == 0
    assert target.read_bytes().startswith(b"\x89PNG")


def test_faces_an_infogan_makes_are_spread_through_each_training_epoch(infogan_run, training_data):
    config = data.DataConfig("fer2013/ferplus", data_dir=str(training_data))
    spec = models.InputSpec(kind="image")
    names = list(data.class_names(config))
    faces, ids = infogan_faces.training_faces(f"{infogan_run}:disgust=30,contempt=10", names, seed=1)
    assert faces.shape == (40, 48, 48, 1) and sorted(set(ids)) == [names.index("disgust"), names.index("contempt")]
    np.testing.assert_array_equal(infogan_faces.training_faces(f"{infogan_run}:disgust=30,contempt=10", names,
                                                               seed=1)[0], faces)
    real = sum(data.label_counts(config, "train")["classes"].values())
    made = {face.tobytes() for face in faces}
    positions, seen = [], 0
    for inputs, targets in data.batches(config, "train", spec, batch_size=1, training=True, augmentation=None,
                                        seed=0, added=(faces, ids)):
        if inputs["image"].numpy()[0].tobytes() in made:
            positions.append(seen)
            # A vote target puts all its share on the face's class.
            assert sorted(targets.numpy()[0].tolist())[-2:] == [0.0, 1.0]
        seen += 1
    assert seen == real + 40 and len(positions) == 40
    assert np.mean(positions) == pytest.approx((real + 40) / 2, rel=0.3)  # spread, not appended


def test_a_classifier_trains_on_added_generated_faces(infogan_run, training_data, tmp_path):
    record = train.run(train.TrainConfig(dataset="fer2013/ferplus", model="cnn", out=str(tmp_path / "run"),
                                         data_dir=str(training_data), epochs=1, batch_size=16,
                                         add_generated=f"{infogan_run}:disgust=48"))
    assert record["label_counts"]["generated"]["classes"]["disgust"] == 48
    real = record["label_counts"]["train"]["classes"]
    weights = data.balanced_class_weights({"classes": {**real, "disgust": real["disgust"] + 48}}, 1.0)
    assert record["class_weights"] == pytest.approx(weights)


@pytest.mark.parametrize("request_, message", [
    ("runs/infogan", "give RUN:EMOTION=N"),
    ("runs/infogan:disgust", "give RUN:EMOTION=N"),
    ("{run}:joy=5", "unknown emotion 'joy'"),
    ("{run}:disgust=0", "0 disgust faces; give 1 to 100,000"),
    ("{cnn}:disgust=5", "is a cnn run, not an InfoGAN"),
])
def test_bad_add_generated_requests_are_refused_naming_the_value(infogan_run, runs, request_, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        infogan_faces.training_faces(request_.format(run=infogan_run, cnn=runs["cnn"]), ["disgust", "happy"])
    with pytest.raises(ValueError, match="only image models"):
        data.added_records(np.zeros((1, 48, 48, 1), np.uint8), np.zeros(1), data.DataConfig("fer2013"),
                           models.InputSpec(kind="image_landmarks"))


MIRRORED_SCRIPT = """
import json, sys
from emopy.pipeline import train
record = train.run(train.TrainConfig(dataset="fer2013/ferplus", model="infogan", out=sys.argv[1], data_dir=sys.argv[2],
                                     strategy="mirrored", epochs=1, batch_size=8, augment=False))
print(json.dumps({"strategy": record["strategy"], "history": record["history"]}))
"""


@pytest.mark.scale  # 40 s in a process of its own; CI runs it with the scale checks
def test_mirrored_on_two_logical_cpus_trains_an_infogan(training_data, tmp_path):
    outcome = run_on_two_logical_cpus(MIRRORED_SCRIPT, str(tmp_path / "run"), str(training_data))
    assert outcome["strategy"] == {"name": "mirrored", "replicas": 2, "global_batch_size": 16}
    assert all(np.isfinite(outcome["history"][key][0]) for key in ("critic_loss", "generator_loss", "val_loss"))
