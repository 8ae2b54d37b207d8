"""VGG-style network with batch norm for still faces, after Khaireddin & Chen (2021), 73.28% on fer2013.

Y. Khaireddin and Z. Chen, "Facial Emotion Recognition: State of the Art Performance on FER2013",
arXiv:2105.03588 (2021); their code: github.com/usef-kh/fer.

Architecture, as in the paper and the authors' code: four conv stages of 64, 128, 256 and 512 filters;
each stage is two blocks of 3x3 conv -> batch norm -> ReLU, then 2x2 max pooling. Then two fully
connected ReLU layers with dropout (0.2), and the classifier.

One deliberate difference: the paper's two fully connected layers have 4096 units each; here they have
1024 (FC_UNITS). The paper feeds 40x40 crops, whose last map is 2x2x512; the full 48x48 image used here
leaves 3x3x512 = 4608 features, and 4096-wide layers on top would hold 35.7M parameters, nearly nine tenths
of the model, for 28k training images. With 1024 the model has about 10.4M parameters at 48x48 (the
flattened map grows with the image: about 24M at 96x96).

Training recipe of the paper and the authors' train.py:
- SGD with Nesterov momentum 0.9, initial learning rate 0.01, weight decay 1e-4, batch size 64;
- reduce the learning rate on plateau of validation accuracy: factor 0.75, patience 5 epochs;
- 300 epochs;
- augmentation: random rescaling (+-20%), shifts (+-20%, half the time), horizontal flips, rotations
  (+-10 degrees, half the time), random erasing; they train and test on ten 40x40 crops, averaging the
  ten predictions at test time.
SGD with Nesterov momentum was the best of the optimisers they compared, and reduce-on-plateau the
scheduler their code trains with. The paper's final 73.28% comes after a further fine-tuning stage.

RECIPE below holds the optimiser and the plateau schedule, and `emopy train` follows both. The rest emopy
does not do: no ten crops (the model sees the whole image, one prediction per image at test time), no
random erasing, no fine-tuning stage, and not 300 epochs: `emopy train --epochs` (default 30) and
`--batch-size` (default 64 per replica, as in the paper) set the epochs and the batch size. Its augmentation
is emopy's own (pipeline.augment), not the paper's.
"""

from __future__ import annotations

import types

import tf_keras as keras
from tf_keras import layers

from emopy.models import InputSpec, inputs, output_head, preprocessing, scaled_units

STAGES = (64, 128, 256, 512)
FC_UNITS = 1024
DROPOUT = 0.2

# Read-only, so no caller can change the recipe for everyone else; flat and JSON-ready for run records.
RECIPE = types.MappingProxyType(
    {
        "optimizer": "sgd_nesterov",
        "learning_rate": 0.01,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 1e-4,
        "plateau_monitor": "val_accuracy",
        "plateau_mode": "max",
        "plateau_factor": 0.75,
        "plateau_patience": 5,
    }
)


def conv_block(x, filters: int):
    # No bias: batch norm's offset replaces it.
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def build(input_spec: InputSpec, num_classes: int, output_activation: str = "softmax", width: float = 1.0,
          dropout: float = DROPOUT) -> keras.Model:
    """The VGG-style network for `input_spec` (kind "image"), ending in `num_classes` float32 probabilities;
    `width` scales every layer's filters and units."""
    model_inputs = inputs(input_spec)
    x = preprocessing.scaled_pixels(model_inputs["image"])
    for filters in STAGES:
        x = conv_block(x, scaled_units(filters, width))
        x = conv_block(x, scaled_units(filters, width))
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    for _ in range(2):
        x = layers.Dense(scaled_units(FC_UNITS, width), activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    outputs = output_head(x, num_classes, output_activation)
    return keras.Model(inputs=model_inputs, outputs=outputs, name="vgg")
