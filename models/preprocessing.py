"""The one home of what turns a face crop into network numbers: pixel scaling and landmark features.

Every model applies these as its first layers, so training, evaluation, export and prediction feed a model
the same thing, what a face crop really is: uint8 pixels at the crop size and, for landmark models, the 68
landmarks in crop pixels. Nothing outside this module scales pixels or computes landmark features
(tests/test_preprocessing_home.py fails if anything does).
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


CUSTOM_OBJECTS = {"LandmarkFeatures": LandmarkFeatures}
