"""What the generative families share: data, signatures, scores, image grids and the benchmark.

The autoencoder, VAE and GAN (`models.families.autoencoder`, `.vae`, `.gan`) model the digits
task's transformed input, `pixels_xf`: the 64 pixels z-scored with one mean and one variance of
all pixel values of the train split (`models.preprocessing.preprocessing_fn`). So every image
they take or make is in that space; `digits_splits` reproduces it in numpy for tests and the
benchmark, and `write_image_grid` maps it back to pixel intensities for display.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from models.data import digits
from models.files import write_json_atomically
from models.keras_lib import keras
from models.spec import TaskSpec

# Output and input names of the generative signatures.
RECONSTRUCTION = "reconstruction"
ANOMALY_SCORE = "anomaly_score"
LATENT = "latent"
IMAGES = "images"
ELBO = "elbo"
KL = "kl"
RECONSTRUCTION_NLL = "reconstruction_nll"
COUNT = "count"
SEED = "seed"
SAMPLE_SIGNATURE = "sample"
SEEDED_SAMPLE_SIGNATURE = "sample_seeded"
# A class counts as covered by generated images when at least this share of them is given it.
COVERAGE_FRACTION = 0.05


@dataclass(frozen=True)
class DigitsSplits:
    """The embedded digits data split 70/15/15 as the pipeline splits it, z-scored by Transform.

    Attributes:
        train, eval, test: Transformed pixels, float32 [n, 64].
        train_labels, eval_labels, test_labels: Labels, int64 [n].
        pixel_mean, pixel_std: The train split's mean and standard deviation of all pixel
            values, which the z-score uses (the pipeline's Transform computes the same ones).
    """

    train: np.ndarray
    eval: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray
    eval_labels: np.ndarray
    test_labels: np.ndarray
    pixel_mean: float
    pixel_std: float

    def standardize(self, raw_pixels: np.ndarray) -> np.ndarray:
        """Maps raw pixel values (0..16) to the model's input space."""
        return ((np.asarray(raw_pixels, np.float64) - self.pixel_mean) / self.pixel_std).astype(
            np.float32
        )


@functools.lru_cache(maxsize=4)
def digits_splits(seed: int = 0) -> DigitsSplits:
    """The embedded digits data, split as `models.data.digits.write_splits` does and z-scored.

    Args:
        seed: Seed of the stratified split (the pipeline uses 0).

    Returns:
        The three splits in the model's input space.
    """
    pixels, labels = digits.load_digits_arrays()
    indices = digits.split_indices(labels, digits.SplitFractions(), seed)
    train_pixels = pixels[indices["train"]].astype(np.float64)
    mean, std = float(train_pixels.mean()), float(train_pixels.std())

    def standardize(rows: np.ndarray) -> np.ndarray:
        return ((rows.astype(np.float64) - mean) / std).astype(np.float32)

    return DigitsSplits(
        train=standardize(pixels[indices["train"]]),
        eval=standardize(pixels[indices["eval"]]),
        test=standardize(pixels[indices["test"]]),
        train_labels=labels[indices["train"]],
        eval_labels=labels[indices["eval"]],
        test_labels=labels[indices["test"]],
        pixel_mean=mean,
        pixel_std=std,
    )


def sample_images(spec: TaskSpec, size: int, seed: int) -> np.ndarray:
    """A reproducible batch of train-split digits in the model's input space, float32 [size, 64].

    Raises:
        ValueError: If `spec` is not the digits task or `size` is not in 1..train split size.
    """
    if spec.num_features != len(digits.PIXEL_KEYS) or spec.image_shape != digits.IMAGE_SHAPE:
        raise ValueError(
            f"Expected the digits task (64 features, image {digits.IMAGE_SHAPE}), received "
            f"task {spec.name!r} ({spec.num_features} features, image {spec.image_shape})."
        )
    train = digits_splits().train
    if not 1 <= size <= len(train):
        raise ValueError(f"Expected a batch size in 1..{len(train)}, received {size}.")
    rows = np.random.default_rng(seed).choice(len(train), size=size, replace=False)
    return train[rows]


def noise_images(splits: DigitsSplits, count: int, seed: int) -> np.ndarray:
    """Images of uniformly random whole pixel values 0..16, in the model's input space."""
    raw = np.random.default_rng(seed).integers(0, digits.PIXEL_MAX + 1, size=(count, 64))
    return splits.standardize(raw)


def corrupt_images(
    splits: DigitsSplits, images: np.ndarray, fraction: float, seed: int
) -> np.ndarray:
    """Replaces a random `fraction` of each image's pixels by uniformly random pixel values."""
    rng = np.random.default_rng(seed)
    noise = noise_images(splits, len(images), seed + 1)
    replaced = rng.random(images.shape) < fraction
    return np.where(replaced, noise, images).astype(np.float32)


def images_spec(spec: TaskSpec) -> tf.TensorSpec:
    """The input of the signatures that take images: [batch, num_features] float32."""
    return tf.TensorSpec([None, spec.num_features], tf.float32, name=spec.feature_key)


def latent_signatures(
    generate: Callable[[tf.Tensor], tf.Tensor], latent_dim: int
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """The two sampling signatures of a generative model with a standard normal prior.

    Args:
        generate: Maps latent vectors [batch, latent_dim] to images [batch, 64].
        latent_dim: Width of the latent vectors.

    Returns:
        `sample`: `latent` noise [batch, latent_dim] -> {`images`}; and `sample_seeded`:
        `count` (int32 scalar) and `seed` (int32 scalar) -> {`images`}, the noise drawn
        statelessly, so the same seed gives the same images.
    """

    @tf.function(input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name=LATENT)])
    def sample(latent):
        return {IMAGES: generate(latent)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([], tf.int32, name=COUNT),
            tf.TensorSpec([], tf.int32, name=SEED),
        ]
    )
    def sample_seeded(count, seed):
        latent = tf.random.stateless_normal(tf.stack([count, latent_dim]), seed=tf.stack([seed, 0]))
        return {IMAGES: generate(latent)}

    return {
        SAMPLE_SIGNATURE: sample.get_concrete_function(),
        SEEDED_SAMPLE_SIGNATURE: sample_seeded.get_concrete_function(),
    }


def anomaly_auc(normal_scores: np.ndarray, anomalous_scores: np.ndarray) -> float:
    """The probability that an anomalous example scores higher than a normal one (ROC AUC)."""
    from sklearn.metrics import roc_auc_score

    labels = np.concatenate([np.zeros(len(normal_scores)), np.ones(len(anomalous_scores))])
    return float(roc_auc_score(labels, np.concatenate([normal_scores, anomalous_scores])))


@dataclass(frozen=True)
class GenerationQuality:
    """How a digits classifier sees generated images.

    Attributes:
        mean_confidence: Mean over images of the classifier's highest class probability.
        classes_covered: Number of classes given at least `min_fraction` of the images.
        class_fractions: Share of the images given to each class (its argmax), per class.
    """

    mean_confidence: float
    classes_covered: int
    class_fractions: tuple[float, ...]


def generation_quality(
    images: np.ndarray, classifier: keras.Model, min_fraction: float = COVERAGE_FRACTION
) -> GenerationQuality:
    """Scores generated images with a digits classifier: confidence and class coverage.

    A generator that makes clear digits gets confident predictions; one that makes all ten
    digits (no mode collapse) covers the ten classes.

    Args:
        images: Generated images in the model's input space, [n, 64].
        classifier: A model mapping such images to class probabilities [n, num_classes].
        min_fraction: Share of the images a class needs to count as covered.

    Returns:
        The mean confidence, the number of covered classes and the share per class.

    Raises:
        ValueError: If there are no images or `min_fraction` is not in (0, 1].
    """
    if len(images) == 0:
        raise ValueError("Expected at least one generated image, received none.")
    if not 0 < min_fraction <= 1:
        raise ValueError(f"Expected min_fraction in (0, 1], received {min_fraction}.")
    probabilities = np.asarray(classifier.predict(images, verbose=0, batch_size=256))
    counts = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1])
    fractions = counts / len(images)
    return GenerationQuality(
        mean_confidence=float(probabilities.max(axis=1).mean()),
        classes_covered=int((fractions >= min_fraction).sum()),
        class_fractions=tuple(float(fraction) for fraction in fractions),
    )


def write_image_grid(
    images: np.ndarray,
    path: str,
    *,
    value_range: tuple[float, float],
    columns: int = 10,
    cell_pixels: int = 4,
    padding: int = 1,
) -> tuple[int, int]:
    """Writes images as a PNG grid, dark strokes on white like the digits, atomically.

    Each image pixel becomes a `cell_pixels` square; images are separated and framed by
    `padding` image pixels of background. The PNG is exactly
    `(rows * (8 + padding) + padding) * cell_pixels` high and
    `(columns * (8 + padding) + padding) * cell_pixels` wide for 8x8 images.

    Args:
        images: [n, 64] or [n, 8, 8] values; `value_range` maps them to white..black.
        path: Where to write the PNG.
        value_range: (lowest, highest) value, e.g. the z-scores of raw pixels 0 and 16; values
            outside are clipped.
        columns: Images per row.
        cell_pixels: PNG pixels per image pixel (nearest-neighbour upscaling).
        padding: Background image pixels between and around the images.

    Returns:
        The PNG's (height, width) in pixels.

    Raises:
        ValueError: If there are no images, they are not square, or a size is out of range.
    """
    from matplotlib import image as matplotlib_image

    images = np.asarray(images, np.float32)
    count = len(images)
    side = math.isqrt(images[0].size) if count else 0
    if count == 0 or side * side != images[0].size:
        raise ValueError(
            f"Expected a non-empty batch of square images, received shape {list(images.shape)}."
        )
    if columns < 1 or cell_pixels < 1 or padding < 0:
        raise ValueError(
            "Expected columns >= 1, cell_pixels >= 1 and padding >= 0, received "
            f"{columns}, {cell_pixels} and {padding}."
        )
    low, high = value_range
    if not high > low:
        raise ValueError(
            f"Expected value_range (low, high) with high > low, received {value_range}."
        )
    intensities = np.clip((images.reshape(count, side, side) - low) / (high - low), 0.0, 1.0)
    rows = -(-count // columns)
    step = side + padding
    grid = np.zeros((rows * step + padding, columns * step + padding), np.float32)
    for index, image in enumerate(intensities):
        top = padding + (index // columns) * step
        left = padding + (index % columns) * step
        grid[top : top + side, left : left + side] = image
    grid = np.kron(grid, np.ones((cell_pixels, cell_pixels), np.float32))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, staging = tempfile.mkstemp(suffix=".png", dir=directory)
    os.close(handle)
    try:
        matplotlib_image.imsave(staging, grid, cmap="gray_r", vmin=0.0, vmax=1.0, format="png")
        os.chmod(staging, 0o644)  # mkstemp makes it private; a report is not.
        os.replace(staging, path)
    except BaseException:
        os.unlink(staging)
        raise
    return grid.shape


def pixel_value_range(splits: DigitsSplits) -> tuple[float, float]:
    """The model-space values of raw pixels 0 and 16, for `write_image_grid`."""
    low, high = splits.standardize(np.array([0, digits.PIXEL_MAX]))
    return float(low), float(high)


@dataclass(frozen=True)
class GenerativeFigures:
    """What `measure` found on the digits test split.

    Attributes:
        autoencoder_mse: Mean squared reconstruction error per pixel (model space).
        autoencoder_noise_auc: ROC AUC of the anomaly score, test digits against uniform noise.
        autoencoder_corrupted_auc: The same against test digits with `corruption` of the
            pixels replaced by noise.
        corruption: Share of the pixels replaced by noise in those corrupted digits.
        vae_test_elbo: Mean ELBO per test image in nats (Gaussian decoder over the model space).
        vae_test_reconstruction_nll: Its reconstruction term (negative log-likelihood), nats.
        vae_test_kl: Its KL term, nats.
        vae_quality, gan_quality: The classifier's view of `num_samples` generated images.
        test_digits_quality: The same classifier on the real test digits, for reference.
        classifier_test_accuracy: Accuracy of that classifier on the test split.
        seconds: Training seconds per model.
        parameters: Parameters per model.
        grids: PNG sample grids written, by name.
    """

    autoencoder_mse: float
    autoencoder_noise_auc: float
    autoencoder_corrupted_auc: float
    corruption: float
    vae_test_elbo: float
    vae_test_reconstruction_nll: float
    vae_test_kl: float
    vae_quality: GenerationQuality
    gan_quality: GenerationQuality
    test_digits_quality: GenerationQuality
    classifier_test_accuracy: float
    seconds: dict[str, float]
    parameters: dict[str, int]
    grids: dict[str, str]


def measure(
    output_dir: str,
    *,
    autoencoder_epochs: int = 150,
    vae_epochs: int = 300,
    gan_steps: int = 3000,
    classifier_epochs: int = 40,
    batch_size: int = 64,
    num_samples: int = 1000,
    corruption: float = 0.25,
    seed: int = 0,
) -> GenerativeFigures:
    """Trains the default autoencoder, VAE and GAN on the digits train split and measures them.

    The figures are computed on the test split (or, for the generators, on `num_samples`
    generated images judged by an MLP classifier trained here on the train split). The VAE and
    GAN sample grids (`vae_samples.png`, `gan_samples.png`, and `test_digits.png` for
    comparison) and `generative.json` with the figures are written to `output_dir`.

    Args:
        output_dir: Folder that receives the PNG grids and `generative.json`.
        autoencoder_epochs, vae_epochs: Passes over the train split.
        gan_steps: GAN training steps (one discriminator and one generator update each).
        classifier_epochs: Passes of the judging MLP over the train split.
        batch_size: Examples per step.
        num_samples: Generated images scored per generator.
        corruption: Share of the pixels replaced by noise in the corrupted test images.
        seed: Seed of the weights, the shuffles and the noise.

    Returns:
        The figures.
    """
    import keras_tuner

    from models import registry
    from models.families import autoencoder, gan, vae
    from models.tasks import DIGITS

    keras.utils.set_random_seed(seed)
    splits = digits_splits()
    default_hp = keras_tuner.HyperParameters()
    seconds: dict[str, float] = {}
    parameters: dict[str, int] = {}

    def timed_fit(name: str, model: keras.Model, fit: Callable[[], object]) -> None:
        start = time.perf_counter()
        fit()
        seconds[name] = round(time.perf_counter() - start, 1)
        parameters[name] = int(model.count_params())

    classifier = registry.get_family("mlp").build_model(default_hp, DIGITS)
    timed_fit(
        "classifier",
        classifier,
        lambda: classifier.fit(
            splits.train,
            splits.train_labels,
            epochs=classifier_epochs,
            batch_size=batch_size,
            verbose=0,
        ),
    )
    classifier_accuracy = float(classifier.evaluate(splits.test, splits.test_labels, verbose=0)[1])

    autoencoder_model = autoencoder.build_model(default_hp, DIGITS)
    timed_fit(
        "autoencoder",
        autoencoder_model,
        lambda: autoencoder_model.fit(
            splits.train, splits.train, epochs=autoencoder_epochs, batch_size=batch_size, verbose=0
        ),
    )
    test_scores = autoencoder.anomaly_scores(autoencoder_model, splits.test)
    noise_scores = autoencoder.anomaly_scores(
        autoencoder_model, noise_images(splits, len(splits.test), seed)
    )
    corrupted_scores = autoencoder.anomaly_scores(
        autoencoder_model, corrupt_images(splits, splits.test, corruption, seed)
    )

    vae_model = vae.build_model(default_hp, DIGITS)
    timed_fit(
        "vae",
        vae_model,
        lambda: vae_model.fit(
            splits.train, splits.train, epochs=vae_epochs, batch_size=batch_size, verbose=0
        ),
    )
    vae_terms = vae_model.elbo_terms(
        splits.test, vae.standard_noise(len(splits.test), vae_model.latent_dim, 16, seed)
    )
    vae_images = vae_model.generate(
        vae.standard_noise(num_samples, vae_model.latent_dim, 1, seed)[:, 0]
    ).numpy()

    gan_model = gan.build_model(default_hp, DIGITS)
    gan_data = (
        tf.data.Dataset.from_tensor_slices(splits.train)
        .shuffle(len(splits.train), seed=seed)
        .repeat()
        .batch(batch_size, drop_remainder=True)
    )
    timed_fit(
        "gan",
        gan_model,
        lambda: gan_model.fit(gan_data, steps_per_epoch=gan_steps, epochs=1, verbose=0),
    )
    gan_images = gan_model.generate(
        tf.random.stateless_normal([num_samples, gan_model.latent_dim], seed=[seed, 1])
    ).numpy()

    value_range = pixel_value_range(splits)
    grids = {}
    for name, images in (
        ("vae_samples", vae_images),
        ("gan_samples", gan_images),
        ("test_digits", splits.test),
    ):
        grids[name] = os.path.join(output_dir, f"{name}.png")
        write_image_grid(images[:100], grids[name], value_range=value_range, cell_pixels=6)
    figures = GenerativeFigures(
        autoencoder_mse=float(test_scores.mean()),
        autoencoder_noise_auc=anomaly_auc(test_scores, noise_scores),
        autoencoder_corrupted_auc=anomaly_auc(test_scores, corrupted_scores),
        corruption=corruption,
        vae_test_elbo=float(vae_terms[ELBO].numpy().mean()),
        vae_test_reconstruction_nll=float(vae_terms[RECONSTRUCTION_NLL].numpy().mean()),
        vae_test_kl=float(vae_terms[KL].numpy().mean()),
        vae_quality=generation_quality(vae_images, classifier),
        gan_quality=generation_quality(gan_images, classifier),
        test_digits_quality=generation_quality(splits.test, classifier),
        classifier_test_accuracy=classifier_accuracy,
        seconds=seconds,
        parameters=parameters,
        grids=grids,
    )
    write_json_atomically(os.path.join(output_dir, "generative.json"), asdict(figures))
    return figures


def format_figures(figures: GenerativeFigures) -> str:
    """The figures as a short text table."""
    lines = [
        f"autoencoder: test MSE {figures.autoencoder_mse:.4f}, anomaly AUC vs noise "
        f"{figures.autoencoder_noise_auc:.4f}, vs {figures.corruption:.0%}-corrupted digits "
        f"{figures.autoencoder_corrupted_auc:.4f}",
        f"vae: test ELBO {figures.vae_test_elbo:.2f} nats/image (reconstruction NLL "
        f"{figures.vae_test_reconstruction_nll:.2f}, KL {figures.vae_test_kl:.2f})",
    ]
    for name, quality in (
        ("vae samples", figures.vae_quality),
        ("gan samples", figures.gan_quality),
        ("test digits", figures.test_digits_quality),
    ):
        lines.append(
            f"{name}: {quality.classes_covered}/10 classes covered, mean confidence "
            f"{quality.mean_confidence:.3f}"
        )
    lines.append(f"judging MLP test accuracy {figures.classifier_test_accuracy:.4f}")
    lines.append(f"train seconds {figures.seconds}, parameters {figures.parameters}")
    lines.append(json.dumps(figures.grids))
    return "\n".join(lines)
