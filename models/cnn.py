"""The original Emopy image CNN for still faces, with its oversized dense layer fixed.

Fixed: the original flattened a large, barely pooled feature map straight into its first dense layer,
which alone held about 33M parameters, nearly the whole model, for 28k fer2013 training images. Here the
same three conv blocks (32, 64, 128 filters, each max-pooled, with dropout) end in one more pooling
down to a 3x3 grid before a 128-unit dense layer, so the model has about 0.24M parameters, at 48x48
(fer2013) and 96x96 (CK+) alike.
"""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from emopy.models import InputSpec, inputs, output_head, preprocessing, scaled_units

FILTERS = (32, 64, 128)
# Rows of the face (brows, eyes, mouth) stay apart on a 3x3 grid, which global pooling would merge.
GRID = 3
DENSE_UNITS = 128
DROPOUT = 0.2


def features(image, dropout: float = DROPOUT, width: float = 1.0):
    """The conv blocks and the dense layer (128 units at width 1), applied to scaled pixels [B, S, S, C];
    returns [B, units].

    Shared with `multi_input` and, per frame, with `image_lstm`.
    """
    x = image
    for filters in FILTERS:
        x = layers.Conv2D(scaled_units(filters, width), 3, padding="same", activation="relu",
                          kernel_initializer="glorot_normal")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(dropout)(x)
    side = x.shape[1]
    if side > GRID:
        # Average rather than max: this pooling summarises a region, the earlier ones pick local features.
        x = layers.AveragePooling2D(pool_size=side // GRID)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(scaled_units(DENSE_UNITS, width), activation="relu")(x)
    return layers.Dropout(dropout)(x)


def build(input_spec: InputSpec, num_classes: int, output_activation: str = "softmax", width: float = 1.0,
          dropout: float = DROPOUT) -> keras.Model:
    """The image CNN for `input_spec` (kind "image"), ending in `num_classes` float32 probabilities; `width`
    scales every layer's filters and units."""
    model_inputs = inputs(input_spec)
    x = features(preprocessing.scaled_pixels(model_inputs["image"]), dropout=dropout, width=width)
    outputs = output_head(x, num_classes, output_activation)
    return keras.Model(inputs=model_inputs, outputs=outputs, name="cnn")
