"""A VGG-style network with batch norm sized for CPUs: 80 epochs of fer2013 in 40-120 minutes on 2 cores.

Four stages of 24, 48, 96 and 192 filters (the first one conv, the others two, each conv -> batch norm -> ReLU,
as `vgg.conv_block`), each ending in 2x2 max pooling, leave a 3x3x192 map. It is flattened, not globally
pooled, so the rows of the face (brows, eyes, mouth) stay apart, then one 256-unit dense layer and the
classifier, with dropout before each. About 1.1M parameters and 66M multiply-adds per 48x48 face: a training
epoch of fer2013 takes 30-90 s on 2 cores (depending on the machine), and a face is classified in about 1.2 ms
at batch 1 through TFLite. Two of its runs, of 80 and 90 epochs, averaged, are the shipped fer2013 model
(docs/models.md); its 80-epoch run alone scores 67.0 % on fer2013's PublicTest.

Chosen by measured training time per epoch on the 2-core machine, with `vgg`'s 64-512 filters (420 s),
32-256 (124 s) and 16-128 (51 s) as the alternatives.
"""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from emopy.models import InputSpec, inputs, output_head, preprocessing, scaled_units
from emopy.models.vgg import conv_block

STAGES = (24, 48, 96, 192)
DENSE_UNITS = 256
DROPOUT = 0.4

# Trained with a fixed budget of epochs, so the learning rate follows a cosine to zero over exactly that many;
# class weights are the square root of balanced ones: rare classes keep their recall (disgust has 16x fewer
# faces than happy) without giving up as much accuracy as fully balanced weights do.
RECIPE = {"optimizer": "adam", "learning_rate": 1e-3, "lr_schedule": "cosine", "class_weight_power": 0.5}


def build(input_spec: InputSpec, num_classes: int, output_activation: str = "softmax", width: float = 1.0,
          dropout: float = DROPOUT) -> keras.Model:
    """The small VGG for `input_spec` (kind "image"), ending in `num_classes` float32 probabilities; `width`
    scales every layer's filters and units."""
    model_inputs = inputs(input_spec)
    x = preprocessing.scaled_pixels(model_inputs["image"])
    for stage, filters in enumerate(STAGES):
        x = conv_block(x, scaled_units(filters, width))
        if stage:
            x = conv_block(x, scaled_units(filters, width))
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(scaled_units(DENSE_UNITS, width), activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = output_head(x, num_classes, output_activation)
    return keras.Model(inputs=model_inputs, outputs=outputs, name="vgg_small")
