"""An MLP on a physiological window's named features (WESAD: heart rate, HRV, skin-conductance responses, ...).

Schmidt et al. (2018) classify WESAD's windows from such hand-crafted features with classical learners (random
forests, AdaBoost, LDA) and a small feed-forward network; this is the feed-forward one, kept small because a
leave-one-subject-out run trains one per subject. The features arrive raw, NaN where undefined in the window
(no R-peaks found, no skin-conductance response); the first layer normalises them with the training split's
statistics and sets NaN to the mean (models.preprocessing.FiniteNormalization), so an export takes raw features.
"""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from emopy.models import InputSpec, inputs, output_head, preprocessing, scaled_units

UNITS = (64, 32)
DROPOUT = 0.3


def build(input_spec: InputSpec, num_classes: int, output_activation: str = "softmax", width: float = 1.0,
          dropout: float = DROPOUT) -> keras.Model:
    """The feature MLP for `input_spec` (kind "signal_features"), ending in `num_classes` float32 probabilities;
    `width` scales every layer's units. Adapt it (models.adapt) on the training split before fitting."""
    model_inputs = inputs(input_spec)
    x = preprocessing.normalized(model_inputs["features"], name="features_normalization")
    for units in UNITS:
        x = layers.Dense(scaled_units(units, width), activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    return keras.Model(inputs=model_inputs, outputs=output_head(x, num_classes, output_activation), name="physio_mlp")
