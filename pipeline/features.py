"""Landmark features computed in-graph from 68 points: the three inputs of the original Emopy's dlib network.

Used by the tf.data pipelines and by exported models alike, so training and serving compute them the same way.
"""

from __future__ import annotations

import tensorflow as tf

# Keeps the angle of a point lying exactly on the centroid defined, and the scale of a degenerate
# (all points equal) face finite.
_EPSILON = 1e-6


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
