"""The model zoo: every architecture builds, trains and runs under mixed precision; CapsNet trains and saves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from emopy import models
from emopy.models import capsnet, vgg

NUM_CLASSES = 7
BATCH = 4


def spec_for(name: str, image_size: int = 48) -> models.InputSpec:
    kind = models.architecture(name).input_kind
    if kind in models.SIGNAL_KINDS:  # a small physiological window: 6 features, or 64 samples of 3 channels
        return models.InputSpec(kind=kind, num_features=6, window_samples=64, channels=3)
    return models.InputSpec(kind=kind, image_size=image_size, sequence_length=4)


def random_inputs(spec: models.InputSpec, batch: int = BATCH, seed: int = 0) -> dict[str, np.ndarray]:
    """Images (and frames) of uniform uint8 pixels; landmarks as random points inside the image."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in models.input_shapes(spec).items():
        if name in ("image", "frames"):
            arrays[name] = rng.integers(0, 256, (batch, *shape), dtype=np.uint8)
        else:
            arrays[name] = rng.uniform(0.0, spec.image_size, (batch, *shape)).astype(np.float32)
    return arrays


def sparse_labels(batch: int = BATCH, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, NUM_CLASSES, batch)


def multi_hot_labels(batch: int = BATCH, seed: int = 0) -> np.ndarray:
    labels = (np.random.default_rng(seed).uniform(size=(batch, NUM_CLASSES)) < 0.3).astype(np.float32)
    labels[:, 0] = 1.0  # every example has at least one label
    return labels


def train_one_step(model: keras.Model, loss, x: dict, y: np.ndarray) -> float:
    """Compiles with Adam, takes one training step, checks that every trainable weight moved; returns the loss."""
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    before = [weight.numpy().copy() for weight in model.trainable_weights]
    value = float(model.train_on_batch(x, y, return_dict=True)["loss"])  # the InfoGAN logs its GAN losses too
    assert np.isfinite(value)
    unchanged = [w.name for b, w in zip(before, model.trainable_weights) if np.array_equal(b, w.numpy())]
    assert not unchanged, f"weights not trained: {unchanged}"
    return value


@pytest.fixture(autouse=True)
def fresh_session():
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", list(models.ARCHITECTURES))
def test_every_architecture_trains_a_step_and_saves(name, tmp_path):
    spec = spec_for(name)
    model = models.build(name, spec, num_classes=NUM_CLASSES)
    assert model.name == name
    assert set(model.input_names) == set(models.input_shapes(spec))
    x = random_inputs(spec)
    train_one_step(model, models.loss(name), x, sparse_labels())
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (BATCH, NUM_CLASSES)
    assert probabilities.dtype == np.float32
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    if name != "capsnet":  # capsule lengths are not normalised
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    if name == "vgg":
        return  # stock layers only, covered by the others; zipping its 10M weights and Adam's takes ~10 s
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path, custom_objects=models.custom_objects())
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), probabilities)


@pytest.mark.parametrize("name", ["cnn", "capsnet"])
def test_multi_label_trains_on_multi_hot_labels(name):
    spec = spec_for(name)
    model = models.build(name, spec, num_classes=NUM_CLASSES, multi_label=True)
    x = random_inputs(spec)
    train_one_step(model, models.loss(name, multi_label=True), x, multi_hot_labels())
    probabilities = model.predict(x, verbose=0)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    if name == "cnn":
        assert model.get_layer("probabilities").activation is keras.activations.sigmoid
        # Independent per-class probabilities, not a distribution.
        assert not np.allclose(probabilities.sum(axis=1), 1.0)


def test_capsnet_weights_are_all_tracked_trainable_and_trained():
    model = models.build("capsnet", spec_for("capsnet"), num_classes=NUM_CLASSES)
    # conv kernel and bias, primary capsule kernel and bias, one transform per (primary capsule, class) pair.
    assert len(model.trainable_weights) == 5
    assert model.non_trainable_weights == []
    primary, classes = model.get_layer("primary_capsules"), model.get_layer("class_capsules")
    assert [tuple(w.shape) for w in primary.trainable_weights] == [(9, 9, 128, 64), (64,)]
    # 48 -> 20 (conv, stride 2) -> 6x6 grid of 8 capsule channels = 288 primary capsules of 8 dimensions.
    assert [tuple(w.shape) for w in classes.trainable_weights] == [(288, NUM_CLASSES, 16, 8)]
    assert model.count_params() == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    x, y = random_inputs(spec_for("capsnet")), sparse_labels()
    first = train_one_step(model, models.loss("capsnet"), x, y)
    # Routing and margin loss together learn: a few more steps fit the one batch better.
    last = model.fit(x, y, epochs=10, batch_size=BATCH, verbose=0).history["loss"][-1]
    assert last < 0.5 * first


def test_capsnet_trains_under_mixed_precision(mixed_float16):
    # float16 convolution feeding the float32 capsule layers, with a loss-scaled optimizer.
    spec = spec_for("capsnet")
    model = models.build("capsnet", spec, num_classes=NUM_CLASSES)
    assert model.get_layer("conv").compute_dtype == "float16"
    train_one_step(model, models.loss("capsnet"), random_inputs(spec), sparse_labels())
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)


def test_capsnet_saves_and_loads_with_custom_objects(tmp_path):
    spec = spec_for("capsnet")
    model = models.build("capsnet", spec, num_classes=NUM_CLASSES)
    x = random_inputs(spec)
    train_one_step(model, models.loss("capsnet"), x, sparse_labels())
    path = str(tmp_path / "capsnet.keras")
    model.save(path)
    loaded = keras.models.load_model(path, custom_objects=models.custom_objects())
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert isinstance(loaded.get_layer("class_capsules"), capsnet.ClassCapsules)
    assert loaded.get_layer("class_capsules").routings == 3
    assert isinstance(loaded.loss, capsnet.MarginLoss)


def test_margin_loss_values_and_label_forms():
    loss = models.loss("capsnet")
    lengths = tf.constant([[0.95, 0.05, 0.5], [0.5, 0.5, 0.0]])
    # Row 1, class 0 present: 0.95 > m+ and 0.05 < m- cost nothing; absent class 2 is 0.5 long.
    row_1 = 0.5 * (0.5 - 0.1) ** 2
    # Row 2, class 1 present: 0.5 < m+ costs (0.9 - 0.5)^2; absent class 0 is 0.5 long; class 2 is below m-.
    row_2 = (0.9 - 0.5) ** 2 + 0.5 * (0.5 - 0.1) ** 2
    expected = (row_1 + row_2) / 2
    for labels in ([0, 1], [[0], [1]], [0.0, 1.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]):
        assert float(loss(tf.constant(labels), lengths)) == pytest.approx(expected, rel=1e-5), labels
    # Multi-hot: row 1 has classes 0 and 2 present, so class 2 now costs (0.9 - 0.5)^2.
    multi_hot = tf.constant([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert float(loss(multi_hot, lengths)) == pytest.approx(((0.9 - 0.5) ** 2 + row_2) / 2, rel=1e-5)
    config = loss.get_config()
    assert (config["m_plus"], config["m_minus"], config["down_weight"]) == (0.9, 0.1, 0.5)


def test_cnn_has_no_huge_dense_layer():
    for image_size in (48, 96):
        model = models.build("cnn", spec_for("cnn", image_size), num_classes=NUM_CLASSES)
        assert model.count_params() < 2_000_000
        largest_dense = max(layer.count_params() for layer in model.layers if isinstance(layer, keras.layers.Dense))
        assert largest_dense < 200_000


def test_image_size_is_not_fixed_at_48():
    for name in ("cnn", "multi_input", "capsnet"):
        spec = spec_for(name, image_size=96)
        model = models.build(name, spec, num_classes=NUM_CLASSES)
        assert model.predict(random_inputs(spec, batch=1), verbose=0).shape == (1, NUM_CLASSES)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet'") as error:
        models.build("resnet", models.InputSpec(kind="image"), num_classes=NUM_CLASSES)
    assert all(name in str(error.value) for name in models.ARCHITECTURES)


def test_wrong_input_kind_is_refused():
    with pytest.raises(ValueError, match="takes 'image' inputs, not 'landmarks'"):
        models.build("cnn", models.InputSpec(kind="landmarks"), num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match="takes 'landmark_sequence' inputs"):
        models.build("landmark_lstm", models.InputSpec(kind="landmarks"), num_classes=NUM_CLASSES)


def test_capsnet_refuses_other_output_activations():
    with pytest.raises(ValueError, match="capsule lengths"):
        capsnet.build(spec_for("capsnet"), NUM_CLASSES, output_activation="relu")


@pytest.mark.parametrize("name", list(models.ARCHITECTURES))
def test_mixed_precision_output_is_float32(name, mixed_float16):
    spec = spec_for(name)
    model = models.build(name, spec, num_classes=NUM_CLASSES)
    # The policy did apply: some layers compute in float16...
    assert any(layer.compute_dtype == "float16" for layer in model.layers)
    # ...but the outputs are float32.
    assert model.output.dtype == tf.float32
    probabilities = model.predict(random_inputs(spec, batch=1), verbose=0)
    assert probabilities.dtype == np.float32 and np.all(np.isfinite(probabilities))
    if name == "capsnet":
        for layer in ("primary_capsules", "class_capsules", "probabilities"):
            assert model.get_layer(layer).compute_dtype == "float32"


def test_vgg_recipe_is_the_papers_and_read_only():
    assert vgg.RECIPE["optimizer"] == "sgd_nesterov"
    assert (vgg.RECIPE["learning_rate"], vgg.RECIPE["momentum"], vgg.RECIPE["weight_decay"]) == (0.01, 0.9, 1e-4)
    assert (vgg.RECIPE["plateau_monitor"], vgg.RECIPE["plateau_factor"], vgg.RECIPE["plateau_patience"]) == (
        "val_accuracy", 0.75, 5)
    with pytest.raises(TypeError):
        vgg.RECIPE["learning_rate"] = 0.1
    assert json.loads(json.dumps(models.recipe("vgg")))["momentum"] == 0.9


def test_custom_objects_cover_every_capsnet_class():
    objects = models.custom_objects()
    for cls in (capsnet.PrimaryCapsules, capsnet.ClassCapsules, capsnet.CapsuleLength, capsnet.MarginLoss):
        assert objects[keras.saving.get_registered_name(cls)] is cls
