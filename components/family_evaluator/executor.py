"""Judges a generative model or a language model by its family's own metric on the test split.

TFMA scores predictions against labels; these families are judged otherwise, so this stage
computes, on the test split of Transform's output:

- autoencoder: mean squared reconstruction error per pixel, against that of always answering
  the train split's mean image; and the anomaly AUC of its reconstruction error, test digits
  against images of uniformly random pixels;
- vae: the ELBO per image in nats (its serving signature's fixed draws), against the
  log-likelihood of the simplest model of the same kind: one Gaussian with the train split's
  mean image and one shared variance (a VAE whose code is ignored reduces to it);
- gan: class coverage and mean confidence of a digits classifier (an MLP trained here, with a
  fixed seed, on the train split) on generated images;
- language models: perplexity of the next character, against the unigram model of the train
  split's characters (and the uniform one).

A model is blessed when its metric clears the bar (`Thresholds`) and, when there is a latest
blessed model, is no worse than that model's (evaluated here on the same data) by more than the
tolerance. The blessing is laid out as TFX's Evaluator lays out its own (a `BLESSED` or
`NOT_BLESSED` file; the component sets the `blessed` custom property), so the Pusher and the
latest-blessed-model resolver read it. `metrics.json`, the PNG sample grids (vae, gan,
autoencoder reconstructions) and the generated text of a language model go under the
evaluation's URI.

Paths may be local folders or object-store URIs (`components.storage`).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from components import storage
from models import generative, registry, tasks
from models.text_features import CHAR_ID_COUNT, PAD_ID

METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.txt"
BLESSED_FILE = "BLESSED"
NOT_BLESSED_FILE = "NOT_BLESSED"
TRAIN_SPLIT = "train"
TEST_SPLIT = "test"
# Generated images judged per generator, and how many of them the grid shows.
GENERATED_IMAGES = 1000
GRID_IMAGES = 100
# The judging classifier: the registry's MLP at its defaults, this many passes over the train split.
JUDGE_EPOCHS = 40
JUDGE_BATCH_SIZE = 64
# Test images whose reconstructions the autoencoder's grid shows (originals above them).
RECONSTRUCTED_IMAGES = 30
# Prompts and length of a language model's generated samples.
PROMPTS = ("The ", "def ", "import ")
GENERATED_CHARACTERS = 160
SAMPLE_TEMPERATURE = 0.8
PREDICT_BATCH = 64


@dataclass(frozen=True)
class Thresholds:
    """When a family's model is blessed (the `[evaluation]` table of a pipeline config).

    Attributes:
        max_reconstruction_ratio: Autoencoder: highest test MSE, as a share of the MSE of
            always answering the train split's mean image.
        min_elbo_gain: VAE: how many nats per image its test ELBO must exceed the
            log-likelihood of the shared-variance Gaussian around the mean image by.
        min_classes_covered: GAN: fewest digit classes the judge must give at least 5% of the
            generated images.
        min_mean_confidence: GAN: lowest mean of the judge's top probability on them.
        max_perplexity_ratio: Language model: highest test perplexity, as a share of the
            unigram model's.
        max_error_rise: Largest relative rise of the test MSE or perplexity over the latest
            blessed model's.
        max_elbo_drop: Largest drop of the test ELBO below the latest blessed model's, nats.
        max_coverage_drop: Most classes the coverage may lose against the latest blessed model.
    """

    max_reconstruction_ratio: float = 0.5
    min_elbo_gain: float = 0.0
    min_classes_covered: int = 8
    min_mean_confidence: float = 0.5
    max_perplexity_ratio: float = 1.0
    max_error_rise: float = 0.05
    max_elbo_drop: float = 2.0
    max_coverage_drop: int = 1

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            expected = int if item.type in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"Expected {item.name} to be a number, received {value!r}.")
            if expected is int and not isinstance(value, int):
                raise ValueError(f"Expected {item.name} to be an integer, received {value!r}.")
            if value < 0:
                raise ValueError(f"Expected {item.name} >= 0, received {value!r}.")
        if not 0 <= self.min_classes_covered <= 10 or not 0 <= self.min_mean_confidence <= 1:
            raise ValueError(
                "Expected min_classes_covered in 0..10 and min_mean_confidence in [0, 1], "
                f"received {self.min_classes_covered} and {self.min_mean_confidence}."
            )

    @classmethod
    def from_json(cls, text: str) -> Thresholds:
        """Parses the component's `thresholds` parameter.

        Raises:
            ValueError: If it is not a JSON object of known fields with valid values.
        """
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"Expected thresholds as a JSON object, received {text!r}.") from error
        if not isinstance(values, dict):
            raise ValueError(f"Expected thresholds as a JSON object, received {text!r}.")
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Expected thresholds among {sorted(known)}, received {unknown}.")
        return cls(**values)


@dataclass(frozen=True)
class FamilyMetrics:
    """A model's figures on the test split.

    Attributes:
        metric: Name of the metric the model is judged by, a key of `values`.
        higher_is_better: Whether a larger value of it is better.
        values: Every figure, by name (the metric, its reference baselines, extras).
        grids: Name -> local path of a PNG grid written for it.
        samples: Generated text, for a language model.
    """

    metric: str
    higher_is_better: bool
    values: dict[str, float]
    grids: dict[str, str] = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)

    @property
    def value(self) -> float:
        return self.values[self.metric]


@dataclass(frozen=True)
class Verdict:
    """Whether the model is blessed, and the checks it was decided on, in words."""

    blessed: bool
    checks: list[dict]

    @property
    def failures(self) -> list[str]:
        return [check["description"] for check in self.checks if not check["passed"]]


def _check(passed: bool, description: str) -> dict:
    return {"passed": bool(passed), "description": description}


def judge(
    family: str,
    candidate: FamilyMetrics,
    thresholds: Thresholds,
    baseline: FamilyMetrics | None = None,
) -> Verdict:
    """Decides the blessing from the figures: the family's bar, then the latest blessed model.

    Args:
        family: The model family (its card's metric says which bar applies).
        candidate: The new model's figures.
        thresholds: The bars and tolerances.
        baseline: The latest blessed model's figures on the same data, if there is one.

    Returns:
        The verdict with each check in words.

    Raises:
        ValueError: If the family is not judged here or a figure the bar needs is missing.
    """
    metric = registry.get_card(family).metric
    values = candidate.values

    def need(*names: str) -> list[float]:
        missing = [name for name in names if name not in values]
        if missing:
            raise ValueError(
                f"Expected the figures {list(names)} of a {family!r} model, missing {missing} "
                f"in {sorted(values)}."
            )
        return [values[name] for name in names]

    checks = []
    if metric == "mse":
        mse, mean_image = need("test_mse", "mean_image_mse")
        bar = thresholds.max_reconstruction_ratio * mean_image
        checks.append(
            _check(
                mse <= bar,
                f"test MSE {mse:.4f} <= {thresholds.max_reconstruction_ratio:g} x the mean "
                f"image's {mean_image:.4f} = {bar:.4f}",
            )
        )
    elif metric == "elbo":
        elbo, gaussian = need("test_elbo", "gaussian_elbo")
        bar = gaussian + thresholds.min_elbo_gain
        checks.append(
            _check(
                elbo >= bar,
                f"test ELBO {elbo:.2f} nats/image >= the mean-image Gaussian's "
                f"{gaussian:.2f} + {thresholds.min_elbo_gain:g} = {bar:.2f}",
            )
        )
    elif metric == "class_coverage":
        covered, confidence = need("classes_covered", "mean_confidence")
        checks.append(
            _check(
                covered >= thresholds.min_classes_covered,
                f"classes covered {covered:.0f}/10 >= {thresholds.min_classes_covered}",
            )
        )
        checks.append(
            _check(
                confidence >= thresholds.min_mean_confidence,
                f"mean confidence {confidence:.3f} >= {thresholds.min_mean_confidence:g}",
            )
        )
    elif metric == "perplexity":
        perplexity, unigram = need("test_perplexity", "unigram_perplexity")
        bar = thresholds.max_perplexity_ratio * unigram
        checks.append(
            _check(
                perplexity < bar,
                f"test perplexity {perplexity:.3f} < {thresholds.max_perplexity_ratio:g} x the "
                f"unigram model's {unigram:.3f} = {bar:.3f}",
            )
        )
    else:
        raise ValueError(
            f"Expected a family judged by mse, elbo, class_coverage or perplexity, received "
            f"{family!r} (judged by {metric!r})."
        )
    if baseline is not None:
        checks.append(_against_baseline(metric, candidate, baseline, thresholds))
    return Verdict(blessed=all(check["passed"] for check in checks), checks=checks)


def _against_baseline(
    metric: str, candidate: FamilyMetrics, baseline: FamilyMetrics, thresholds: Thresholds
) -> dict:
    new, old = candidate.value, baseline.value
    name = candidate.metric.replace("_", " ")
    if metric == "elbo":
        bar = old - thresholds.max_elbo_drop
        return _check(
            new >= bar,
            f"{name} {new:.2f} >= the latest blessed model's {old:.2f} - "
            f"{thresholds.max_elbo_drop:g} = {bar:.2f}",
        )
    if metric == "class_coverage":
        bar = old - thresholds.max_coverage_drop
        return _check(
            new >= bar,
            f"{name} {new:.0f} >= the latest blessed model's {old:.0f} - "
            f"{thresholds.max_coverage_drop} = {bar:.0f}",
        )
    bar = old * (1 + thresholds.max_error_rise)
    return _check(
        new <= bar,
        f"{name} {new:.4f} <= the latest blessed model's {old:.4f} x "
        f"(1 + {thresholds.max_error_rise:g}) = {bar:.4f}",
    )


def read_split(
    examples_dir: str, split: str, feature_spec: Mapping[str, object], keys: list[str]
) -> dict[str, np.ndarray]:
    """Reads features of one split of Transform's transformed examples.

    Args:
        examples_dir: The `transformed_examples` artifact URI.
        split: e.g. "test"; its folder is `Split-<split>`.
        feature_spec: The transformed feature spec (`TFTransformOutput`).
        keys: The features to read.

    Returns:
        Feature -> values, [n, ...] in file order.

    Raises:
        FileNotFoundError: If the split has no files.
        ValueError: If a feature is not in the spec, or the split holds no example.
    """
    missing = [key for key in keys if key not in feature_spec]
    if missing:
        raise ValueError(
            f"Expected the transformed features {keys}, missing {missing} in "
            f"{sorted(feature_spec)}."
        )
    split_dir = storage.join(examples_dir, f"Split-{split}")
    files = sorted(tf.io.gfile.glob(storage.join(split_dir, "*")))
    if not files:
        raise FileNotFoundError(
            f"Expected Transform's TFRecord files in {split_dir} (Transform must transform the "
            f"{split!r} split), found none."
        )
    spec = {key: feature_spec[key] for key in keys}
    columns: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(512):
        parsed = tf.io.parse_example(batch, spec)
        for key in keys:
            columns[key].append(parsed[key].numpy())
    if not columns[keys[0]]:
        raise ValueError(f"Expected examples in {split_dir}, found none.")
    return {key: np.concatenate(values) for key, values in columns.items()}


def _single_input(signature) -> str:
    """The name of a signature's only input."""
    _, specs = signature.structured_input_signature
    (name,) = specs
    return name


def _in_batches(function: Callable, inputs: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """A signature's outputs over `inputs` run `batch_size` rows at a time, concatenated."""
    name = _single_input(function)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(inputs), batch_size):
        outputs = function(**{name: tf.constant(inputs[start : start + batch_size])})
        for key, value in outputs.items():
            parts.setdefault(key, []).append(value.numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


def image_value_range(train_images: np.ndarray) -> tuple[float, float]:
    """The model-space values of the blank and the darkest pixel: the z-scores of raw 0 and 16,
    the least and greatest transformed values, which the train digits reach."""
    return float(train_images.min()), float(train_images.max())


def uniform_noise_images(
    value_range: tuple[float, float], count: int, width: int, seed: int
) -> np.ndarray:
    """Images of uniformly random whole pixel values 0..16, in the model's input space."""
    from models.data import digits

    low, high = value_range
    raw = np.random.default_rng(seed).integers(0, digits.PIXEL_MAX + 1, size=(count, width))
    return (low + raw / digits.PIXEL_MAX * (high - low)).astype(np.float32)


def gaussian_log_likelihood(train: np.ndarray, test: np.ndarray) -> float:
    """Mean log-likelihood per test image, nats, of one Gaussian with the train split's mean
    image and one variance shared by all pixels (its maximum-likelihood fit on train)."""
    mean = train.mean(axis=0)
    variance = float(np.mean((train - mean) ** 2))
    squared = np.sum((test - mean) ** 2, axis=1)
    width = train.shape[1]
    return float(np.mean(-0.5 * (width * math.log(2 * math.pi * variance) + squared / variance)))


def unigram_perplexity(train_targets: np.ndarray, test_targets: np.ndarray, num_ids: int) -> float:
    """Perplexity on the test targets of the train split's character frequencies (add-one
    smoothed over the `num_ids - 1` ids that are not padding); padding is left out."""
    counts = np.bincount(train_targets[train_targets != PAD_ID].ravel(), minlength=num_ids)
    counts = counts.astype(np.float64) + 1.0
    counts[PAD_ID] = 0.0
    probabilities = counts / counts.sum()
    targets = test_targets[test_targets != PAD_ID].ravel()
    return float(np.exp(-np.mean(np.log(probabilities[targets]))))


def sequence_perplexity(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """exp of the mean cross-entropy per real (non-padding) target.

    Args:
        probabilities: [n, length, num_ids] next-id probabilities.
        targets: [n, length] next ids, PAD_ID where there is none.
    """
    mask = targets != PAD_ID
    if not mask.any():
        raise ValueError("Expected at least one target that is not padding, received none.")
    picked = np.take_along_axis(probabilities, targets[..., np.newaxis], axis=-1)[..., 0]
    return float(np.exp(-np.mean(np.log(np.maximum(picked[mask], 1e-12)))))


def train_judge(train: np.ndarray, labels: np.ndarray, test: np.ndarray, test_labels, seed: int):
    """The digits classifier that judges generated images, trained here with a fixed seed.

    Returns:
        (the classifier, its test accuracy).
    """
    import keras_tuner

    from models.keras_lib import keras

    keras.utils.set_random_seed(seed)
    classifier = registry.get_family("mlp").build_model(keras_tuner.HyperParameters(), tasks.DIGITS)
    classifier.fit(
        train, labels, epochs=JUDGE_EPOCHS, batch_size=JUDGE_BATCH_SIZE, shuffle=True, verbose=0
    )
    probabilities = classifier.predict(test, verbose=0, batch_size=256)
    return classifier, float(np.mean(probabilities.argmax(axis=1) == test_labels))


def _grid(images: np.ndarray, folder: str, name: str, value_range, columns: int = 10) -> str:
    path = os.path.join(folder, f"{name}.png")
    generative.write_image_grid(
        images, path, value_range=value_range, columns=columns, cell_pixels=6
    )
    return path


class _DigitsData:
    """The digits splits a generative model is judged on."""

    def __init__(self, train: dict[str, np.ndarray], test: dict[str, np.ndarray]):
        spec = tasks.DIGITS
        self.train = train[spec.feature_key].astype(np.float32)
        self.test = test[spec.feature_key].astype(np.float32)
        self.train_labels = train[spec.label_key]
        self.test_labels = test[spec.label_key]
        self.value_range = image_value_range(self.train)


def evaluate_autoencoder(model, data: _DigitsData, seed: int, folder: str | None) -> FamilyMetrics:
    """Reconstruction MSE and anomaly AUC on the test digits; their reconstructions' grid."""
    outputs = _in_batches(model.signatures["serving_default"], data.test, 256)
    scores = outputs[generative.ANOMALY_SCORE]
    noise = uniform_noise_images(data.value_range, len(data.test), data.test.shape[1], seed)
    noise_scores = _in_batches(model.signatures["serving_default"], noise, 256)[
        generative.ANOMALY_SCORE
    ]
    values = {
        "test_mse": float(scores.mean()),
        "mean_image_mse": float(np.mean((data.test - data.train.mean(axis=0)) ** 2)),
        "anomaly_auc": generative.anomaly_auc(scores, noise_scores),
    }
    grids = {}
    if folder is not None:
        shown = data.test[:RECONSTRUCTED_IMAGES]
        rebuilt = outputs[generative.RECONSTRUCTION][:RECONSTRUCTED_IMAGES]
        # Rows of ten originals, each above its ten reconstructions.
        rows = [
            part
            for start in range(0, len(shown), 10)
            for part in (shown[start : start + 10], rebuilt[start : start + 10])
        ]
        grids["reconstructions"] = _grid(
            np.concatenate(rows), folder, "reconstructions", data.value_range
        )
    return FamilyMetrics("test_mse", False, values, grids)


def _sample_images(model, count: int, seed: int) -> np.ndarray:
    sample = model.signatures[generative.SEEDED_SAMPLE_SIGNATURE]
    outputs = sample(
        **{
            generative.COUNT: tf.constant(count, tf.int32),
            generative.SEED: tf.constant(seed, tf.int32),
        }
    )
    return outputs[generative.IMAGES].numpy()


def evaluate_vae(model, data: _DigitsData, seed: int, folder: str | None) -> FamilyMetrics:
    """Test ELBO and its terms, the mean-image Gaussian's log-likelihood; a grid of samples."""
    outputs = _in_batches(model.signatures["serving_default"], data.test, 256)
    values = {
        "test_elbo": float(outputs[generative.ELBO].mean()),
        "test_reconstruction_nll": float(outputs[generative.RECONSTRUCTION_NLL].mean()),
        "test_kl": float(outputs[generative.KL].mean()),
        "gaussian_elbo": gaussian_log_likelihood(data.train, data.test),
    }
    grids = {}
    if folder is not None:
        images = _sample_images(model, GRID_IMAGES, seed)
        grids["vae_samples"] = _grid(images, folder, "vae_samples", data.value_range)
    return FamilyMetrics("test_elbo", True, values, grids)


def evaluate_gan(
    model, data: _DigitsData, seed: int, folder: str | None, judge_model
) -> FamilyMetrics:
    """Class coverage and mean confidence of the judge on generated digits; a grid of them."""
    images = _sample_images(model, GENERATED_IMAGES, seed)
    quality = generative.generation_quality(images, judge_model)
    values = {
        "classes_covered": float(quality.classes_covered),
        "mean_confidence": quality.mean_confidence,
    }
    values.update(
        {f"class_{label}_share": share for label, share in enumerate(quality.class_fractions)}
    )
    grids = {}
    if folder is not None:
        grids["gan_samples"] = _grid(images[:GRID_IMAGES], folder, "gan_samples", data.value_range)
    return FamilyMetrics("classes_covered", True, values, grids)


def evaluate_language_model(
    model, train: dict[str, np.ndarray], test: dict[str, np.ndarray], seed: int, samples: bool
) -> FamilyMetrics:
    """Test perplexity against the unigram and uniform models; generated text from prompts."""
    spec = tasks.TEXT_LM
    probabilities = _in_batches(
        model.signatures["serving_default"], test[spec.feature_key], PREDICT_BATCH
    )["probabilities"]
    values = {
        "test_perplexity": sequence_perplexity(probabilities, test[spec.label_key]),
        "unigram_perplexity": unigram_perplexity(
            train[spec.label_key], test[spec.label_key], CHAR_ID_COUNT
        ),
        # Every id but padding equally likely.
        "uniform_perplexity": float(CHAR_ID_COUNT - 1),
    }
    generated = []
    if samples:
        generate = model.signatures["generate"]
        for prompt in PROMPTS:
            for temperature in (0.0, SAMPLE_TEMPERATURE):
                outputs = generate(
                    prompt=tf.constant(prompt),
                    num_characters=tf.constant(GENERATED_CHARACTERS, tf.int32),
                    temperature=tf.constant(temperature, tf.float32),
                    seed=tf.constant(seed, tf.int64),
                )
                generated.append(
                    {
                        "prompt": prompt,
                        "temperature": temperature,
                        "text": outputs["text"].numpy().decode("utf-8"),
                    }
                )
    return FamilyMetrics("test_perplexity", False, values, samples=generated)


def _feature_keys(family: str) -> list[str]:
    card = registry.get_card(family)
    spec = tasks.get_task(card.task)
    return [spec.feature_key, spec.label_key]


def evaluate_family(
    family: str,
    model_dir: str,
    examples_dir: str,
    feature_spec: Mapping[str, object],
    *,
    seed: int,
    folder: str | None,
    baseline_model_dir: str | None = None,
) -> tuple[FamilyMetrics, FamilyMetrics | None]:
    """Computes a family's figures for the model and, when given, the latest blessed model.

    Args:
        family: The model family.
        model_dir: The candidate's SavedModel.
        examples_dir: Transform's `transformed_examples` URI (train and test splits are read).
        feature_spec: Transform's transformed feature spec.
        seed: Seed of the generated samples, the noise images and the judge.
        folder: Local folder for the candidate's PNG grids; None writes none.
        baseline_model_dir: The latest blessed model's SavedModel, if any.

    Returns:
        (the candidate's figures, the baseline's or None).

    Raises:
        ValueError: If the family is not one judged here, or the data lacks its features.
        FileNotFoundError: If a split or a model is missing.
    """
    metric = registry.get_card(family).metric
    if metric not in ("mse", "elbo", "class_coverage", "perplexity"):
        raise ValueError(
            f"Expected a generative or language model family, received {family!r} (judged by "
            f"{metric!r}, which TFMA's Evaluator computes)."
        )
    for directory in (model_dir, baseline_model_dir):
        if directory is not None and not tf.io.gfile.exists(
            storage.join(directory, "saved_model.pb")
        ):
            raise FileNotFoundError(f"Expected a SavedModel in {directory}, found none.")
    keys = _feature_keys(family)
    train = read_split(examples_dir, TRAIN_SPLIT, feature_spec, keys)
    test = read_split(examples_dir, TEST_SPLIT, feature_spec, keys)
    models = [tf.saved_model.load(model_dir)]
    if baseline_model_dir is not None:
        models.append(tf.saved_model.load(baseline_model_dir))
    results = []
    if metric == "perplexity":
        for index, model in enumerate(models):
            results.append(evaluate_language_model(model, train, test, seed, samples=index == 0))
    else:
        data = _DigitsData(train, test)
        judge_model = None
        judge_accuracy = None
        if metric == "class_coverage":
            judge_model, judge_accuracy = train_judge(
                data.train, data.train_labels, data.test, data.test_labels, seed
            )
        for index, model in enumerate(models):
            grids_folder = folder if index == 0 else None
            if metric == "mse":
                result = evaluate_autoencoder(model, data, seed, grids_folder)
            elif metric == "elbo":
                result = evaluate_vae(model, data, seed, grids_folder)
            else:
                result = evaluate_gan(model, data, seed, grids_folder, judge_model)
                result.values["judge_test_accuracy"] = judge_accuracy
            results.append(result)
    return results[0], (results[1] if len(results) > 1 else None)


def report_document(
    family: str,
    candidate: FamilyMetrics,
    baseline: FamilyMetrics | None,
    verdict: Verdict,
    thresholds: Thresholds,
) -> dict:
    """What `metrics.json` holds."""
    return {
        "family": family,
        "metric": candidate.metric,
        "value": candidate.value,
        "higher_is_better": candidate.higher_is_better,
        "metrics": {name: round(value, 6) for name, value in candidate.values.items()},
        "baseline_metrics": (
            None
            if baseline is None
            else {name: round(value, 6) for name, value in baseline.values.items()}
        ),
        "blessed": verdict.blessed,
        "checks": verdict.checks,
        "thresholds": dataclasses.asdict(thresholds),
        "grids": {name: os.path.basename(path) for name, path in candidate.grids.items()},
        "samples": candidate.samples,
    }


def summary_html(document: dict, grids: Mapping[str, bytes]) -> str:
    """A self-contained page of the figures, the checks, the grids and the generated text."""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{value:.4f}</td></tr>"
        for name, value in document["metrics"].items()
    )
    checks = "".join(
        f"<li>{'passed' if check['passed'] else 'FAILED'}: {html.escape(check['description'])}</li>"
        for check in document["checks"]
    )
    images = "".join(
        f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,"
        f"{base64.b64encode(data).decode('ascii')}'><figcaption>{html.escape(name)}"
        "</figcaption></figure>"
        for name, data in grids.items()
    )
    samples = "".join(
        f"<p>prompt {html.escape(repr(item['prompt']))}, temperature {item['temperature']:g}:"
        f"</p><pre>{html.escape(item['prompt'] + item['text'])}</pre>"
        for item in document["samples"]
    )
    verdict = "blessed" if document["blessed"] else "not blessed"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(document['family'])} evaluation</title></head><body>"
        f"<h1>{html.escape(document['family'])}: {verdict}</h1>"
        f"<table><tr><th>figure</th><th>test split</th></tr>{rows}</table>"
        f"<ul>{checks}</ul>{images}{samples}</body></html>"
    )


def run_evaluation(
    *,
    family: str,
    model_dir: str,
    examples_dir: str,
    transform_graph_dir: str,
    thresholds: Thresholds,
    seed: int,
    evaluation_dir: str,
    blessing_dir: str,
    baseline_model_dir: str | None = None,
) -> tuple[dict, str]:
    """Evaluates, judges, and writes `metrics.json`, the grids, the samples and the blessing.

    Args:
        family: The model family.
        model_dir: The candidate's SavedModel.
        examples_dir: Transform's `transformed_examples` URI.
        transform_graph_dir: Transform's `transform_graph` URI (its feature spec is read).
        thresholds: When to bless.
        seed: Seed of the samples, noise and judge.
        evaluation_dir: Receives `metrics.json`, the PNG grids and, for a language model,
            `samples.txt`.
        blessing_dir: Receives `BLESSED` or `NOT_BLESSED`.
        baseline_model_dir: The latest blessed model's SavedModel, if any.

    Returns:
        The `metrics.json` document, and the page of `summary_html`.
    """
    import tensorflow_transform as tft

    feature_spec = tft.TFTransformOutput(transform_graph_dir).transformed_feature_spec()
    with tempfile.TemporaryDirectory() as folder:
        candidate, baseline = evaluate_family(
            family,
            model_dir,
            examples_dir,
            feature_spec,
            seed=seed,
            folder=folder,
            baseline_model_dir=baseline_model_dir,
        )
        verdict = judge(family, candidate, thresholds, baseline)
        document = report_document(family, candidate, baseline, verdict, thresholds)
        grids = {}
        for name, path in candidate.grids.items():
            with open(path, "rb") as handle:
                grids[name] = handle.read()
            storage.write_bytes(storage.join(evaluation_dir, os.path.basename(path)), grids[name])
    if candidate.samples:
        text = "\n\n".join(
            f"prompt {item['prompt']!r}, temperature {item['temperature']:g}:\n"
            f"{item['prompt']}{item['text']}"
            for item in candidate.samples
        )
        storage.write_text(storage.join(evaluation_dir, SAMPLES_FILE), text + "\n")
    storage.write_json(storage.join(evaluation_dir, METRICS_FILE), document)
    marker = BLESSED_FILE if verdict.blessed else NOT_BLESSED_FILE
    storage.write_text(storage.join(blessing_dir, marker), "")
    return document, summary_html(document, grids)
