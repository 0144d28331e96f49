"""DCGAN of digits images: a transposed-convolution generator against a convolutional critic.

The model trains with its own `train_step` on `model.train_on_batch(images, None)` (there are
no targets: any given are ignored): each step draws a batch of standard normal codes, updates
the discriminator (real images -> 1, generated -> 0, with one-sided label smoothing) with its
optimizer, then the generator (generated -> 1) with its own. It reports
`discriminator_loss`, `generator_loss` and `real_score` / `fake_score`, the discriminator's mean
probability of "real" on each kind of image. Calling the model maps codes to images.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models import generative
from models.keras_lib import keras
from models.spec import TaskSpec

# The DCGAN paper's Adam momentum; 0.9 makes the two-player game oscillate.
ADAM_BETA_1 = 0.5


class GenerativeAdversarialNetwork(keras.Model):
    """A generator and a discriminator, each with its own optimizer.

    Attributes:
        generator: Codes [batch, latent_dim] -> images [batch, num_features].
        discriminator: Images -> logits of "real" [batch, 1].
        latent_dim: Width of the code.
        label_smoothing: Target of real images for the discriminator is 1 - label_smoothing.
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        latent_dim: int,
        label_smoothing: float = 0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.label_smoothing = label_smoothing
        # Per example, averaged over the global batch by `cross_entropy`: under a distribution
        # strategy (the pipeline's Trainer) a Keras loss may not reduce by itself.
        self.per_example_cross_entropy = keras.losses.BinaryCrossentropy(
            from_logits=True, reduction=keras.losses.Reduction.NONE
        )
        self.trackers = [
            keras.metrics.Mean(name=name)
            for name in ("discriminator_loss", "generator_loss", "real_score", "fake_score")
        ]

    @property
    def metrics(self):
        return self.trackers

    def compile(
        self,
        generator_optimizer: keras.optimizers.Optimizer,
        discriminator_optimizer: keras.optimizers.Optimizer,
        **kwargs,
    ):
        """Sets the two optimizers (Keras' own `optimizer` is unused)."""
        super().compile(**kwargs)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def generate(self, latent: tf.Tensor) -> tf.Tensor:
        """Maps codes (draws from the N(0, I) prior) to images."""
        return self.generator(latent, training=False)

    def cross_entropy(self, targets: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        """Mean binary cross-entropy over the global batch (of all replicas)."""
        return tf.nn.compute_average_loss(self.per_example_cross_entropy(targets, logits))

    def train_step(self, data):
        real, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        batch_size = tf.shape(real)[0]

        latent = tf.random.normal([batch_size, self.latent_dim])
        with tf.GradientTape() as tape:
            fake = self.generator(latent, training=True)
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            discriminator_loss = self.cross_entropy(
                tf.fill(tf.shape(real_logits), 1.0 - self.label_smoothing), real_logits
            ) + self.cross_entropy(tf.zeros_like(fake_logits), fake_logits)
        variables = self.discriminator.trainable_variables
        self.discriminator_optimizer.apply_gradients(
            zip(tape.gradient(discriminator_loss, variables), variables, strict=True)
        )

        latent = tf.random.normal([batch_size, self.latent_dim])
        with tf.GradientTape() as tape:
            generated_logits = self.discriminator(
                self.generator(latent, training=True), training=True
            )
            generator_loss = self.cross_entropy(tf.ones_like(generated_logits), generated_logits)
        variables = self.generator.trainable_variables
        self.generator_optimizer.apply_gradients(
            zip(tape.gradient(generator_loss, variables), variables, strict=True)
        )

        for tracker, value in zip(
            self.trackers,
            (
                discriminator_loss,
                generator_loss,
                tf.reduce_mean(tf.sigmoid(real_logits)),
                tf.reduce_mean(tf.sigmoid(fake_logits)),
            ),
            strict=True,
        ):
            tracker.update_state(value)
        return {tracker.name: tracker.result() for tracker in self.trackers}


def make_generator(spec: TaskSpec, latent_dim: int, filters: int) -> keras.Model:
    """Codes -> a 2x2 map -> two stride-2 transposed convolutions -> an image (linear output)."""
    height, width, channels = spec.image_shape
    latent = keras.Input(shape=(latent_dim,), name=generative.LATENT)
    hidden = keras.layers.Dense(
        (height // 4) * (width // 4) * filters * 2, use_bias=False, name="project"
    )(latent)
    hidden = keras.layers.BatchNormalization(momentum=0.9, name="project_batch_norm")(hidden)
    hidden = keras.layers.ReLU(name="project_relu")(hidden)
    hidden = keras.layers.Reshape((height // 4, width // 4, filters * 2), name="map")(hidden)
    hidden = keras.layers.Conv2DTranspose(
        filters, 4, strides=2, padding="same", use_bias=False, name="upsample_0"
    )(hidden)
    hidden = keras.layers.BatchNormalization(momentum=0.9, name="upsample_0_batch_norm")(hidden)
    hidden = keras.layers.ReLU(name="upsample_0_relu")(hidden)
    # Linear output: the images are z-scores, whose range a tanh would have to be told.
    hidden = keras.layers.Conv2DTranspose(
        channels, 4, strides=2, padding="same", name="upsample_1"
    )(hidden)
    images = keras.layers.Flatten(name=generative.IMAGES)(hidden)
    return keras.Model(latent, images, name="generator")


def make_discriminator(spec: TaskSpec, filters: int, dropout: float) -> keras.Model:
    """Images -> two stride-2 convolutions with leaky ReLU -> one logit of "real"."""
    images = keras.Input(shape=(spec.num_features,), name=spec.feature_key)
    hidden = keras.layers.Reshape(spec.image_shape, name="image")(images)
    for block, block_filters in enumerate((filters, filters * 2)):
        hidden = keras.layers.Conv2D(
            block_filters, 3, strides=2, padding="same", name=f"conv_{block}"
        )(hidden)
        hidden = keras.layers.LeakyReLU(0.2, name=f"leaky_relu_{block}")(hidden)
        if dropout:
            hidden = keras.layers.Dropout(dropout, name=f"dropout_{block}")(hidden)
    hidden = keras.layers.Flatten(name="flatten")(hidden)
    logits = keras.layers.Dense(1, name="real_logit")(hidden)
    return keras.Model(images, logits, name="discriminator")


def make_model(
    spec: TaskSpec,
    *,
    latent_dim: int = 32,
    filters: int = 64,
    dropout: float = 0.3,
    generator_learning_rate: float = 2e-4,
    discriminator_learning_rate: float = 2e-4,
    label_smoothing: float = 0.1,
) -> GenerativeAdversarialNetwork:
    """Builds a compiled DCGAN for an image task whose sides are multiples of 4.

    Args:
        spec: The task; `spec.image_shape` must be set.
        latent_dim: Width of the code, >= 1.
        filters: Filters of the generator's last hidden and the discriminator's first
            convolution; the other has twice as many. >= 1.
        dropout: Dropout rate after each discriminator convolution, in [0, 1).
        generator_learning_rate, discriminator_learning_rate: Adam step sizes (beta_1 0.5).
        label_smoothing: The discriminator's target for real images is 1 minus this, in
            [0, 0.5).

    Returns:
        A compiled, built `GenerativeAdversarialNetwork`.

    Raises:
        ValueError: If the task is not such an image task or a value is out of range.
    """
    if spec.image_shape is None or spec.image_shape[0] % 4 or spec.image_shape[1] % 4:
        raise ValueError(
            "Expected an image task whose height and width are multiples of 4 for the DCGAN, "
            f"received task {spec.name!r} with image shape {spec.image_shape}."
        )
    if latent_dim < 1 or filters < 1:
        raise ValueError(
            f"Expected latent_dim and filters >= 1, received {latent_dim} and {filters}."
        )
    if not 0 <= dropout < 1 or not 0 <= label_smoothing < 0.5:
        raise ValueError(
            "Expected dropout in [0, 1) and label_smoothing in [0, 0.5), received "
            f"{dropout} and {label_smoothing}."
        )
    for learning_rate in (generator_learning_rate, discriminator_learning_rate):
        if learning_rate <= 0:
            raise ValueError(f"Expected learning rates > 0, received {learning_rate}.")
    model = GenerativeAdversarialNetwork(
        make_generator(spec, latent_dim, filters),
        make_discriminator(spec, filters, dropout),
        latent_dim,
        label_smoothing=label_smoothing,
        name="gan",
    )
    model(tf.zeros([1, latent_dim]))
    model.compile(
        generator_optimizer=keras.optimizers.Adam(generator_learning_rate, beta_1=ADAM_BETA_1),
        discriminator_optimizer=keras.optimizers.Adam(
            discriminator_learning_rate, beta_1=ADAM_BETA_1
        ),
    )
    return model


def search_space(hp) -> dict:
    """The tunable hyper-parameters of the DCGAN, with their defaults."""
    return {
        "latent_dim": hp.Choice("latent_dim", [16, 32, 64], default=32),
        "filters": hp.Choice("filters", [32, 64, 128], default=64),
        "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.3),
        "generator_learning_rate": hp.Float(
            "generator_learning_rate", 5e-5, 1e-3, sampling="log", default=2e-4
        ),
        "discriminator_learning_rate": hp.Float(
            "discriminator_learning_rate", 5e-5, 1e-3, sampling="log", default=2e-4
        ),
    }


def build_model(hp, spec: TaskSpec) -> GenerativeAdversarialNetwork:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))


def sample_batch(spec: TaskSpec, size: int, seed: int) -> tuple[np.ndarray, None]:
    """A batch of transformed (real) digits; a GAN has no targets, so they are None."""
    return generative.sample_images(spec, size, seed), None


def model_signatures(
    model: GenerativeAdversarialNetwork, spec: TaskSpec
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """The generator's signatures (the discriminator is not served).

    Returns:
        `sample`: `latent` noise -> {`images`}; `sample_seeded`: `count` and `seed` ->
        {`images`}; and `serving_default`, the same function as `sample`, for clients that
        name no signature.
    """
    signatures = generative.latent_signatures(model.generate, model.latent_dim)
    return {"serving_default": signatures[generative.SAMPLE_SIGNATURE], **signatures}
