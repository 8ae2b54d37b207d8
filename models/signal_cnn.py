"""A small 1-D CNN on a physiological window's raw signals (WESAD: ECG, EDA, EMG, respiration, ... resampled to
one rate), learning its own features where physio_mlp takes the hand-crafted ones.

Each channel is normalised with the training split's per-channel statistics inside the model
(models.preprocessing.FiniteNormalization), so an export takes the raw resampled window. Three strided conv
blocks (wide kernels first: at the dataset's signal rate one heartbeat spans tens of samples) end in global
average pooling, which makes the model independent of the window's length past the receptive field and keeps it
small (about 30k parameters) for leave-one-subject-out, which trains one per subject.
"""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from emopy.models import InputSpec, inputs, output_head, preprocessing, scaled_units

# (filters, kernel, stride) per block.
BLOCKS = ((16, 9, 2), (32, 7, 2), (64, 5, 2))
DENSE_UNITS = 32
DROPOUT = 0.3


def build(input_spec: InputSpec, num_classes: int, output_activation: str = "softmax", width: float = 1.0,
          dropout: float = DROPOUT) -> keras.Model:
    """The signal CNN for `input_spec` (kind "signal_window": [window_samples, channels]), ending in
    `num_classes` float32 probabilities; `width` scales every layer's filters and units. Adapt it (models.adapt)
    on the training split before fitting."""
    model_inputs = inputs(input_spec)
    x = preprocessing.normalized(model_inputs["signals"], name="signals_normalization")
    for filters, kernel, stride in BLOCKS:
        x = layers.Conv1D(scaled_units(filters, width), kernel, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        # Pooling only while the sequence is long: a short window (few samples at a low rate) must still reach the
        # last block.
        if x.shape[1] and x.shape[1] >= 4:
            x = layers.MaxPooling1D(2)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(scaled_units(DENSE_UNITS, width), activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs=model_inputs, outputs=output_head(x, num_classes, output_activation), name="signal_cnn")
