"""Test-time augmentation: a model whose probabilities are averaged over each face and its mirror image.

A face and its mirror show the same expression, so averaging the two predictions removes some of the noise of
one view (about a point of fer2013 validation accuracy for the zoo's `cnn`). Faces and mirrors go through the
model as one batch of twice the size, which costs far less than two calls at batch 1. Applied when exporting
(`emopy export --test-time-flip`), never while training.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras
from tf_keras import layers


class FlipAveraged(layers.Layer):
    """Runs `model` on images [B, H, W, C] and their mirrors in one batch; returns the mean probabilities."""

    def __init__(self, model: keras.Model, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.model = model

    def call(self, images, training=None):
        both = tf.concat([images, tf.reverse(images, axis=[-2])], axis=0)
        faces, mirrors = tf.split(tf.cast(self.model({"image": both}, training=training), tf.float32), 2, axis=0)
        return (faces + mirrors) / 2.0


def flip_averaged(model: keras.Model) -> keras.Model:
    """`model` with the same input and output, its probabilities the mean over each image and its mirror.

    Only for models that take an image alone: mirroring landmarks also renumbers them (left eye becomes right),
    which is the data pipeline's business, not the model's. For export: the wrapper is not a `.keras` file.
    """
    if model.input_names != ["image"]:
        raise ValueError(f"test-time flips are for models that take an image alone, not {model.input_names}")
    spec = model.inputs[0]
    image = keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name="image")
    averaged = FlipAveraged(model, name="flip_average")(image)
    return keras.Model({"image": image}, averaged, name=f"{model.name}_flip_averaged")
