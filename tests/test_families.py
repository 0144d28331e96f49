"""The digits families through the pipeline's export: build, train a step, export with the
transform graph in front, reload (the contract of every family is tests/test_family_contract.py)."""

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from models import export, registry, training
from models.tasks import DIGITS
from tests import fixtures


@pytest.fixture(params=registry.family_names("digits"))
def family(request):
    return request.param


def _model_inputs(transform_output, pixels):
    return {DIGITS.feature_key: fixtures.transform(transform_output, pixels)}


def test_builds_from_default_search_space(family):
    model = registry.get_family(family).build_model(keras_tuner.HyperParameters(), DIGITS)
    assert model.input_shape == (None, 64)
    assert model.output_shape == (None, 10)
    probabilities = model.predict(np.zeros((2, 64), np.float32), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_one_training_step_changes_weights_and_gives_finite_loss(
    family, transform_output, digits_sample
):
    pixels, labels = digits_sample
    model = registry.get_family(family).build_model(keras_tuner.HyperParameters(), DIGITS)
    before = [weight.copy() for weight in model.get_weights()]
    loss, accuracy = model.train_on_batch(_model_inputs(transform_output, pixels[:32]), labels[:32])
    assert np.isfinite(loss)
    assert 0 <= accuracy <= 1
    changed = [
        not np.allclose(old, new)
        for old, new in zip(before, model.get_weights(), strict=True)
        if old.size
    ]
    assert any(changed)


def test_export_and_reload_give_the_same_predictions_through_both_signatures(
    family, transform_output, digits_sample, tmp_path
):
    pixels, labels = digits_sample
    model = registry.get_family(family).build_model(keras_tuner.HyperParameters(), DIGITS)
    model.train_on_batch(_model_inputs(transform_output, pixels[:32]), labels[:32])
    expected = model.predict(_model_inputs(transform_output, pixels[:8]), verbose=0)

    training.save_model(model, transform_output, DIGITS, str(tmp_path / "model"))
    loaded = tf.saved_model.load(str(tmp_path / "model"))

    from_examples = loaded.signatures[export.DEFAULT_SIGNATURE](
        examples=tf.constant(fixtures.raw_examples(pixels[:8]))
    )
    from_dense = loaded.signatures[export.DENSE_SIGNATURE](
        inputs=tf.constant(pixels[:8], tf.float32)
    )
    for outputs in (from_examples, from_dense):
        np.testing.assert_allclose(outputs[export.PROBABILITIES].numpy(), expected, atol=1e-5)
        np.testing.assert_array_equal(outputs[export.CLASS_IDS].numpy(), expected.argmax(axis=1))


def test_serving_signature_ignores_a_label_in_the_examples(
    transform_output, digits_sample, tmp_path
):
    pixels, labels = digits_sample
    model = registry.get_family("perceptron").build_model(keras_tuner.HyperParameters(), DIGITS)
    training.save_model(model, transform_output, DIGITS, str(tmp_path / "model"))
    serve = tf.saved_model.load(str(tmp_path / "model")).signatures[export.DEFAULT_SIGNATURE]
    with_label = serve(examples=tf.constant(fixtures.raw_examples(pixels[:4], labels[:4])))
    without_label = serve(examples=tf.constant(fixtures.raw_examples(pixels[:4])))
    np.testing.assert_allclose(
        with_label[export.PROBABILITIES].numpy(), without_label[export.PROBABILITIES].numpy()
    )


def test_unknown_family_error_lists_the_registered_ones():
    with pytest.raises(
        ValueError,
        match=(
            r"Expected a model family in \['actor_critic', 'autoencoder', .*'cnn', .*\], "
            r"received 'rnn'"
        ),
    ):
        registry.get_family("rnn")


def test_fixed_hyperparameters_override_the_defaults():
    hyperparameters = registry.make_hyperparameters("mlp", {"num_layers": 3, "units": 32})
    model = registry.get_family("mlp").build_model(hyperparameters, DIGITS)
    hidden = [layer for layer in model.layers if layer.name.startswith("dense_")]
    assert [layer.units for layer in hidden] == [32, 32, 32]


def test_unknown_hyperparameter_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"received \['num_heads'\]") as error:
        registry.make_hyperparameters("cnn", {"num_heads": 2})
    assert "num_blocks" in str(error.value)
