"""The contract every registered family meets (models/families/__init__.py): it builds from its
default search space, trains a step on a tiny batch, exports its signatures, reloads with the
same outputs, and converts to a builtin-ops TFLite model exactly when its card says so."""

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from models import registry, tasks

pytestmark = pytest.mark.slow


def _families():
    return [pytest.param(name, id=name) for name in registry.family_names()]


def _signature_inputs(function, seed: int = 0) -> dict:
    """Inputs for a reloaded signature (its inputs are named), made from its input specs: None
    dimensions become 2; floats are standard normal, integers small non-negative values (valid
    ids, counts and lengths), strings a short phrase (a prompt)."""
    rng = np.random.default_rng(seed)
    _, specs = function.structured_input_signature
    inputs = {}
    for name, spec in specs.items():
        shape = [2 if size is None else size for size in spec.shape]
        if spec.dtype.is_floating:
            value = rng.normal(size=shape)
        elif spec.dtype.is_integer:
            value = rng.integers(0, 3, size=shape)
        elif spec.dtype == tf.string:
            value = np.full(shape, "def main(")
        else:
            pytest.fail(f"signature input {name} has dtype {spec.dtype.name}: add a case")
        inputs[name] = tf.constant(value, dtype=spec.dtype)
    return inputs


def _assert_same_outputs(expected: dict, received: dict, atol: float) -> None:
    assert sorted(received) == sorted(expected)
    for key, value in expected.items():
        value, other = np.asarray(value), np.asarray(received[key])
        if value.dtype.kind in "SOU":  # text, e.g. a language model's generated string
            np.testing.assert_array_equal(other, value)
        else:
            np.testing.assert_allclose(other, value, atol=atol)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """family -> (module, card, model, saved model dir), built and trained one step, once."""
    cache = {}

    def get(name: str):
        if name not in cache:
            card = registry.get_card(name)
            module = registry.get_family(name)
            spec = tasks.get_task(card.task)
            tf.keras.utils.set_random_seed(0)
            model = module.build_model(keras_tuner.HyperParameters(), spec)
            inputs, targets = module.sample_batch(spec, 8, 0)
            before = [weight.copy() for weight in model.get_weights()]
            losses = np.ravel(model.train_on_batch(inputs, targets))
            assert np.all(np.isfinite(losses)), f"{name}: non-finite loss {losses}"
            after = model.get_weights()
            assert any(not np.allclose(old, new) for old, new in zip(before, after, strict=True)), (
                f"{name}: one training step changed no weight"
            )
            directory = str(tmp_path_factory.mktemp(name) / "model")
            signatures = module.model_signatures(model, spec)
            model.save(directory, save_format="tf", signatures=signatures)
            cache[name] = (module, card, spec, signatures, directory)
        return cache[name]

    return get


@pytest.mark.parametrize("family", _families())
def test_every_family_exports_signatures_that_reload_with_the_same_outputs(family, trained):
    _, _, _, signatures, directory = trained(family)
    loaded = tf.saved_model.load(directory)

    assert signatures, f"{family} serves no signature"
    assert set(signatures) <= set(loaded.signatures)
    for name, function in signatures.items():
        inputs = _signature_inputs(loaded.signatures[name])
        _assert_same_outputs(function(**inputs), loaded.signatures[name](**inputs), atol=1e-5)


@pytest.mark.parametrize("family", _families())
def test_the_card_says_truly_whether_the_family_converts_to_tflite(family, trained):
    _, card, _, signatures, directory = trained(family)
    if not card.tflite_signature:
        assert card.tflite_note, f"{family}: no TFLite signature and no reason given"
        # The note is true: no signature of the family converts to builtin ops.
        for name in signatures:
            converter = tf.lite.TFLiteConverter.from_saved_model(directory, signature_keys=[name])
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            with pytest.raises(Exception, match=r"ops"):
                converter.convert()
        return
    assert card.tflite_signature in signatures
    converter = tf.lite.TFLiteConverter.from_saved_model(
        directory, signature_keys=[card.tflite_signature]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    runner = interpreter.get_signature_runner(card.tflite_signature)
    function = signatures[card.tflite_signature]
    inputs = _signature_inputs(tf.saved_model.load(directory).signatures[card.tflite_signature])
    expected = function(**inputs)
    received = runner(**{key: value.numpy() for key, value in inputs.items()})
    _assert_same_outputs(expected, received, atol=1e-4)


def test_every_family_card_names_a_known_task_and_a_pipeline():
    from pipelines import catalog

    for name, card in registry.FAMILIES.items():
        tasks.get_task(card.task)
        assert card.pipeline in catalog.PIPELINES, name
