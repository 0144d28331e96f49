"""The VAE's objective: reparameterisation, KL, ELBO and what its train step reports."""

import math

import numpy as np
import pytest
import tensorflow as tf

from models import generative
from models.families import vae
from models.tasks import DIGITS


@pytest.fixture(scope="module")
def model():
    model = vae.make_model(DIGITS, latent_dim=3, units=16, num_layers=1)
    images, targets = vae.sample_batch(DIGITS, 32, seed=0)
    model.train_on_batch(images, targets)  # so the decoder's scale is no longer its initial 1
    return model


def test_reparameterisation_has_the_posterior_mean_and_variance():
    mean = tf.constant([[1.0, -2.0]])
    log_variance = tf.constant([[math.log(4.0), math.log(0.25)]])
    noise = tf.random.stateless_normal([200_000, 2], seed=[1, 2])
    draws = vae.reparameterize(mean, log_variance, noise).numpy()
    np.testing.assert_allclose(draws.mean(axis=0), [1.0, -2.0], atol=0.02)
    np.testing.assert_allclose(draws.var(axis=0), [4.0, 0.25], rtol=0.02)


def test_gradients_flow_through_the_draw_to_mean_and_variance():
    mean = tf.Variable([[0.5]])
    log_variance = tf.Variable([[0.0]])
    noise = tf.constant([[2.0]])
    with tf.GradientTape() as tape:
        draw = vae.reparameterize(mean, log_variance, noise)
    mean_gradient, variance_gradient = tape.gradient(draw, [mean, log_variance])
    # d draw / d mean = 1; d draw / d log_variance = exp(log_variance / 2) * noise / 2 = 1.
    np.testing.assert_allclose(mean_gradient.numpy(), [[1.0]])
    np.testing.assert_allclose(variance_gradient.numpy(), [[1.0]])


def _numpy_elbo_terms(model, images, noise):
    """The ELBO written out in numpy from the encoder's and decoder's outputs."""
    mean, log_variance = (value.numpy() for value in model.encoder(images))
    codes = mean[:, None, :] + np.exp(0.5 * log_variance)[:, None, :] * noise
    decoded = model.decoder(codes.reshape(-1, codes.shape[-1])).numpy()
    decoded = decoded.reshape(len(images), noise.shape[1], -1)
    scale = math.exp(float(model.log_scale.numpy()))
    log_likelihood = -0.5 * ((images[:, None, :] - decoded) / scale) ** 2 - math.log(
        scale * math.sqrt(2 * math.pi)
    )
    reconstruction_nll = -log_likelihood.sum(axis=2).mean(axis=1)
    kl = 0.5 * (np.exp(log_variance) + mean**2 - 1.0 - log_variance).sum(axis=1)
    return reconstruction_nll, kl


def test_elbo_is_minus_reconstruction_plus_kl_computed_independently(model):
    images, _ = vae.sample_batch(DIGITS, 10, seed=3)
    noise = np.random.default_rng(0).standard_normal((10, 5, model.latent_dim)).astype(np.float32)
    terms = model.elbo_terms(images, noise)
    reconstruction_nll, kl = _numpy_elbo_terms(model, images, noise)
    np.testing.assert_allclose(
        terms[generative.RECONSTRUCTION_NLL].numpy(), reconstruction_nll, rtol=1e-4
    )
    np.testing.assert_allclose(terms[generative.KL].numpy(), kl, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        terms[generative.ELBO].numpy(), -(reconstruction_nll + kl), rtol=1e-4
    )
    assert np.all(kl >= 0)


def test_serving_signature_gives_the_elbo_of_its_fixed_noise_table(model):
    images, _ = vae.sample_batch(DIGITS, 4, seed=4)
    served = vae.model_signatures(model, DIGITS)["serving_default"](
        **{DIGITS.feature_key: tf.constant(images)}
    )
    table = np.random.default_rng(vae.SERVING_SEED).standard_normal(
        (1, vae.SERVING_SAMPLES, model.latent_dim)
    )
    reconstruction_nll, kl = _numpy_elbo_terms(model, images, np.repeat(table, 4, axis=0))
    np.testing.assert_allclose(
        served[generative.ELBO].numpy(), -(reconstruction_nll + kl), rtol=1e-4
    )
    np.testing.assert_allclose(served[generative.RECONSTRUCTION].numpy(), model(images).numpy())


def test_train_step_reports_reconstruction_kl_and_elbo_and_raises_the_elbo():
    model = vae.make_model(DIGITS, latent_dim=4, units=32, num_layers=1, learning_rate=3e-3)
    images, targets = vae.sample_batch(DIGITS, 64, seed=5)
    first = model.train_on_batch(images, targets, return_dict=True)
    assert set(first) == {"loss", generative.RECONSTRUCTION_NLL, generative.KL, generative.ELBO}
    assert first[generative.ELBO] == pytest.approx(-first["loss"])
    assert first["loss"] == pytest.approx(
        first[generative.RECONSTRUCTION_NLL] + first[generative.KL]
    )
    for _ in range(30):
        last = model.train_on_batch(images, targets, return_dict=True)
    assert last[generative.ELBO] > first[generative.ELBO] + 10
