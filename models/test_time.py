"""Test-time augmentation: a model whose probabilities are averaged over each face and its mirror image.

A face and its mirror show the same expression, so averaging the two predictions removes some of the noise of
one view (about a point of fer2013 validation accuracy for the zoo's `cnn`) for twice the work per face.
Applied when exporting (`emopy export --test-time-flip`), never while training.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras
from tf_keras import layers


@keras.utils.register_keras_serializable(package="emopy")
class Mirror(layers.Layer):
    """Images [..., H, W, C] flipped left to right."""

    def call(self, images):
        return tf.reverse(images, axis=[-2])


def flip_averaged(model: keras.Model) -> keras.Model:
    """`model` with the same input and output, its probabilities the mean over each image and its mirror.

    Only for models that take an image alone: mirroring landmarks also renumbers them (left eye becomes right),
    which is the data pipeline's business, not the model's.
    """
    if model.input_names != ["image"]:
        raise ValueError(f"test-time flips are for models that take an image alone, not {model.input_names}")
    spec = model.inputs[0]
    image = keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name="image")
    both = [model({"image": image}), model({"image": Mirror(name="mirror")(image)})]
    averaged = layers.Average(name="flip_average", dtype="float32")(both)
    return keras.Model({"image": image}, averaged, name=f"{model.name}_flip_averaged")


CUSTOM_OBJECTS = {"Mirror": Mirror}
