"""The original Emopy dlib-landmark network: expressions from the 68 face landmarks alone.

Each of the three landmark features (points, distances to the centroid, angles around it; see
`models.preprocessing.landmark_features`) is flattened and goes through its own dense layers; the three are
concatenated, then a dense layer with dropout and the classifier. The original ran a 1x3 convolution along
the point index on each input first; dense layers replace it here, since index order links
neighbours only within each facial part (jaw, brows, nose, eyes, mouth), and a dense layer sees every
pair of points.
"""

from __future__ import annotations

from typing import Mapping

import tf_keras as keras
from tf_keras import layers

from emopy.models import InputSpec, inputs, output_head, preprocessing


def features(landmarks: Mapping, units: int = 128, dropout: float = 0.2):
    """The three landmark branches, joined: `landmarks` maps each of preprocessing.LANDMARK_FEATURES to a tensor
    [B, 68, ...];
    returns [B, 2 * units]. Shared with `multi_input`."""
    branches = []
    for name in preprocessing.LANDMARK_FEATURES:
        x = layers.Flatten(name=f"{name}_flat")(landmarks[name])
        x = layers.Dense(units, activation="relu", name=f"{name}_dense_1")(x)
        x = layers.Dense(units, activation="relu", name=f"{name}_dense_2")(x)
        branches.append(x)
    x = layers.Concatenate(name="landmarks_joined")(branches)
    x = layers.Dense(2 * units, activation="relu", name="landmarks_dense")(x)
    return layers.Dropout(dropout, name="landmarks_dropout")(x)


def build(input_spec: InputSpec, num_classes: int, output_activation: str = "softmax") -> keras.Model:
    """The landmark network for `input_spec` (kind "landmarks"), ending in `num_classes` float32 probabilities."""
    model_inputs = inputs(input_spec)
    x = features(preprocessing.landmark_feature_inputs(model_inputs["landmarks"]))
    outputs = output_head(x, num_classes, output_activation)
    return keras.Model(inputs=model_inputs, outputs=outputs, name="landmarks")
