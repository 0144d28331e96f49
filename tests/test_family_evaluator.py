"""The FamilyEvaluator's executor: its bars bless or refuse, its baselines are computed right,
bad inputs are errors that say what was expected, and an autoencoder is evaluated end to end
from transformed examples on disk."""

import json
import math
import os

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from components.family_evaluator import executor
from components.family_evaluator.executor import FamilyMetrics, Thresholds
from models import generative, registry, tasks


def _metrics(metric: str, higher: bool, **values: float) -> FamilyMetrics:
    return FamilyMetrics(metric, higher, values)


@pytest.mark.parametrize(
    ("family", "good", "bad", "failure"),
    [
        (
            "autoencoder",
            _metrics("test_mse", False, test_mse=0.29, mean_image_mse=0.6),
            _metrics("test_mse", False, test_mse=0.31, mean_image_mse=0.6),
            "test MSE 0.3100 <= 0.5 x the mean image's 0.6000",
        ),
        (
            "vae",
            _metrics("test_elbo", True, test_elbo=-40.0, gaussian_elbo=-80.0),
            _metrics("test_elbo", True, test_elbo=-81.0, gaussian_elbo=-80.0),
            "test ELBO -81.00 nats/image >= the mean-image Gaussian's -80.00",
        ),
        (
            "gan",
            _metrics("classes_covered", True, classes_covered=8.0, mean_confidence=0.5),
            _metrics("classes_covered", True, classes_covered=7.0, mean_confidence=0.9),
            "classes covered 7/10 >= 8",
        ),
        (
            "transformer_lm",
            _metrics("test_perplexity", False, test_perplexity=9.9, unigram_perplexity=25.0),
            _metrics("test_perplexity", False, test_perplexity=25.0, unigram_perplexity=25.0),
            "test perplexity 25.000 < 1 x the unigram model's 25.000",
        ),
    ],
)
def test_the_default_bar_blesses_a_good_model_and_refuses_a_bad_one(family, good, bad, failure):
    assert executor.judge(family, good, Thresholds()).blessed

    verdict = executor.judge(family, bad, Thresholds())

    assert not verdict.blessed
    assert len(verdict.failures) == 1 and verdict.failures[0].startswith(failure)


def test_a_gan_needs_confident_judgements_as_well_as_coverage():
    unsure = _metrics("classes_covered", True, classes_covered=10.0, mean_confidence=0.4)

    verdict = executor.judge("gan", unsure, Thresholds())

    assert not verdict.blessed
    assert verdict.failures == ["mean confidence 0.400 >= 0.5"]
    assert executor.judge("gan", unsure, Thresholds(min_mean_confidence=0.3)).blessed


def test_thresholds_move_the_bar():
    model = _metrics("test_perplexity", False, test_perplexity=12.0, unigram_perplexity=25.0)

    assert executor.judge("char_lstm_lm", model, Thresholds()).blessed
    assert not executor.judge("char_lstm_lm", model, Thresholds(max_perplexity_ratio=0.4)).blessed
    vae = _metrics("test_elbo", True, test_elbo=-40.0, gaussian_elbo=-80.0)
    assert not executor.judge("vae", vae, Thresholds(min_elbo_gain=41.0)).blessed


@pytest.mark.parametrize(
    ("family", "candidate", "baseline", "message"),
    [
        (
            "autoencoder",
            _metrics("test_mse", False, test_mse=0.2, mean_image_mse=0.6),
            _metrics("test_mse", False, test_mse=0.18, mean_image_mse=0.6),
            "test mse 0.2000 <= the latest blessed model's 0.1800 x (1 + 0.05) = 0.1890",
        ),
        (
            "vae",
            _metrics("test_elbo", True, test_elbo=-40.0, gaussian_elbo=-80.0),
            _metrics("test_elbo", True, test_elbo=-37.5, gaussian_elbo=-80.0),
            "test elbo -40.00 >= the latest blessed model's -37.50 - 2 = -39.50",
        ),
        (
            "gan",
            _metrics("classes_covered", True, classes_covered=8.0, mean_confidence=0.8),
            _metrics("classes_covered", True, classes_covered=10.0, mean_confidence=0.8),
            "classes covered 8 >= the latest blessed model's 10 - 1 = 9",
        ),
    ],
)
def test_a_model_worse_than_the_latest_blessed_one_beyond_the_tolerance_is_refused(
    family, candidate, baseline, message
):
    assert executor.judge(family, candidate, Thresholds()).blessed

    verdict = executor.judge(family, candidate, Thresholds(), baseline)

    assert not verdict.blessed
    assert verdict.failures == [message]
    assert executor.judge(family, baseline, Thresholds(), candidate).blessed


def test_judging_a_family_tfma_judges_or_missing_figures_is_an_error():
    with pytest.raises(ValueError, match="received 'cnn' \\(judged by 'accuracy'\\)"):
        executor.judge("cnn", _metrics("accuracy", True, accuracy=0.9), Thresholds())
    with pytest.raises(ValueError, match="missing \\['gaussian_elbo'\\]"):
        executor.judge("vae", _metrics("test_elbo", True, test_elbo=-3.0), Thresholds())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "Expected thresholds as a JSON object"),
        ("[1]", "Expected thresholds as a JSON object"),
        ('{"max_mse": 1}', "received \\['max_mse'\\]"),
        ('{"min_classes_covered": 8.5}', "min_classes_covered to be an integer"),
        ('{"max_elbo_drop": -1}', "max_elbo_drop >= 0"),
        ('{"min_classes_covered": 11}', "min_classes_covered in 0..10"),
        ('{"min_mean_confidence": "high"}', "min_mean_confidence to be a number"),
    ],
)
def test_bad_thresholds_are_refused_saying_what_was_expected(text, message):
    with pytest.raises(ValueError, match=message):
        Thresholds.from_json(text)


def test_thresholds_round_trip_through_the_component_parameter():
    thresholds = Thresholds(min_classes_covered=9, max_perplexity_ratio=0.8)

    assert Thresholds.from_json(json.dumps(thresholds.__dict__)) == thresholds


def test_unigram_perplexity_of_a_known_distribution():
    # Train: ids 1 and 2 three times each -> add-one counts 4, 4 and 1 for each other id of 1..4.
    train = np.array([[1, 1, 1, 2, 2, 2, 0, 0]])
    test = np.array([[1, 3, 0, 0]])
    probabilities = {1: 4 / 10, 3: 1 / 10}  # ids 1..4 (num_ids 5 counts padding 0)

    received = executor.unigram_perplexity(train, test, num_ids=5)

    expected = math.exp(-(math.log(probabilities[1]) + math.log(probabilities[3])) / 2)
    assert received == pytest.approx(expected)


def test_sequence_perplexity_is_one_when_sure_and_the_vocabulary_when_uniform():
    targets = np.array([[2, 1, 0], [3, 0, 0]])
    sure = np.eye(4)[targets]
    uniform = np.full((2, 3, 4), 0.25)

    assert executor.sequence_perplexity(sure, targets) == pytest.approx(1.0)
    assert executor.sequence_perplexity(uniform, targets) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="not padding"):
        executor.sequence_perplexity(uniform, np.zeros((2, 3), np.int64))


def test_gaussian_baseline_is_the_log_density_of_the_shared_variance_gaussian():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(200, 6)), rng.normal(size=(30, 6))
    mean = train.mean(axis=0)
    scale = math.sqrt(np.mean((train - mean) ** 2))

    expected = stats.norm.logpdf(test, loc=mean, scale=scale).sum(axis=1).mean()

    assert executor.gaussian_log_likelihood(train, test) == pytest.approx(expected)


def _write_split(examples_dir, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    folder = os.path.join(examples_dir, f"Split-{split}")
    os.makedirs(folder)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(os.path.join(folder, "data.gz"), options) as writer:
        for image, label in zip(images, labels, strict=True):
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "pixels_xf": tf.train.Feature(float_list=tf.train.FloatList(value=image)),
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    }
                )
            )
            writer.write(example.SerializeToString())


FEATURE_SPEC = {
    "pixels_xf": tf.io.FixedLenFeature([64], tf.float32),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def test_a_missing_split_or_feature_is_an_error_naming_it(tmp_path):
    splits = generative.digits_splits()
    _write_split(str(tmp_path), "train", splits.train[:5], splits.train_labels[:5])

    with pytest.raises(FileNotFoundError, match="must transform the 'test' split"):
        executor.read_split(str(tmp_path), "test", FEATURE_SPEC, ["pixels_xf"])
    with pytest.raises(ValueError, match="missing \\['chars_xf'\\]"):
        executor.read_split(str(tmp_path), "train", FEATURE_SPEC, ["chars_xf"])
    read = executor.read_split(str(tmp_path), "train", FEATURE_SPEC, ["pixels_xf", "label"])
    np.testing.assert_allclose(read["pixels_xf"], splits.train[:5])
    np.testing.assert_array_equal(read["label"], splits.train_labels[:5])


def test_a_family_tfma_judges_or_a_missing_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Expected a generative or language model family"):
        executor.evaluate_family(
            "mlp", str(tmp_path), str(tmp_path), FEATURE_SPEC, seed=0, folder=None
        )
    with pytest.raises(FileNotFoundError, match="Expected a SavedModel"):
        executor.evaluate_family(
            "vae", str(tmp_path), str(tmp_path), FEATURE_SPEC, seed=0, folder=None
        )


@pytest.mark.slow
def test_an_autoencoder_is_evaluated_from_transformed_examples_with_its_grid(tmp_path):
    splits = generative.digits_splits()
    examples_dir = str(tmp_path / "examples")
    _write_split(examples_dir, "train", splits.train, splits.train_labels)
    _write_split(examples_dir, "test", splits.test[:60], splits.test_labels[:60])
    family = registry.get_family("autoencoder")
    tf.keras.utils.set_random_seed(0)
    model = family.build_model(keras_tuner.HyperParameters(), tasks.DIGITS)
    model.fit(splits.train, splits.train, epochs=3, batch_size=64, verbose=0)
    model_dir = str(tmp_path / "model")
    model.save(model_dir, save_format="tf", signatures=family.model_signatures(model, tasks.DIGITS))

    candidate, baseline = executor.evaluate_family(
        "autoencoder",
        model_dir,
        examples_dir,
        FEATURE_SPEC,
        seed=0,
        folder=str(tmp_path / "grids"),
        baseline_model_dir=model_dir,
    )

    reconstructions = model.predict(splits.test[:60], verbose=0)
    assert candidate.value == pytest.approx(
        float(np.mean((reconstructions - splits.test[:60]) ** 2)), rel=1e-4
    )
    assert candidate.values["mean_image_mse"] == pytest.approx(
        float(np.mean((splits.test[:60] - splits.train.mean(axis=0)) ** 2)), rel=1e-5
    )
    assert candidate.value < candidate.values["mean_image_mse"]
    assert candidate.values["anomaly_auc"] > 0.9  # noise reconstructs far worse than digits
    assert baseline.values == candidate.values
    # Three rows of ten originals over their ten reconstructions: 6 rows of 8+1 pixels, x6.
    grid = tf.io.decode_png(tf.io.read_file(candidate.grids["reconstructions"]))
    assert grid.shape[:2] == ((6 * 9 + 1) * 6, (10 * 9 + 1) * 6)
    verdict = executor.judge("autoencoder", candidate, Thresholds(), baseline)
    document = executor.report_document("autoencoder", candidate, baseline, verdict, Thresholds())
    page = executor.summary_html(document, {"reconstructions": b"png bytes"})
    assert document["grids"] == {"reconstructions": "reconstructions.png"}
    assert "data:image/png;base64,cG5nIGJ5dGVz" in page and "test_mse" in page


@pytest.mark.slow
def test_a_gan_is_judged_by_a_classifier_trained_in_the_stage(tmp_path):
    splits = generative.digits_splits()
    examples_dir = str(tmp_path / "examples")
    _write_split(examples_dir, "train", splits.train, splits.train_labels)
    _write_split(examples_dir, "test", splits.test, splits.test_labels)
    family = registry.get_family("gan")
    tf.keras.utils.set_random_seed(0)
    model = family.build_model(keras_tuner.HyperParameters(), tasks.DIGITS)
    model.train_on_batch(splits.train[:64], None)
    model_dir = str(tmp_path / "model")
    model.save(model_dir, save_format="tf", signatures=family.model_signatures(model, tasks.DIGITS))

    candidate, baseline = executor.evaluate_family(
        "gan", model_dir, examples_dir, FEATURE_SPEC, seed=0, folder=str(tmp_path / "grids")
    )

    values = candidate.values
    assert baseline is None
    assert values["judge_test_accuracy"] > 0.9  # the judge reads real digits
    shares = [values[f"class_{label}_share"] for label in range(10)]
    assert sum(shares) == pytest.approx(1.0)
    assert values["classes_covered"] == sum(
        share >= generative.COVERAGE_FRACTION for share in shares
    )
    assert 0.1 <= values["mean_confidence"] <= 1.0
    grid = tf.io.decode_png(tf.io.read_file(candidate.grids["gan_samples"]))
    assert grid.shape[:2] == ((10 * 9 + 1) * 6, (10 * 9 + 1) * 6)
