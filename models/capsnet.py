"""Capsule network for still faces, trained with the margin loss.

S. Sabour, N. Frosst and G. E. Hinton, "Dynamic Routing Between Capsules", NeurIPS 2017 (arXiv:1710.09829).

Sized for 48x48 gray faces on the paper's own geometry, so that it trains on a CPU (about 0.93M
parameters at 48x48):
- conv 9x9, 128 filters, stride 2, ReLU: 48x48 -> 20x20 (the paper: 256 filters, stride 1, 28x28 -> 20x20);
- PrimaryCapsules: conv 9x9, stride 2, to 8 capsule channels of 8 dimensions on a 6x6 grid, squashed:
  288 capsules (the paper: 32 channels, 1152 capsules);
- ClassCapsules: one 16-dimensional capsule per class, predicted from every primary capsule through its
  own 8x16 transform, with 3 iterations of routing by agreement;
- output ("probabilities"): the length of each class capsule.

The outputs are capsule lengths, each in [0, 1) and each its own class's presence: they are NOT
normalised and need not sum to 1. Take the argmax for a single label. The same outputs serve the
multi-label case (FACS action units), so `output_activation` ("softmax" or "sigmoid") changes nothing.
Larger images give more primary capsules (96x96: 2592, about 3M parameters).

Left out: the paper's reconstruction decoder (a regulariser; the margin loss alone trains the classifier).

Every weight is made in `build()` with `add_weight`, never in `call()`: layers created inside `call()`, as
in the original Emopy capsule layers, are never tracked, so their weights are never trained. The
capsule layers run in float32 even under the mixed_float16 policy, since squashing and the routing
softmax lose too much in float16.
"""

from __future__ import annotations

import types

import tensorflow as tf
import tf_keras as keras
from tf_keras import layers

from emopy.models import InputSpec, inputs, preprocessing

# Keeps the norm of an all-zero capsule differentiable.
_EPSILON = 1e-7


def _squash(vectors: tf.Tensor) -> tf.Tensor:
    """Scales each vector (last axis) to length |s|^2 / (1 + |s|^2), keeping its direction (eq. 1)."""
    squared_norm = tf.reduce_sum(tf.square(vectors), axis=-1, keepdims=True)
    return vectors * (squared_norm / (1.0 + squared_norm)) / tf.sqrt(squared_norm + _EPSILON)


@keras.saving.register_keras_serializable(package="emopy")
class PrimaryCapsules(layers.Layer):
    """A convolution whose output channels are read as `capsules` capsule channels of `dim` dimensions at each
    grid position; returns the squashed capsules [B, grid_positions * capsules, dim]."""

    def __init__(self, capsules: int = 8, dim: int = 8, kernel_size: int = 9, strides: int = 2, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.capsules = capsules
        self.dim = dim
        self.kernel_size = kernel_size
        self.strides = strides

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size, self.kernel_size, channels, self.capsules * self.dim),
            initializer="glorot_uniform",
        )
        self.bias = self.add_weight(name="bias", shape=(self.capsules * self.dim,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        x = tf.nn.conv2d(inputs, self.kernel, strides=self.strides, padding="VALID") + self.bias
        # Static sizes, so that ClassCapsules knows how many capsules it gets when it builds its weights.
        return _squash(tf.reshape(x, (-1, x.shape[1] * x.shape[2] * self.capsules, self.dim)))

    def get_config(self):
        return {
            **super().get_config(),
            "capsules": self.capsules,
            "dim": self.dim,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
        }


@keras.saving.register_keras_serializable(package="emopy")
class ClassCapsules(layers.Layer):
    """One `dim`-dimensional capsule per class from input capsules [B, N, d], by routing by agreement
    (Procedure 1 of the paper); returns the squashed class capsules [B, num_capsules, dim]."""

    def __init__(self, num_capsules: int, dim: int = 16, routings: int = 3, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if routings < 1:
            raise ValueError(f"routings must be at least 1, not {routings}")
        self.num_capsules = num_capsules
        self.dim = dim
        self.routings = routings

    def build(self, input_shape):
        num_inputs, input_dim = int(input_shape[1]), int(input_shape[2])
        # One transform W_ij per (input capsule, class capsule) pair. A scale of 0.1 gives class capsules
        # of middling length at the start; Glorot's fan-based scale for this 4-D shape would be ~0.006,
        # leaving every length near 0, where squashing passes almost no gradient.
        self.transform = self.add_weight(
            name="transform",
            shape=(num_inputs, self.num_capsules, self.dim, input_dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.1),
        )
        super().build(input_shape)

    def call(self, inputs):
        # Each input capsule i's prediction of each class capsule j: u_hat[b, i, j] = W_ij u[b, i].
        predictions = tf.einsum("ijed,bid->bije", self.transform, inputs)
        # The agreement steps only choose the coupling coefficients: gradients reach the transforms through the
        # final weighted sum alone, not through how the couplings were chosen (cheaper, and steadier to train).
        fixed = tf.stop_gradient(predictions)
        logits = tf.zeros(tf.shape(predictions)[:3], dtype=predictions.dtype)
        for _ in range(self.routings - 1):
            outputs = _squash(tf.einsum("bij,bije->bje", tf.nn.softmax(logits, axis=2), fixed))
            logits += tf.einsum("bije,bje->bij", fixed, outputs)
        return _squash(tf.einsum("bij,bije->bje", tf.nn.softmax(logits, axis=2), predictions))

    def get_config(self):
        config = {"num_capsules": self.num_capsules, "dim": self.dim, "routings": self.routings}
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="emopy")
class CapsuleLength(layers.Layer):
    """The length of each capsule: [B, N, d] -> [B, N]."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        return tf.sqrt(tf.reduce_sum(tf.square(inputs), axis=-1) + _EPSILON)


@keras.saving.register_keras_serializable(package="emopy")
class MarginLoss(keras.losses.Loss):
    """The margin loss of the paper (eq. 4), summed over classes:
    T_k max(0, m+ - |v_k|)^2 + lambda (1 - T_k) max(0, |v_k| - m-)^2.

    Takes sparse class ids ([B] or [B, 1], int or float) for single-label data, or multi-hot (or one-hot)
    targets [B, num_classes] for multi-label data: labels whose last axis matches the predictions' are used
    as targets, any others are read as class ids. (With a single class the two cannot be told apart, and
    labels are read as targets.)
    """

    def __init__(
        self,
        m_plus: float = 0.9,
        m_minus: float = 0.1,
        down_weight: float = 0.5,
        name: str = "margin_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.m_plus = m_plus
        self.m_minus = m_minus
        self.down_weight = down_weight

    def call(self, y_true, y_pred):
        lengths = tf.cast(y_pred, tf.float32)
        y_true = tf.convert_to_tensor(y_true)
        num_classes = lengths.shape[-1]
        if y_true.shape.rank == lengths.shape.rank and y_true.shape[-1] == num_classes:
            targets = tf.cast(y_true, tf.float32)
        else:
            targets = tf.one_hot(tf.reshape(tf.cast(y_true, tf.int32), (-1,)), num_classes, dtype=tf.float32)
        present = targets * tf.square(tf.maximum(0.0, self.m_plus - lengths))
        absent = self.down_weight * (1.0 - targets) * tf.square(tf.maximum(0.0, lengths - self.m_minus))
        return tf.reduce_sum(present + absent, axis=-1)

    def get_config(self):
        config = {"m_plus": self.m_plus, "m_minus": self.m_minus, "down_weight": self.down_weight}
        return {**super().get_config(), **config}


# Read-only; keyed by the names the classes are saved under.
CUSTOM_OBJECTS = types.MappingProxyType(
    {
        keras.saving.get_registered_name(cls): cls
        for cls in (PrimaryCapsules, ClassCapsules, CapsuleLength, MarginLoss)
    }
)


def loss() -> keras.losses.Loss:
    """The margin loss (m+ = 0.9, m- = 0.1, lambda = 0.5), for sparse ids and multi-hot labels alike."""
    return MarginLoss()


def build(input_spec: InputSpec, num_classes: int, output_activation: str = "softmax") -> keras.Model:
    """The CapsNet for `input_spec` (kind "image"): `num_classes` float32 capsule lengths ("probabilities").

    `output_activation` ("softmax" or "sigmoid") is accepted for the registry's sake; lengths already are
    per-class probabilities, so neither is applied.
    """
    if output_activation not in ("softmax", "sigmoid"):
        raise ValueError(f"capsnet outputs capsule lengths, not {output_activation!r}; use softmax or sigmoid")
    model_inputs = inputs(input_spec)
    # He rather than Glorot: from Glorot's smaller start on a 9x9x1 kernel, primary capsules begin near length
    # 0.01 (here ~0.75) and class capsules near 0.001 (here ~0.4), where squashing passes little gradient.
    x = layers.Conv2D(128, 9, strides=2, activation="relu", kernel_initializer="he_normal", name="conv")(
        preprocessing.scaled_pixels(model_inputs["image"])
    )
    x = PrimaryCapsules(capsules=8, dim=8, kernel_size=9, strides=2, name="primary_capsules")(x)
    x = ClassCapsules(num_classes, dim=16, routings=3, name="class_capsules")(x)
    outputs = CapsuleLength(name="probabilities")(x)
    return keras.Model(inputs=model_inputs, outputs=outputs, name="capsnet")
