"""The autoencoder as an anomaly detector, and the PNG grid of images."""

import numpy as np
import pytest
from PIL import Image

from models import generative
from models.families import autoencoder
from models.tasks import DIGITS


@pytest.mark.slow
def test_anomaly_score_ranks_noise_and_corruption_above_real_test_digits():
    splits = generative.digits_splits()
    model = autoencoder.make_model(DIGITS, latent_dim=8, units=64, learning_rate=3e-3)
    model.fit(splits.train, splits.train, epochs=15, batch_size=64, verbose=0)
    digits_scores = autoencoder.anomaly_scores(model, splits.test)
    noise_scores = autoencoder.anomaly_scores(
        model, generative.noise_images(splits, len(splits.test), seed=1)
    )
    corrupted_scores = autoencoder.anomaly_scores(
        model, generative.corrupt_images(splits, splits.test, 0.5, seed=2)
    )
    noise_auc = generative.anomaly_auc(digits_scores, noise_scores)
    corrupted_auc = generative.anomaly_auc(digits_scores, corrupted_scores)
    print(f"anomaly AUC: noise {noise_auc:.4f}, 50%-corrupted digits {corrupted_auc:.4f}")
    assert noise_auc > 0.99
    assert corrupted_auc > 0.9


def test_anomaly_scores_are_the_mean_squared_reconstruction_error():
    model = autoencoder.make_model(DIGITS, latent_dim=2, units=8, num_layers=1)
    images, _ = autoencoder.sample_batch(DIGITS, 5, seed=0)
    expected = ((model.predict(images, verbose=0) - images) ** 2).mean(axis=1)
    np.testing.assert_allclose(autoencoder.anomaly_scores(model, images), expected, rtol=1e-5)


def test_auc_is_one_for_separated_scores_and_half_for_equal_ones():
    assert generative.anomaly_auc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert generative.anomaly_auc(np.array([0.1, 0.1]), np.array([0.1, 0.1])) == 0.5


def test_image_grid_png_has_the_expected_pixel_size_and_contrast(tmp_path):
    splits = generative.digits_splits()
    path = str(tmp_path / "grid.png")
    # 23 images in rows of 10: 3 rows; each image 8 pixels plus 1 of padding, 3 PNG pixels each.
    size = generative.write_image_grid(
        splits.test[:23],
        path,
        value_range=generative.pixel_value_range(splits),
        columns=10,
        cell_pixels=3,
    )
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == ((10 * 9 + 1) * 3, (3 * 9 + 1) * 3)  # (width, height)
        pixels = np.asarray(image.convert("L"))
    assert size == pixels.shape
    assert pixels[0, 0] == 255  # the padding is white
    assert pixels.min() < 30  # the strokes are dark


def test_image_grid_refuses_images_that_are_not_square(tmp_path):
    with pytest.raises(ValueError, match="square images"):
        generative.write_image_grid(
            np.zeros((2, 10)), str(tmp_path / "grid.png"), value_range=(0.0, 1.0)
        )
