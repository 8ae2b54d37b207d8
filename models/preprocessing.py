"""The one home of what turns model inputs into network numbers: pixel scaling, landmark features, and the
normalisation of physiological features and signals.

Every model applies these as its first layers, so training, evaluation, export and prediction feed a model
the same thing, what a face crop really is: uint8 pixels at the crop size and, for landmark models, the 68
landmarks in crop pixels. Nothing outside this module scales pixels or computes landmark features
(tests/test_preprocessing_home.py fails if anything does). Signal models take raw physiological values (a
window's named features, NaN where a feature is undefined, or its resampled signals) and normalise them with
statistics adapted on the training split (`FiniteNormalization`), which are the layer's weights and so travel
with the saved model.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras
from tf_keras import layers

# The three inputs of the original Emopy's dlib network, in the order the landmark branches take them.
LANDMARK_FEATURES = ("landmark_points", "landmark_distances", "landmark_angles")

# Keeps the angle of a point lying exactly on the centroid defined, and the scale of a degenerate
# (all points equal) face finite.
_EPSILON = 1e-6


def scaled_pixels(image: tf.Tensor) -> tf.Tensor:
    """uint8 pixels [..., S, S, C] as floats in [0, 1], by a Rescaling layer (the model's first layer)."""
    return layers.Rescaling(1.0 / 255.0, name="pixels_to_unit_range")(image)


def centred_pixels(image: tf.Tensor) -> tf.Tensor:
    """Pixels in [0, 255] (uint8 crops, or a generator's floats) as floats in [-1, 1], by a Rescaling layer: the
    range of a tanh, which a GAN's discriminator sees real and generated faces in."""
    return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="pixels_to_centred_range")(image)


def pixels_from_centred(values: tf.Tensor) -> tf.Tensor:
    """`centred_pixels` undone: a generator's tanh output in [-1, 1] as float pixels in [0, 255], float32."""
    return layers.Rescaling(127.5, offset=127.5, dtype="float32", name="centred_range_to_pixels")(values)


def landmark_features(points: tf.Tensor) -> dict[str, tf.Tensor]:
    """{landmark_points, landmark_distances, landmark_angles} for points [..., 68, 2] in pixels.

    Points are centred on their centroid and divided by their RMS distance to it, so the features do not
    depend on where the face is or how large it is. Distances are in the same unit. The angle of each point
    around the centroid is given as (cos, sin): unlike an angle in radians (or the original's arctan of a
    slope) it has no jump where it wraps around.
    """
    points = tf.cast(points, tf.float32)
    centred = points - tf.reduce_mean(points, axis=-2, keepdims=True)
    distances = tf.norm(centred, axis=-1)
    scale = tf.sqrt(tf.reduce_mean(tf.square(distances), axis=-1, keepdims=True)) + _EPSILON
    return {
        "landmark_points": centred / scale[..., None],
        "landmark_distances": distances / scale,
        "landmark_angles": centred / (distances[..., None] + _EPSILON),
    }


@keras.utils.register_keras_serializable(package="emopy")
class LandmarkFeatures(layers.Layer):
    """`landmark_features` as a layer: points [..., 68, 2] -> (points, distances, angles), float32.

    float32 whatever the mixed-precision policy: the RMS scale of pixel coordinates loses digits in float16.
    """

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

    def call(self, points):
        features = landmark_features(points)
        return tuple(features[name] for name in LANDMARK_FEATURES)


def landmark_feature_inputs(points: tf.Tensor) -> dict[str, tf.Tensor]:
    """The landmark features of a model's `landmarks` input, by name, for the landmark branches."""
    return dict(zip(LANDMARK_FEATURES, LandmarkFeatures(name="landmark_features")(points)))


@keras.utils.register_keras_serializable(package="emopy")
class FiniteNormalization(layers.Normalization):
    """keras' Normalization, NaN-aware: `adapt` takes the mean and variance of the finite values only, each
    position of the kept axis counted apart, and `call` turns a non-finite input into 0 after normalising, the
    training mean. A feature that is undefined in a window (no R-peaks, no skin-conductance response) is then
    "average" to the network rather than a NaN that would poison every weight it reaches.

    float32 whatever the mixed-precision policy: raw signal values (a heart rate near 70, a temperature near 34)
    and their variances lose digits in float16.
    """

    def __init__(self, axis: int | None = -1, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(axis=axis, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        # Finite values seen per kept position: the base layer's one `count` cannot say how many values each mean
        # is over once some are NaN.
        self.finite_count = self.add_weight(name="finite_count", shape=self.adapt_mean.shape, dtype=tf.float32,
                                            initializer="zeros", trainable=False)

    def update_state(self, data):
        data = tf.cast(self._standardize_inputs(data), tf.float32)
        finite = tf.math.is_finite(data)
        values = tf.where(finite, data, 0.0)
        count = tf.reduce_sum(tf.cast(finite, tf.float32), axis=self._reduce_axis)
        mean = tf.math.divide_no_nan(tf.reduce_sum(values, axis=self._reduce_axis), count)
        centred = tf.where(finite, data - tf.reshape(mean, self._broadcast_shape), 0.0)
        variance = tf.math.divide_no_nan(tf.reduce_sum(tf.square(centred), axis=self._reduce_axis), count)
        # Chan et al.'s parallel combination of two (count, mean, variance) summaries.
        total = self.finite_count + count
        batch_share = tf.math.divide_no_nan(count, total)
        total_mean = self.adapt_mean + (mean - self.adapt_mean) * batch_share
        total_variance = (self.adapt_variance * (1.0 - batch_share) + variance * batch_share
                          + tf.square(mean - self.adapt_mean) * batch_share * (1.0 - batch_share))
        # Before any finite value the variance stays at its initial 1, so that an all-NaN position divides by 1.
        seen = total > 0
        self.adapt_mean.assign(tf.where(seen, total_mean, self.adapt_mean))
        self.adapt_variance.assign(tf.where(seen, total_variance, self.adapt_variance))
        self.finite_count.assign(total)
        self.count.assign_add(tf.cast(tf.reduce_prod(tf.gather(tf.shape(data), self._reduce_axis)), tf.int64))

    def reset_state(self):
        super().reset_state()
        if self.built:
            self.finite_count.assign(tf.zeros_like(self.finite_count))

    def call(self, inputs):
        inputs = tf.cast(self._standardize_inputs(inputs), tf.float32)
        # Read from the variables at every call, not from the constants the base layer's finalize_state takes: a
        # checkpoint restored into the model (a resumed run, the best epoch's weights) must take effect.
        mean = tf.reshape(self.adapt_mean, self._broadcast_shape)
        scale = tf.maximum(tf.sqrt(tf.reshape(self.adapt_variance, self._broadcast_shape)), keras.backend.epsilon())
        finite = tf.math.is_finite(inputs)
        return tf.where(finite, (tf.where(finite, inputs, 0.0) - mean) / scale, 0.0)


def normalized(values: tf.Tensor, name: str) -> tf.Tensor:
    """Raw physiological values [..., C] normalised per last-axis position by a FiniteNormalization named `name`
    (models.adapt finds it by that name), NaN as 0."""
    return FiniteNormalization(axis=-1, name=name)(values)


CUSTOM_OBJECTS = {"LandmarkFeatures": LandmarkFeatures, "FiniteNormalization": FiniteNormalization}
