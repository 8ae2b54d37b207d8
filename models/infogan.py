"""An InfoGAN of 48x48 gray faces: ask for an expression, vary the face along codes it learnt without labels.

After Chen et al. (2016), *InfoGAN: Interpretable Representation Learning by Information Maximizing Generative
Adversarial Nets*, with its categorical code tied to the expression labels as in Odena et al. (2017), *Conditional
Image Synthesis with Auxiliary Classifier GANs*:

- the generator turns noise z, a one-hot expression c and continuous codes u in [-1, 1] into face pixels;
- the discriminator (the critic) says whether a face is real, which expression it shows (learnt from the real
  faces' labels) and, InfoGAN's Q head, which continuous codes made it. Maximising the codes' mutual information
  with the face (a Gaussian Q with fixed variance: a squared error) makes each code a direction the faces vary
  along, such as intensity or pose, though no label names it.

`InfoGAN` is itself the critic's expression classifier, a functional model from uint8 `image` to probabilities
like every model of the zoo, so `emopy evaluate`, `emopy export` and `emopy visualize` take an InfoGAN run as they
take any. The generator rides along (`model.generator`) and `emopy generate` samples it. Training is its own
`train_step`: the compiled loss and metrics are the expression head's on real faces; the adversarial and
information terms are fixed by the method.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tf_keras import layers

from emopy.models import InputSpec, inputs, preprocessing, scaled_units

NOISE_DIM = 62  # as in the InfoGAN paper's MNIST and faces models
CONTINUOUS_CODES = 2
INFO_WEIGHT = 1.0  # lambda of the mutual-information term
EXPRESSION_WEIGHT = 1.0  # the generator's expression term: the critic must read the asked expression

# DCGAN's Adam (learning rate 2e-4, beta_1 0.5) at a constant rate; a GAN's last epoch is its model, not the one
# whose validation loss was lowest.
RECIPE = {"optimizer": "adam", "learning_rate": 2e-4, "beta_1": 0.5, "lr_schedule": "constant",
          "class_weight_power": 0.5}


def generator(input_spec: InputSpec, num_classes: int, width: float = 1.0, noise_dim: int = NOISE_DIM,
              codes: int = CONTINUOUS_CODES) -> keras.Model:
    """(noise [B, noise_dim], expression one-hot [B, K], codes [B, codes]) -> float32 pixels in [0, 255], of the
    spec's image shape: a dense layer to a 1/8-size map, then three stride-2 transposed convolutions."""
    if input_spec.image_size % 8:
        raise ValueError(f"the InfoGAN's generator makes sides divisible by 8, not {input_spec.image_size}")
    noise = keras.Input((noise_dim,), name="noise")
    expression = keras.Input((num_classes,), name="expression")
    code_values = keras.Input((codes,), name="codes")
    start = input_spec.image_size // 8
    x = layers.Concatenate()([noise, expression, code_values])
    x = layers.Dense(start * start * scaled_units(128, width), use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Reshape((start, start, scaled_units(128, width)))(x)
    # 3x3 kernels: on CPUs, TensorFlow's stride-2 4x4 convolutions and their gradients run 3x slower, and a
    # smoothing convolution at full size would double the generator's time.
    for filters in (64, 32):
        x = layers.Conv2DTranspose(scaled_units(filters, width), 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Conv2DTranspose(input_spec.channels, 3, strides=2, padding="same", activation="tanh",
                               dtype="float32")(x)
    return keras.Model({"noise": noise, "expression": expression, "codes": code_values},
                       preprocessing.pixels_from_centred(x), name="generator")


def critic(input_spec: InputSpec, num_classes: int, width: float = 1.0, codes: int = CONTINUOUS_CODES
           ) -> keras.Model:
    """Pixels in [0, 255] -> {real: logit, expression: logits [K], codes: Q's means}: three stride-2 convolutions
    with leaky ReLUs (no batch norm: real and generated batches pass separately), the batch's spread, then the three
    heads."""
    pixels = keras.Input((input_spec.image_size, input_spec.image_size, input_spec.channels), name="pixels")
    x = preprocessing.centred_pixels(pixels)
    for filters in (32, 64, 128):
        x = layers.Conv2D(scaled_units(filters, width), 3, strides=2, padding="same")(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Dropout(0.3)(layers.Flatten()(MinibatchStddev(name="minibatch_stddev")(x)))
    real = layers.Dense(1, dtype="float32", name="real")(x)
    shared = layers.Dense(scaled_units(128, width))(x)
    shared = layers.LeakyReLU(0.2)(shared)
    return keras.Model(pixels, {"real": real,
                                "expression": layers.Dense(num_classes, dtype="float32", name="expression")(shared),
                                "codes": layers.Dense(codes, dtype="float32", name="codes")(shared)},
                       name="critic")


@keras.utils.register_keras_serializable(package="emopy")
class MinibatchStddev(layers.Layer):
    """Appends one feature map: how much the batch's faces differ, averaged over features and places (Karras et al.
    2018, *Progressive Growing of GANs*). A batch of near-copies then looks fake, so the generator cannot answer
    every noise of an expression with the same face."""

    def call(self, features):
        spread = tf.math.reduce_std(tf.cast(features, tf.float32), axis=0)
        shape = tf.concat([tf.shape(features)[:-1], [1]], axis=0)
        return tf.concat([features, tf.cast(tf.fill(shape, tf.reduce_mean(spread)), features.dtype)], axis=-1)


@keras.utils.register_keras_serializable(package="emopy")
class InfoGAN(keras.Model):
    """The critic's expression classifier (uint8 `image` -> probabilities), trained with its generator."""

    def __init__(self, critic: keras.Model, generator: keras.Model, output_activation: str = "softmax", **kwargs):
        image = inputs(InputSpec(kind="image", image_size=critic.input_shape[1], channels=critic.input_shape[3]))
        logits = critic(image["image"])["expression"]
        probabilities = layers.Activation(output_activation, dtype="float32", name="probabilities")(logits)
        super().__init__(inputs=image, outputs=probabilities, **kwargs)
        self.critic, self.generator, self.output_activation = critic, generator, output_activation
        self.noise_dim = generator.input_shape["noise"][-1]
        self.num_codes = generator.input_shape["codes"][-1]
        self.num_classes = generator.input_shape["expression"][-1]
        # Keras tracks these among self.metrics, so they are reset each epoch and logged beside the compiled ones.
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("critic_loss", "generator_loss", "info_loss", "fake_expression_accuracy")}

    def get_config(self) -> dict:
        return {"name": self.name, "output_activation": self.output_activation,
                "critic": keras.saving.serialize_keras_object(self.critic),
                "generator": keras.saving.serialize_keras_object(self.generator)}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> "InfoGAN":
        config = dict(config)
        parts = {key: keras.saving.deserialize_keras_object(config.pop(key), custom_objects=custom_objects)
                 for key in ("critic", "generator")}
        return cls(parts["critic"], parts["generator"], **config)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs) -> None:
        """`optimizer` trains the critic; a copy of it, the generator. `loss` and `metrics` are the expression
        head's on real faces (class ids, or vote shares)."""
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        copy = inner.__class__.from_config(inner.get_config())
        self.generator_optimizer = (keras.mixed_precision.LossScaleOptimizer(copy)
                                    if inner is not self.optimizer else copy)

    def _random_latents(self, batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """A batch of random (noise, expression class ids, codes): every expression equally often, so the rare
        ones are learnt as well as the common."""
        noise = tf.random.normal((batch, self.noise_dim))
        classes = tf.random.uniform((batch,), 0, self.num_classes, dtype=tf.int32)
        codes = tf.random.uniform((batch, self.num_codes), -1.0, 1.0)
        return noise, classes, codes

    def _generate(self, noise, classes, codes, training: bool) -> tf.Tensor:
        return self.generator({"noise": noise, "expression": tf.one_hot(classes, self.num_classes),
                               "codes": codes}, training=training)

    def train_step(self, data):
        images, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        real = tf.cast(images["image"], tf.float32)
        batch = tf.shape(real)[0]
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        adversarial = keras.losses.BinaryCrossentropy(from_logits=True, reduction="none")
        expression_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")

        noise, classes, codes = self._random_latents(batch)
        with tf.GradientTape() as tape:
            fake = self._generate(noise, classes, codes, training=True)
            on_real, on_fake = self.critic(real, training=True), self.critic(fake, training=True)
            probabilities = tf.nn.softmax(on_real["expression"]) if self.output_activation == "softmax" else \
                tf.sigmoid(on_real["expression"])
            real_expression = self.compiled_loss(targets, probabilities, sample_weight)  # scaled for replicas
            fooled = (tf.reduce_mean(adversarial(tf.ones((batch, 1)), on_real["real"]))
                      + tf.reduce_mean(adversarial(tf.zeros((batch, 1)), on_fake["real"])))
            info = tf.reduce_mean(tf.square(on_fake["codes"] - codes))
            critic_loss = real_expression + (fooled + INFO_WEIGHT * info) / replicas
        self.optimizer.minimize(critic_loss, self.critic.trainable_variables, tape=tape)

        noise, classes, codes = self._random_latents(batch)
        with tf.GradientTape() as tape:
            on_fake = self.critic(self._generate(noise, classes, codes, training=True), training=True)
            fool = tf.reduce_mean(adversarial(tf.ones((batch, 1)), on_fake["real"]))
            asked = tf.reduce_mean(expression_loss(classes, on_fake["expression"]))
            info = tf.reduce_mean(tf.square(on_fake["codes"] - codes))
            generator_loss = (fool + EXPRESSION_WEIGHT * asked + INFO_WEIGHT * info) / replicas
        # The generator and the critic's Q head both raise the codes' mutual information (InfoGAN's lower bound).
        info_variables = [*self.generator.trainable_variables, *self.critic.get_layer("codes").trainable_variables]
        self.generator_optimizer.minimize(generator_loss, info_variables, tape=tape)

        self.compiled_metrics.update_state(targets, probabilities, sample_weight)
        read = tf.cast(tf.argmax(on_fake["expression"], -1, output_type=tf.int32) == classes, tf.float32)
        for name, value in (("critic_loss", critic_loss * replicas), ("generator_loss", generator_loss * replicas),
                            ("info_loss", info), ("fake_expression_accuracy", tf.reduce_mean(read))):
            self.trackers[name].update_state(value)
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        """The expression head on real faces: validation loss and accuracy, as any classifier of the zoo reports."""
        images, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        probabilities = self(images, training=False)
        self.compiled_loss(targets, probabilities, sample_weight)
        self.compiled_metrics.update_state(targets, probabilities, sample_weight)
        return {metric.name: metric.result() for metric in self.metrics if metric.name not in self.trackers}

    def draw(self, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """`count` latents (noise, codes) from a NumPy generator seeded with `seed`: the same seed, the same faces."""
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((count, self.noise_dim)).astype(np.float32)
        return noise, rng.uniform(-1.0, 1.0, (count, self.num_codes)).astype(np.float32)

    def render(self, classes: np.ndarray, noise: np.ndarray, codes: np.ndarray, batch: int = 256) -> np.ndarray:
        """uint8 faces [N, S, S, C] of the expression class ids `classes` from latents (`draw`)."""
        expression = np.eye(self.num_classes, dtype=np.float32)[np.asarray(classes)]
        pixels = [self.generator.predict_on_batch({"noise": noise[start:start + batch],
                                                   "expression": expression[start:start + batch],
                                                   "codes": codes[start:start + batch]})
                  for start in range(0, len(expression), batch)]
        return np.clip(np.rint(np.concatenate(pixels)), 0, 255).astype(np.uint8)

    def sample(self, classes: np.ndarray, seed: int) -> np.ndarray:
        """uint8 faces of the expression class ids `classes`, latents drawn with `seed`."""
        return self.render(classes, *self.draw(len(classes), seed))


def build(input_spec: InputSpec, num_classes: int, output_activation: str = "softmax", width: float = 1.0
          ) -> InfoGAN:
    """The InfoGAN for `input_spec` (kind "image") with `num_classes` expressions; `width` scales the filters and
    units of both networks."""
    return InfoGAN(critic(input_spec, num_classes, width), generator(input_spec, num_classes, width),
                   output_activation=output_activation, name="infogan")


class SampleGrid(keras.callbacks.Callback):
    """A grid of generated faces in TensorBoard at each epoch's end: a row per expression, the same noise and
    codes in each column, so that epochs compare face by face."""

    def __init__(self, log_dir: str, columns: int = 8, seed: int = 0):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.columns, self.seed = columns, seed

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        model = self.model
        # The same latents in each column: `columns` drawn once, tiled over the rows.
        noise, codes = model.draw(self.columns, self.seed)
        classes = np.repeat(np.arange(model.num_classes), self.columns)
        faces = model.render(classes, np.tile(noise, (model.num_classes, 1)), np.tile(codes, (model.num_classes, 1)))
        with self.writer.as_default():
            tf.summary.image("samples", tile(faces, self.columns)[None], step=epoch)
        self.writer.flush()


def tile(faces: np.ndarray, columns: int) -> np.ndarray:
    """Faces [N, S, S, C] as one image [rows * S, columns * S, C], row by row (a short last row is blank)."""
    count, size, _, channels = faces.shape
    rows = -(-count // columns)
    grid = np.zeros((rows * size, columns * size, channels), faces.dtype)
    for index, face in enumerate(faces):
        row, column = divmod(index, columns)
        grid[row * size:(row + 1) * size, column * size:(column + 1) * size] = face
    return grid


def callbacks(log_dir: str) -> list[keras.callbacks.Callback]:
    """What a training run adds for this architecture: the sample grid in TensorBoard."""
    return [SampleGrid(log_dir)]


CUSTOM_OBJECTS = {"InfoGAN": InfoGAN, "MinibatchStddev": MinibatchStddev}
