"""The physiological models (physio_mlp, signal_cnn): NaN-aware normalisation adapted on training data, inside the
model and saved with it; their input kinds; no data set needed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from emopy import models
from emopy.models import preprocessing

FEATURES = models.InputSpec(kind="signal_features", num_features=4)
WINDOW = models.InputSpec(kind="signal_window", window_samples=128, channels=3)


@pytest.fixture(autouse=True)
def fresh_session():
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield


def _features(rows: int = 64, seed: int = 0) -> np.ndarray:
    """Heart-rate-like raw features far from unit scale, a third of column 1 undefined and column 3 never defined."""
    values = np.random.default_rng(seed).normal([70, 40, 5, 0], [10, 20, 1, 1], (rows, 4)).astype(np.float32)
    values[::3, 1] = np.nan
    values[:, 3] = np.nan
    return values


def test_adapt_takes_the_statistics_of_finite_values_and_the_model_turns_nan_into_the_mean(tmp_path):
    model = models.build("physio_mlp", FEATURES, num_classes=3)
    train = _features()
    assert models.adapt(model, tf.data.Dataset.from_tensor_slices({"features": train}).batch(10)) == ["features"]
    layer = model.get_layer("features_normalization")
    np.testing.assert_allclose(layer.adapt_mean.numpy()[:3], np.nanmean(train[:, :3], axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.adapt_variance.numpy()[:3], np.nanvar(train[:, :3], axis=0), rtol=1e-4)
    # A feature never defined in training divides by 1 around 0, not by a NaN variance.
    assert layer.adapt_mean.numpy()[3] == 0 and layer.adapt_variance.numpy()[3] == 1
    normalised = layer(tf.constant(train)).numpy()
    assert np.all(np.isfinite(normalised)) and np.all(normalised[::3, 1] == 0) and np.all(normalised[:, 3] == 0)
    np.testing.assert_allclose(normalised[:, 0].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(normalised[:, 0].std(), 1, atol=1e-4)

    probabilities = model.predict({"features": train[:8]}, verbose=0)
    assert probabilities.shape == (8, 3) and np.all(np.isfinite(probabilities))
    # The statistics are weights: saved with the model and read back, so the saved model takes raw features.
    model.save(str(tmp_path / "mlp.keras"))
    loaded = keras.models.load_model(str(tmp_path / "mlp.keras"), custom_objects=models.custom_objects())
    np.testing.assert_array_equal(loaded.get_layer("features_normalization").adapt_mean.numpy(),
                                  layer.adapt_mean.numpy())
    np.testing.assert_allclose(loaded.predict({"features": train[:8]}, verbose=0), probabilities, rtol=1e-6)


def test_restored_weights_take_effect_at_once(tmp_path):
    # A resumed run or the best epoch's checkpoint restores the statistics into a built, already-called model.
    model = models.build("physio_mlp", FEATURES, num_classes=2)
    train = _features()
    models.adapt(model, tf.data.Dataset.from_tensor_slices({"features": train}).batch(16))
    model.save_weights(str(tmp_path / "weights"))
    fresh = models.build("physio_mlp", FEATURES, num_classes=2)
    before = fresh.predict({"features": train[:4]}, verbose=0)
    fresh.load_weights(str(tmp_path / "weights"))
    after = fresh.predict({"features": train[:4]}, verbose=0)
    np.testing.assert_allclose(after, model.predict({"features": train[:4]}, verbose=0), rtol=1e-6)
    assert not np.allclose(before, after)


def test_the_signal_cnn_normalises_each_channel_and_trains():
    model = models.build("signal_cnn", WINDOW, num_classes=3)
    rng = np.random.default_rng(1)
    windows = (rng.normal(0, 1, (12, 128, 3)) * [1, 10, 100] + [0, 30, 500]).astype(np.float32)
    models.adapt(model, tf.data.Dataset.from_tensor_slices({"signals": windows}).batch(4))
    layer = model.get_layer("signals_normalization")
    np.testing.assert_allclose(layer.adapt_mean.numpy(), windows.reshape(-1, 3).mean(axis=0), rtol=1e-3)
    assert model.count_params() < 60_000
    model.compile(optimizer="adam", loss=models.loss("signal_cnn"))
    assert np.isfinite(model.train_on_batch({"signals": windows}, rng.integers(0, 3, 12)))


def test_signal_input_specs_say_their_shapes_and_face_specs_read_as_before():
    assert models.input_shapes(FEATURES) == {"features": (4,)}
    assert models.input_shapes(WINDOW) == {"signals": (128, 3)}
    assert models.input_dtype("features") == models.input_dtype("signals") == "float32"
    for spec in (FEATURES, WINDOW):
        assert models.InputSpec.from_json(spec.to_json()) == spec
        assert spec.uses_signals and not spec.uses_images and not spec.uses_landmarks
    # A face model's input_spec.json has no signal fields: exports read as they did before signals came.
    face = models.InputSpec(kind="image_landmarks")
    assert set(json.loads(face.to_json())) == {"kind", "image_size", "channels", "sequence_length", "num_landmarks"}
    assert models.InputSpec.from_json(face.to_json()) == face and not face.uses_signals
    with pytest.raises(ValueError, match="needs num_features"):
        models.InputSpec(kind="signal_features")
    with pytest.raises(ValueError, match="takes 'signal_features' inputs, not 'image'"):
        models.build("physio_mlp", models.InputSpec(kind="image"), num_classes=3)


def test_face_models_have_nothing_to_adapt():
    model = models.build("cnn", models.InputSpec(kind="image"), num_classes=7)
    assert models.adapt(model, tf.data.Dataset.from_tensor_slices({"image": np.zeros((2, 48, 48, 1), np.uint8)})) == []
    assert not any(isinstance(layer, preprocessing.FiniteNormalization) for layer in model.layers)
