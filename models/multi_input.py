"""Image and landmarks together, as the original Emopy multi-input network: a CNN branch and a landmark branch.

The image branch is `cnn.features`, the landmark branch `landmarks.features`; their outputs are
concatenated, then a dense layer with dropout and the classifier.
"""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from emopy.models import InputSpec, cnn, inputs, landmarks, output_head, preprocessing


def build(input_spec: InputSpec, num_classes: int, output_activation: str = "softmax") -> keras.Model:
    """The joined network for `input_spec` (kind "image_landmarks"), ending in `num_classes` float32
    probabilities."""
    model_inputs = inputs(input_spec)
    image = cnn.features(preprocessing.scaled_pixels(model_inputs["image"]))
    points = landmarks.features(preprocessing.landmark_feature_inputs(model_inputs["landmarks"]))
    x = layers.Concatenate(name="joined")([image, points])
    x = layers.Dense(256, activation="relu", name="joined_dense")(x)
    x = layers.Dropout(0.2, name="joined_dropout")(x)
    outputs = output_head(x, num_classes, output_activation)
    return keras.Model(inputs=model_inputs, outputs=outputs, name="multi_input")
