"""Test-time averaging: a model whose probabilities are averaged over each face and its mirror image, or over
the models of an ensemble.

A face and its mirror show the same expression, so averaging the two predictions removes some of the noise of
one view (about a point of fer2013 validation accuracy for the zoo's `cnn`). Faces and mirrors go through the
model as one batch of twice the size, which costs far less than two calls at batch 1. Applied when exporting
(`emopy export --test-time-flip`), never while training. Likewise `emopy export --run A B` serves the mean of
several runs' models: models trained apart err apart, so their mean errs less than either.
"""

from __future__ import annotations

from collections.abc import Sequence

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


class EnsembleAveraged(layers.Layer):
    """Runs every model of `members` on the same inputs; returns the mean of their probabilities."""

    def __init__(self, members: Sequence[keras.Model], **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.members = list(members)

    def call(self, inputs, training=None):
        outputs = [tf.cast(member(inputs, training=training), tf.float32) for member in self.members]
        return tf.add_n(outputs) / float(len(outputs))


def _input_signature(model: keras.Model) -> list[tuple]:
    return [(name, tuple(tensor.shape), tensor.dtype) for name, tensor in zip(model.input_names, model.inputs)]


def ensemble_averaged(members: Sequence[keras.Model]) -> keras.Model:
    """One model with the members' inputs whose probabilities are the mean of theirs.

    The members must take the same inputs (names, shapes, dtypes) and give the same number of classes. For
    export, as `flip_averaged`, which can wrap the result.
    """
    first = members[0]
    signature = _input_signature(first)
    for member in members[1:]:
        if _input_signature(member) != signature or member.output_shape != first.output_shape:
            raise ValueError(f"an ensemble's models must take the same inputs and give the same outputs: "
                             f"{first.name} takes {signature} -> {first.output_shape}, {member.name} takes "
                             f"{_input_signature(member)} -> {member.output_shape}")
    model_inputs = {name: keras.Input(shape=shape[1:], dtype=dtype, name=name) for name, shape, dtype in signature}
    averaged = EnsembleAveraged(members, name="ensemble_average")(model_inputs)
    return keras.Model(model_inputs, averaged, name=f"ensemble_of_{len(members)}")
