"""The generative families (autoencoder, VAE, GAN): build, train a step, export, reload, TFLite."""

from dataclasses import dataclass
from types import ModuleType

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from models import generative, registry
from models.tasks import DIGITS

FAMILIES = ("autoencoder", "vae", "gan")
# The signatures each family serves, with the inputs a client sends to each.
SIGNATURES = {
    "autoencoder": {"serving_default": "images", "encode": "images"},
    "vae": {"serving_default": "images", "sample": "latent", "sample_seeded": "seeded"},
    "gan": {"serving_default": "latent", "sample": "latent", "sample_seeded": "seeded"},
}


def _inputs(kind: str, model) -> dict[str, tf.Tensor]:
    if kind == "images":
        return {DIGITS.feature_key: tf.constant(generative.sample_images(DIGITS, 6, seed=5))}
    if kind == "latent":
        return {generative.LATENT: tf.random.stateless_normal([6, model.latent_dim], seed=[3, 4])}
    return {generative.COUNT: tf.constant(6), generative.SEED: tf.constant(11)}


@dataclass(frozen=True)
class Trained:
    """A default model of a family after one training step, and what it served before export."""

    module: ModuleType
    model: object
    weights_before: list
    results: np.ndarray
    signatures: dict
    export_dir: str


@pytest.fixture(scope="module", params=FAMILIES)
def trained(request, tmp_path_factory):
    """Built, trained a step and exported once per family: tracing and saving are the slow part."""
    module = registry.get_family(request.param)
    model = module.build_model(keras_tuner.HyperParameters(), DIGITS)
    inputs, targets = module.sample_batch(DIGITS, 16, seed=0)
    before = [weight.copy() for weight in model.get_weights()]
    results = np.atleast_1d(model.train_on_batch(inputs, targets))
    signatures = module.model_signatures(model, DIGITS)
    export_dir = str(tmp_path_factory.mktemp(request.param) / "model")
    model.save(export_dir, save_format="tf", signatures=signatures)
    return Trained(module, model, before, results, signatures, export_dir)


def test_registered_for_the_generative_pipeline_on_digits():
    assert registry.family_names("generative") == sorted(FAMILIES)
    for family in FAMILIES:
        assert registry.get_card(family).task == "digits"


@pytest.mark.slow  # the `trained` fixture traces and saves a model
def test_builds_from_default_search_space_and_one_step_changes_the_weights(trained):
    assert np.all(np.isfinite(trained.results))
    changed = [
        not np.allclose(old, new)
        for old, new in zip(trained.weights_before, trained.model.get_weights(), strict=True)
        if old.size
    ]
    assert any(changed)


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_batch_is_reproducible_transformed_digits(family):
    module = registry.get_family(family)
    first, targets = module.sample_batch(DIGITS, 8, seed=1)
    again, _ = module.sample_batch(DIGITS, 8, seed=1)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (8, 64) and first.dtype == np.float32
    # z-scores of pixels 0..16: the blank background is the minimum.
    splits = generative.digits_splits()
    assert first.min() == pytest.approx(splits.standardize(np.array([0]))[0])
    if family == "gan":
        assert targets is None
    else:
        np.testing.assert_array_equal(targets, first)


@pytest.mark.slow  # the `trained` fixture traces and saves a model
def test_export_and_reload_give_identical_outputs_for_every_signature(trained):
    family = trained.model.name
    assert set(trained.signatures) == set(SIGNATURES[family])
    loaded = tf.saved_model.load(trained.export_dir)
    for name, kind in SIGNATURES[family].items():
        inputs = _inputs(kind, trained.model)
        expected = trained.signatures[name](**inputs)
        reloaded = loaded.signatures[name](**inputs)
        assert set(reloaded) == set(expected)
        for key, value in expected.items():
            assert value.shape[0] == 6, (name, key)
            np.testing.assert_allclose(reloaded[key].numpy(), value.numpy(), atol=1e-5)


def test_seeded_sampling_repeats_with_a_seed_and_differs_across_seeds():
    model = registry.get_family("gan").make_model(DIGITS, latent_dim=4, filters=4)
    sample = registry.get_family("gan").model_signatures(model, DIGITS)["sample_seeded"]
    first = sample(count=tf.constant(3), seed=tf.constant(1))[generative.IMAGES].numpy()
    again = sample(count=tf.constant(3), seed=tf.constant(1))[generative.IMAGES].numpy()
    other = sample(count=tf.constant(3), seed=tf.constant(2))[generative.IMAGES].numpy()
    assert first.shape == (3, 64)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.slow
def test_the_cards_tflite_signature_converts_to_builtin_ops_and_matches(trained):
    family = trained.model.name
    name = registry.get_card(family).tflite_signature
    converter = tf.lite.TFLiteConverter.from_saved_model(trained.export_dir, signature_keys=[name])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    runner = tf.lite.Interpreter(model_content=converter.convert()).get_signature_runner(name)
    inputs = _inputs(SIGNATURES[family][name], trained.model)
    # The runner resizes its inputs to the batch it is given.
    outputs = runner(**{key: value.numpy() for key, value in inputs.items()})
    for key, value in trained.signatures[name](**inputs).items():
        np.testing.assert_allclose(outputs[key], value.numpy(), atol=1e-4)


@pytest.mark.slow
def test_the_seeded_sample_signature_needs_flex_ops(trained):
    """Why no card names it: stateless random ops are not TFLite builtins."""
    if "sample_seeded" not in trained.signatures:
        pytest.skip(f"{trained.model.name} has no seeded sample signature")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        trained.export_dir, signature_keys=["sample_seeded"]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with pytest.raises(Exception, match="StatelessRandom"):
        converter.convert()
