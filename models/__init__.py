"""Keras architectures for expression recognition, one module each, behind one registry.

    from emopy import models
    spec = models.InputSpec(kind="image", image_size=48)
    model = models.build("vgg", spec, num_classes=7)

Every model takes a dict of named inputs (see `input_shapes`): what a face crop really is, uint8 pixels at
the crop size and the 68 landmarks in crop pixels, or for the physiological models what a WESAD window holds,
its named features (NaN where undefined) or its resampled signals. Its first layers turn them into network
numbers (`models.preprocessing`), and it ends in a float32 output layer, so that it trains under mixed precision.
Signal models normalise with statistics of the training split: `adapt` sets them before training.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from typing import Callable

import tf_keras as keras
from tf_keras import layers

from emopy.models import preprocessing

# What each input kind feeds the model, by input name.
FACE_KINDS = ("image", "landmarks", "image_landmarks", "image_sequence", "landmark_sequence")
# A physiological window's named features (float32 [num_features]), or its signals (float32 [window_samples,
# channels]).
SIGNAL_KINDS = ("signal_features", "signal_window")
INPUT_KINDS = FACE_KINDS + SIGNAL_KINDS
# The InputSpec fields only signal kinds use: left out of to_json where they are 0, so a face model's
# input_spec.json reads as it did before signals came.
_SIGNAL_FIELDS = ("num_features", "window_samples")


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What a model is fed: the input kind, the square image side, channels (of the image, or of a signal
    window), frames per sequence; for signal kinds, the features per window and the samples per window."""

    kind: str
    image_size: int = 48
    channels: int = 1
    sequence_length: int = 10
    num_landmarks: int = 68
    num_features: int = 0
    window_samples: int = 0

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"unknown input kind {self.kind!r}; known: {', '.join(INPUT_KINDS)}")
        if self.kind == "signal_features" and self.num_features < 1:
            raise ValueError("a 'signal_features' input needs num_features (the dataset's feature names)")
        if self.kind == "signal_window" and (self.window_samples < 1 or self.channels < 1):
            raise ValueError("a 'signal_window' input needs window_samples and channels (the dataset's window)")

    @property
    def uses_signals(self) -> bool:
        return self.kind in SIGNAL_KINDS

    @property
    def uses_images(self) -> bool:
        return self.kind in ("image", "image_landmarks", "image_sequence")

    @property
    def uses_landmarks(self) -> bool:
        return self.kind in ("landmarks", "image_landmarks", "landmark_sequence")

    @property
    def is_sequence(self) -> bool:
        return self.kind.endswith("_sequence")

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        return json.dumps({key: value for key, value in fields.items() if key not in _SIGNAL_FIELDS or value})

    @classmethod
    def from_json(cls, text: str) -> "InputSpec":
        return cls(**json.loads(text))


def named_inputs(spec: InputSpec, pixels, landmarks) -> dict:
    """The model's inputs by name (input_shapes' names) from a batch of pixels and of landmarks; each is left out
    where the spec does not use it."""
    inputs = {}
    if spec.uses_images:
        inputs["frames" if spec.is_sequence else "image"] = pixels
    if spec.uses_landmarks:
        inputs["landmarks"] = landmarks
    return inputs


def input_shapes(spec: InputSpec) -> dict[str, tuple[int, ...]]:
    """The model's named inputs and their shapes (without the batch dimension): `image` (or `frames`), uint8
    pixels, and `landmarks`, float32 (x, y) in the pixels of that image; `features` or `signals`, float32, for
    the signal kinds."""
    image = (spec.image_size, spec.image_size, spec.channels)
    points = (spec.num_landmarks, 2)
    time = (spec.sequence_length,)
    return {
        "image": {"image": image},
        "landmarks": {"landmarks": points},
        "image_landmarks": {"image": image, "landmarks": points},
        "image_sequence": {"frames": time + image},
        "landmark_sequence": {"landmarks": time + points},
        "signal_features": {"features": (spec.num_features,)},
        "signal_window": {"signals": (spec.window_samples, spec.channels)},
    }[spec.kind]


def input_dtype(name: str) -> str:
    """uint8 for pixels, float32 for landmarks and physiological values."""
    return "float32" if name in ("landmarks", "features", "signals") else "uint8"


def inputs(spec: InputSpec) -> dict[str, keras.Input]:
    """keras.Input layers named, shaped and typed as `input_shapes` and `input_dtype` say."""
    return {name: keras.Input(shape=shape, name=name, dtype=input_dtype(name))
            for name, shape in input_shapes(spec).items()}


# Hyper-parameters an architecture's build may take besides its input and classes: `width` multiplies every
# layer's filters and units (1.0 is the architecture as described), `dropout` replaces its dropout rate. Each
# architecture names those it takes (Architecture.hyperparameters); `emopy train --width/--dropout` and `emopy tune`
# read them there.
HYPERPARAMETERS = ("width", "dropout")


def scaled_units(units: int, width: float) -> int:
    """A layer's `units` (filters or units) at `width` times the described size, at least 4."""
    return max(4, round(units * width))


def output_head(features, num_classes: int, output_activation: str = "softmax"):
    """The output of a model: a Dense layer of `num_classes` logits, then its activation in float32, so that
    softmax/sigmoid and the loss stay accurate under the mixed_float16 policy."""
    logits = layers.Dense(num_classes, name="logits")(features)
    return layers.Activation(output_activation, dtype="float32", name="probabilities")(logits)


@dataclasses.dataclass(frozen=True)
class Architecture:
    module: str  # models.<module> holds build(input_spec, num_classes, output_activation, **hyperparameters)
    input_kind: str
    description: str
    hyperparameters: tuple[str, ...] = ()


ARCHITECTURES = {
    "cnn": Architecture("cnn", "image", "the original Emopy image CNN, without its 33M-parameter dense layer",
                        HYPERPARAMETERS),
    "landmarks": Architecture("landmarks", "landmarks", "the original Emopy dlib-landmark network"),
    "multi_input": Architecture("multi_input", "image_landmarks", "image CNN and landmark branches, joined"),
    "landmark_lstm": Architecture("landmark_lstm", "landmark_sequence", "LSTM over landmark sequences"),
    "image_lstm": Architecture("image_lstm", "image_sequence", "TimeDistributed CNN + LSTM over frames"),
    "capsnet": Architecture("capsnet", "image", "capsule network: dynamic routing, margin loss"),
    "vgg": Architecture("vgg", "image", "VGG-style with batch norm (Khaireddin & Chen 2021, 73.28% fer2013)",
                        HYPERPARAMETERS),
    "vgg_small": Architecture("vgg_small", "image", "VGG-style with batch norm, sized to train on CPUs",
                              HYPERPARAMETERS),
    "infogan": Architecture("infogan", "image", "InfoGAN: generates faces of an asked expression; its critic "
                            "classifies them", ("width",)),
    "physio_mlp": Architecture("physio_mlp", "signal_features", "MLP on a physiological window's named features "
                               "(WESAD)", HYPERPARAMETERS),
    "signal_cnn": Architecture("signal_cnn", "signal_window", "1-D CNN on a physiological window's raw signals "
                               "(WESAD)", HYPERPARAMETERS),
}


def architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(ARCHITECTURES)}") from None


def _module(name: str):
    return importlib.import_module(f"emopy.models.{architecture(name).module}")


def check_hyperparameters(name: str, width: float = 1.0, dropout: float | None = None) -> None:
    """Refuses a width or dropout the named architecture does not take, or out of range."""
    taken = architecture(name).hyperparameters
    for key, value, default in (("width", width, 1.0), ("dropout", dropout, None)):
        if value != default and key not in taken:
            raise ValueError(f"model {name!r} takes no {key}; those that do: "
                             f"{', '.join(n for n, a in ARCHITECTURES.items() if key in a.hyperparameters)}")
    if not 0.125 <= width <= 4:
        raise ValueError(f"width {width} is outside 0.125-4 (1.0 is the architecture as described)")
    if dropout is not None and not 0 <= dropout < 1:
        raise ValueError(f"dropout {dropout} is outside [0, 1)")


def build(name: str, input_spec: InputSpec, num_classes: int, *, multi_label: bool = False, width: float = 1.0,
          dropout: float | None = None) -> keras.Model:
    """The named architecture for `input_spec`, with `num_classes` outputs: probabilities over classes
    (softmax), or with `multi_label` one independent probability per class (sigmoid), e.g. FACS AUs. `width`
    and `dropout` (None: the architecture's own) go to architectures that take them (check_hyperparameters)."""
    expected = architecture(name).input_kind
    if input_spec.kind != expected:
        raise ValueError(f"model {name!r} takes {expected!r} inputs, not {input_spec.kind!r}")
    check_hyperparameters(name, width, dropout)
    chosen = {key: value for key, value in (("width", width), ("dropout", dropout))
              if key in architecture(name).hyperparameters and value is not None}
    return _module(name).build(input_spec, num_classes, output_activation="sigmoid" if multi_label else "softmax",
                               **chosen)


def loss(name: str, *, multi_label: bool = False, soft_targets: bool = False) -> keras.losses.Loss | str:
    """The loss the named architecture trains with (CapsNet: margin loss; others: cross-entropy): against class
    ids, or with `soft_targets` against a distribution over the classes (e.g. the share of crowd votes)."""
    module = _module(name)
    if hasattr(module, "loss"):
        return module.loss()
    if multi_label:
        return "binary_crossentropy"
    return "categorical_crossentropy" if soft_targets else "sparse_categorical_crossentropy"


def recipe(name: str) -> dict:
    """How the named architecture is meant to be trained: {"optimizer": "adam" | "sgd_nesterov",
    "learning_rate": ..., ...}; a module's RECIPE, else Adam at 1e-3."""
    return dict(getattr(_module(name), "RECIPE", {"optimizer": "adam", "learning_rate": 1e-3}))


def callbacks(name: str, log_dir: str) -> list[keras.callbacks.Callback]:
    """Callbacks the named architecture adds to a training run on the chief, writing under `log_dir` (the
    InfoGAN's grid of samples in TensorBoard); none for most."""
    module = _module(name)
    return module.callbacks(log_dir) if hasattr(module, "callbacks") else []


def adapt(model: keras.Model, inputs) -> list[str]:
    """Sets the normalisation statistics of a signal model (its FiniteNormalization layers, named
    "<input>_normalization") from `inputs`, a tf.data.Dataset of the training split's input dicts, as keras-io's
    structured-data examples adapt before `fit`. The statistics are layer weights: saved with the model, restored
    with its checkpoints. Returns the inputs adapted; face models have none."""
    adapted = []
    for name in model.input_names:
        try:
            layer = model.get_layer(f"{name}_normalization")
        except ValueError:
            continue
        if isinstance(layer, preprocessing.FiniteNormalization):
            layer.adapt(inputs.map(lambda batch, name=name: batch[name]))
            adapted.append(name)
    return adapted


def is_generative(model: keras.Model) -> bool:
    """Whether a (loaded) model carries a generator that `emopy generate` can sample."""
    return isinstance(getattr(model, "generator", None), keras.Model)


def custom_objects() -> dict[str, Callable]:
    """Every custom layer and loss, for keras.models.load_model."""
    objects = dict(preprocessing.CUSTOM_OBJECTS)
    for name in ARCHITECTURES:
        objects.update(getattr(_module(name), "CUSTOM_OBJECTS", {}))
    return objects
