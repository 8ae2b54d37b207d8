"""Expressions from landmark sequences (e.g. a CK+ clip from neutral to apex): an LSTM over per-frame features.

Each frame's three landmark features are flattened and concatenated (340 numbers for 68 points), then
two stacked LSTMs read the sequence, and a dense layer with dropout leads to the classifier. This follows
the original Emopy landmark LSTM, less its per-frame 3x1 convolutions along the point index.
"""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from emopy.models import InputSpec, inputs, output_head, preprocessing


def build(input_spec: InputSpec, num_classes: int, output_activation: str = "softmax") -> keras.Model:
    """The landmark LSTM for `input_spec` (kind "landmark_sequence"), ending in `num_classes` float32
    probabilities."""
    model_inputs = inputs(input_spec)
    steps = input_spec.sequence_length
    features = preprocessing.landmark_feature_inputs(model_inputs["landmarks"])
    per_frame = [
        layers.Reshape((steps, -1), name=f"{name}_per_frame")(features[name])
        for name in preprocessing.LANDMARK_FEATURES
    ]
    x = layers.Concatenate(name="frame_features")(per_frame)
    x = layers.LSTM(64, return_sequences=True, name="lstm_1")(x)
    x = layers.LSTM(64, name="lstm_2")(x)
    x = layers.Dense(128, activation="relu", name="dense")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    outputs = output_head(x, num_classes, output_activation)
    return keras.Model(inputs=model_inputs, outputs=outputs, name="landmark_lstm")
