"""Variational autoencoder of digits images, trained on the evidence lower bound (ELBO).

The encoder gives each image a diagonal Gaussian posterior over the latent code (mean and log
variance); a code is drawn by the reparameterisation trick, `mean + exp(log_variance / 2) *
noise`, so gradients flow through the draw; the decoder gives a Gaussian over the transformed
pixels with a mean per pixel and one learned scale. Per image,

    ELBO = E_q[log p(image | code)] - KL(q(code | image) || N(0, I)),

in nats (natural logarithms). The model trains on `model.train_on_batch(images, images)` (the
targets are ignored; the inputs are what is modelled) with its own `train_step`, which reports
`loss` (= -ELBO), `reconstruction_nll`, `kl` and `elbo`, each a mean per image.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from models import generative
from models.classifier import make_optimizer
from models.keras_lib import keras
from models.spec import TaskSpec

# Latent draws per image in the ELBO of the serving signature. They are one fixed table of
# standard normal noise, drawn once with this seed when the signatures are made and shared by
# every image: the signature is a deterministic function of its input, and has no random op
# (TFLite's builtin ops have no stateless random normal).
SERVING_SAMPLES = 8
SERVING_SEED = 0


def reparameterize(mean: tf.Tensor, log_variance: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """A draw from N(mean, exp(log_variance)) as a differentiable function of standard noise."""
    return mean + tf.exp(0.5 * log_variance) * noise


def gaussian_kl(mean: tf.Tensor, log_variance: tf.Tensor) -> tf.Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, I)) per example, summed over the last axis."""
    return -0.5 * tf.reduce_sum(
        1.0 + log_variance - tf.square(mean) - tf.exp(log_variance), axis=-1
    )


def gaussian_nll(values: tf.Tensor, mean: tf.Tensor, log_scale: tf.Tensor) -> tf.Tensor:
    """-log N(values | mean, exp(log_scale)^2) per example, summed over the last axis."""
    standardized = (values - mean) * tf.exp(-log_scale)
    return tf.reduce_sum(
        0.5 * tf.square(standardized) + log_scale + 0.5 * math.log(2.0 * math.pi), axis=-1
    )


def standard_noise(count: int, latent_dim: int, num_samples: int, seed: int) -> tf.Tensor:
    """Seeded standard normal noise of shape [count, num_samples, latent_dim]."""
    return tf.random.stateless_normal([count, num_samples, latent_dim], seed=[seed, 0])


class VariationalAutoencoder(keras.Model):
    """An encoder to a Gaussian posterior, a Gaussian decoder, and the ELBO as objective.

    Calling the model reconstructs images from their posterior means (deterministic).

    Attributes:
        encoder: Images -> [mean, log_variance] of the posterior, each [batch, latent_dim].
        decoder: Codes -> the decoder's mean image [batch, num_features].
        latent_dim: Width of the code.
        log_scale: Learned log standard deviation of the decoder's Gaussian, one for all
            pixels (a scale per pixel would shrink towards 0 on the pixels that are always
            blank and make the likelihood unbounded).
    """

    def __init__(self, encoder: keras.Model, decoder: keras.Model, latent_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = latent_dim
        self.log_scale = self.add_weight(
            name="decoder_log_scale", shape=(), initializer="zeros", trainable=True
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name=generative.RECONSTRUCTION_NLL)
        self.kl_tracker = keras.metrics.Mean(name=generative.KL)
        self.elbo_tracker = keras.metrics.Mean(name=generative.ELBO)

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker, self.elbo_tracker]

    def call(self, inputs, training=False):
        mean, _ = self.encoder(inputs, training=training)
        return self.decoder(mean, training=training)

    def generate(self, latent: tf.Tensor) -> tf.Tensor:
        """Decodes codes (e.g. draws from the N(0, I) prior) to mean images."""
        return self.decoder(latent, training=False)

    def elbo_terms(self, images, noise, training: bool = False) -> dict[str, tf.Tensor]:
        """The ELBO of each image and its two terms, in nats, estimated with the given noise.

        Args:
            images: Transformed images, [batch, num_features].
            noise: Standard normal noise, [batch, num_samples, latent_dim]; the expected
                log-likelihood is averaged over the `num_samples` codes drawn with it.
            training: Whether the layers run in training mode.

        Returns:
            `reconstruction_nll` (-E_q[log p(image | code)]), `kl` and `elbo`
            (= -(reconstruction_nll + kl)), each [batch].
        """
        images = tf.convert_to_tensor(images, tf.float32)
        mean, log_variance = self.encoder(images, training=training)
        codes = reparameterize(mean[:, None, :], log_variance[:, None, :], noise)
        num_samples = tf.shape(noise)[1]
        decoded = self.decoder(tf.reshape(codes, [-1, self.latent_dim]), training=training)
        decoded = tf.reshape(decoded, [tf.shape(images)[0], num_samples, -1])
        reconstruction_nll = tf.reduce_mean(
            gaussian_nll(images[:, None, :], decoded, self.log_scale), axis=1
        )
        kl = gaussian_kl(mean, log_variance)
        return {
            generative.RECONSTRUCTION_NLL: reconstruction_nll,
            generative.KL: kl,
            generative.ELBO: -(reconstruction_nll + kl),
        }

    def _record(self, terms: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        self.loss_tracker.update_state(-terms[generative.ELBO])
        self.reconstruction_tracker.update_state(terms[generative.RECONSTRUCTION_NLL])
        self.kl_tracker.update_state(terms[generative.KL])
        self.elbo_tracker.update_state(terms[generative.ELBO])
        return {metric.name: metric.result() for metric in self.metrics}

    def _one_draw(self, images: tf.Tensor) -> tf.Tensor:
        return tf.random.normal([tf.shape(images)[0], 1, self.latent_dim])

    def train_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            terms = self.elbo_terms(images, self._one_draw(images), training=True)
            loss = -tf.reduce_mean(terms[generative.ELBO])
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        return self._record(terms)

    def test_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._record(self.elbo_terms(images, self._one_draw(images)))


def _dense_stack(inputs, widths: list[int], prefix: str):
    hidden = inputs
    for layer, width in enumerate(widths):
        hidden = keras.layers.Dense(width, activation="relu", name=f"{prefix}_dense_{layer}")(
            hidden
        )
    return hidden


def make_model(
    spec: TaskSpec,
    *,
    latent_dim: int = 8,
    units: int = 256,
    num_layers: int = 2,
    learning_rate: float = 1e-3,
) -> VariationalAutoencoder:
    """Builds a compiled dense VAE.

    Args:
        spec: The task; its feature vector is what is modelled.
        latent_dim: Width of the code, >= 1.
        units: Width of the encoder's first hidden layer (halved per layer; the decoder
            mirrors it), >= 1.
        num_layers: Hidden layers in the encoder and in the decoder, >= 1.
        learning_rate: Adam's step size.

    Returns:
        A compiled, built `VariationalAutoencoder`.

    Raises:
        ValueError: If a size is below 1.
    """
    if latent_dim < 1 or units < 1 or num_layers < 1:
        raise ValueError(
            "Expected latent_dim, units and num_layers >= 1, received "
            f"{latent_dim}, {units} and {num_layers}."
        )
    widths = [max(units // 2**layer, 1) for layer in range(num_layers)]
    inputs = keras.Input(shape=(spec.num_features,), name=spec.feature_key)
    hidden = _dense_stack(inputs, widths, "encoder")
    mean = keras.layers.Dense(latent_dim, name="posterior_mean")(hidden)
    log_variance = keras.layers.Dense(latent_dim, name="posterior_log_variance")(hidden)
    encoder = keras.Model(inputs, [mean, log_variance], name="encoder")

    latent = keras.Input(shape=(latent_dim,), name=generative.LATENT)
    hidden = _dense_stack(latent, list(reversed(widths)), "decoder")
    decoded = keras.layers.Dense(spec.num_features, name="decoded_mean")(hidden)
    decoder = keras.Model(latent, decoded, name="decoder")

    model = VariationalAutoencoder(encoder, decoder, latent_dim, name="vae")
    model(tf.zeros([1, spec.num_features]))
    model.compile(optimizer=make_optimizer("adam", learning_rate))
    return model


def search_space(hp) -> dict:
    """The tunable hyper-parameters of the VAE, with their defaults."""
    return {
        "latent_dim": hp.Choice("latent_dim", [2, 4, 8, 16], default=8),
        "units": hp.Choice("units", [128, 256, 512], default=256),
        "num_layers": hp.Int("num_layers", 1, 3, default=2),
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3),
    }


def build_model(hp, spec: TaskSpec) -> VariationalAutoencoder:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))


def sample_batch(spec: TaskSpec, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch of transformed digits and its targets, the same images (which are ignored)."""
    images = generative.sample_images(spec, size, seed)
    return images, images


def model_signatures(
    model: VariationalAutoencoder, spec: TaskSpec
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """The VAE's signatures.

    Returns:
        `serving_default`: images -> {`reconstruction`, `elbo`, `reconstruction_nll`, `kl`}
        per image (ELBO from the `SERVING_SAMPLES` draws of a fixed noise table); `sample`:
        `latent` noise -> {`images`}; `sample_seeded`: `count` and `seed` -> {`images`}.
    """
    noise_table = tf.constant(
        np.random.default_rng(SERVING_SEED).standard_normal((1, SERVING_SAMPLES, model.latent_dim)),
        tf.float32,
    )

    @tf.function(input_signature=[generative.images_spec(spec)])
    def serve(images):
        noise = tf.tile(noise_table, [tf.shape(images)[0], 1, 1])
        return {generative.RECONSTRUCTION: model(images), **model.elbo_terms(images, noise)}

    return {
        "serving_default": serve.get_concrete_function(),
        **generative.latent_signatures(model.generate, model.latent_dim),
    }
