"""Expressions from face-image sequences (e.g. a CK+ clip): a per-frame CNN, TimeDistributed, then an LSTM.

The per-frame encoder is the still-image CNN's feature extractor (`cnn.features`), so a frame is seen the
way the `cnn` model sees a photo; an LSTM reads the frame features and a dropout leads to the classifier.
"""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from emopy.models import InputSpec, cnn, inputs, output_head, preprocessing


def build(input_spec: InputSpec, num_classes: int, output_activation: str = "softmax") -> keras.Model:
    """The image LSTM for `input_spec` (kind "image_sequence"), ending in `num_classes` float32 probabilities."""
    model_inputs = inputs(input_spec)
    frames = preprocessing.scaled_pixels(model_inputs["frames"])
    # A nested model, so that TimeDistributed applies one set of CNN weights to every frame.
    frame = keras.Input(shape=tuple(frames.shape[2:]), name="frame")
    encoder = keras.Model(frame, cnn.features(frame), name="frame_encoder")
    x = layers.TimeDistributed(encoder, name="frame_features")(frames)
    x = layers.LSTM(64, name="lstm")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    outputs = output_head(x, num_classes, output_activation)
    return keras.Model(inputs=model_inputs, outputs=outputs, name="image_lstm")
