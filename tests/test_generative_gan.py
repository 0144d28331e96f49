"""The GAN's two-player train step and the classifier-based quality of generated images."""

import numpy as np
import pytest

from models import generative
from models.families import gan, mlp
from models.tasks import DIGITS


def test_train_step_updates_both_networks_with_their_own_optimizers():
    model = gan.make_model(DIGITS, latent_dim=8, filters=8)
    images, targets = gan.sample_batch(DIGITS, 16, seed=0)
    generator_before = [weight.copy() for weight in model.generator.get_weights()]
    discriminator_before = [weight.copy() for weight in model.discriminator.get_weights()]
    results = model.train_on_batch(images, targets, return_dict=True)
    assert set(results) == {"discriminator_loss", "generator_loss", "real_score", "fake_score"}
    assert all(np.isfinite(value) for value in results.values())
    for network, before in (
        (model.generator, generator_before),
        (model.discriminator, discriminator_before),
    ):
        kernels_changed = [
            not np.allclose(old, new)
            for old, new, variable in zip(
                before, network.get_weights(), network.weights, strict=True
            )
            if variable.trainable
        ]
        assert all(kernels_changed), network.name
    assert int(model.generator_optimizer.iterations) == 1
    assert int(model.discriminator_optimizer.iterations) == 1


def test_generated_images_have_the_image_shape():
    model = gan.make_model(DIGITS, latent_dim=8, filters=8)
    assert model.generate(np.zeros((3, 8), np.float32)).shape == (3, 64)


@pytest.fixture(scope="module")
def classifier():
    """A small MLP from the registry, trained briefly on the digits train split."""
    splits = generative.digits_splits()
    model = mlp.make_model(DIGITS, learning_rate=3e-3)
    model.fit(splits.train, splits.train_labels, epochs=15, batch_size=64, verbose=0)
    return model


@pytest.mark.slow
def test_quality_of_real_digits_covers_every_class_confidently(classifier):
    splits = generative.digits_splits()
    quality = generative.generation_quality(splits.test, classifier)
    assert quality.classes_covered == 10
    assert quality.mean_confidence > 0.8
    assert sum(quality.class_fractions) == pytest.approx(1.0)


@pytest.mark.slow
def test_quality_of_a_collapsed_generator_covers_one_class(classifier):
    splits = generative.digits_splits()
    threes = splits.test[splits.test_labels == 3]
    quality = generative.generation_quality(threes, classifier)
    assert quality.classes_covered == 1
    assert quality.class_fractions[3] > 0.9


def test_quality_needs_images():
    with pytest.raises(ValueError, match="at least one generated image"):
        generative.generation_quality(np.zeros((0, 64), np.float32), None)
