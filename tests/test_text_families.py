"""The text families: the family surface, export, generation, and learning on the real data."""

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from models import registry, text_models
from models.data import text
from models.tasks import TEXT, TEXT_LM
from models.text_features import CHAR_ID_COUNT, CHARS_KEY, NEXT_CHARS_KEY, TOKENS_KEY
from tests import text_fixtures

CLASSIFIERS = ("text_rnn", "text_transformer")
LANGUAGE_MODELS = ("char_lstm_lm", "transformer_lm")
# Small variants for the export tests: what is checked does not depend on the width.
SMALL = {
    "text_rnn": {"embedding_dim": 8, "units": 8},
    "text_transformer": {"embedding_dim": 16, "num_heads": 2, "num_layers": 1},
    "char_lstm_lm": {"embedding_dim": 8, "units": 16},
    "transformer_lm": {"embedding_dim": 16, "num_heads": 2, "num_layers": 1},
}


def _task(family):
    return TEXT if family in CLASSIFIERS else TEXT_LM


def test_text_families_are_registered_for_their_pipelines():
    # The classifiers train in the text pipeline; the language models' pipeline is not wired yet.
    # bert (tests/test_bert.py) takes raw passages rather than word ids.
    assert registry.family_names("text") == sorted((*CLASSIFIERS, "bert"))
    assert registry.family_names("text_lm") == sorted(LANGUAGE_MODELS)
    for family in CLASSIFIERS:
        assert registry.get_card(family).metric == "accuracy"
    for family in LANGUAGE_MODELS:
        assert registry.get_card(family).metric == "perplexity"


@pytest.mark.slow
@pytest.mark.parametrize("family", CLASSIFIERS + LANGUAGE_MODELS)
def test_default_model_trains_a_step_on_its_sample_batch(family):
    module, spec = registry.get_family(family), _task(family)
    model = module.build_model(keras_tuner.HyperParameters(), spec)
    inputs, targets = module.sample_batch(spec, 4, 0)
    assert inputs.shape == (4, spec.num_features) and inputs.dtype == np.int64
    probabilities = model.predict(inputs, verbose=0)
    expected_shape = (4, spec.num_classes) if family in CLASSIFIERS else (4, 128, CHAR_ID_COUNT)
    assert probabilities.shape == expected_shape
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
    before = [weight.copy() for weight in model.get_weights()]
    loss = model.train_on_batch(inputs, targets)[0]
    assert np.isfinite(loss)
    assert any(
        not np.array_equal(old, new) for old, new in zip(before, model.get_weights(), strict=True)
    )


def test_transformer_classifier_does_not_look_at_the_padding():
    model = registry.get_family("text_transformer").make_model(
        TEXT, **SMALL["text_transformer"], dropout=0.0
    )
    inputs = np.zeros((2, TEXT.num_features), np.int64)
    inputs[:, :5] = [[3, 4, 5, 6, 7], [8, 9, 10, 11, 12]]
    before = model(inputs).numpy()
    # Whatever the padding id and the positions after the text embed to, attention and
    # pooling are masked, so the prediction stays.
    embedding = model.get_layer("embedding")
    rng = np.random.default_rng(0)
    embedding.tokens.embeddings[0].assign(rng.normal(size=16))
    embedding.positions.embeddings[5:].assign(rng.normal(size=(TEXT.num_features - 5, 16)))
    np.testing.assert_allclose(model(inputs).numpy(), before, atol=1e-5)
    inputs[:, 5] = 13
    assert not np.allclose(model(inputs).numpy(), before, atol=1e-5)


def test_transformer_lm_prediction_at_a_position_ignores_later_ids():
    module = registry.get_family("transformer_lm")
    model = module.make_model(TEXT_LM, **SMALL["transformer_lm"], dropout=0.0)
    inputs, _ = module.sample_batch(TEXT_LM, 1, 0)
    inputs[0, :] = 5
    changed = inputs.copy()
    changed[0, 10:] = 9
    before, after = model(inputs).numpy(), model(changed).numpy()
    np.testing.assert_allclose(before[0, :10], after[0, :10], atol=1e-6)
    assert not np.allclose(before[0, 10:], after[0, 10:], atol=1e-6)


def _check_tflite(family, saved_model_dir, one_example, expected):
    """The card's TFLite signature converts with builtin ops only and agrees with Keras."""
    signature = registry.get_card(family).tflite_signature
    assert signature, registry.get_card(family).tflite_note
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[signature]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    outputs = interpreter.get_signature_runner(signature)(tokens=one_example)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)


def _generate(signature, prompt, temperature, seed, num_characters=24):
    outputs = signature(
        prompt=tf.constant(prompt),
        num_characters=tf.constant(num_characters),
        temperature=tf.constant(temperature),
        seed=tf.constant(seed, tf.int64),
    )
    return outputs[text_models.GENERATED_TEXT].numpy().decode(), outputs["ids"].numpy()


@pytest.mark.slow
@pytest.mark.parametrize("family", CLASSIFIERS + LANGUAGE_MODELS)
def test_export_and_reload_give_the_same_outputs(family, tmp_path):
    module, spec = registry.get_family(family), _task(family)
    model = module.make_model(spec, **SMALL[family])
    inputs, targets = module.sample_batch(spec, 3, 1)
    model.train_on_batch(inputs, targets)
    signatures = module.model_signatures(model, spec)
    model.save(str(tmp_path), save_format="tf", signatures=signatures)
    loaded = tf.saved_model.load(str(tmp_path))
    served = loaded.signatures["serving_default"](tokens=tf.constant(inputs))
    np.testing.assert_allclose(
        served["probabilities"].numpy(), model.predict(inputs, verbose=0), rtol=1e-5, atol=1e-6
    )
    _check_tflite(family, str(tmp_path), inputs[:1], model.predict(inputs[:1], verbose=0))
    if family in CLASSIFIERS:
        np.testing.assert_array_equal(
            served["class_ids"].numpy(), served["probabilities"].numpy().argmax(axis=-1)
        )
        return
    assert {"serving_default", "generate"} <= set(signatures)
    in_process = _generate(signatures["generate"], "The ", 0.8, 7)
    reloaded = _generate(loaded.signatures["generate"], "The ", 0.8, 7)
    assert in_process[0] == reloaded[0] and len(in_process[0]) == 24
    np.testing.assert_array_equal(in_process[1], reloaded[1])
    # Same seed, same text; another seed, another text; greedy needs no seed.
    assert _generate(signatures["generate"], "The ", 0.8, 7)[0] == in_process[0]
    assert _generate(signatures["generate"], "The ", 0.8, 8)[0] != in_process[0]
    greedy = _generate(loaded.signatures["generate"], "The ", 0.0, 1)[0]
    assert _generate(loaded.signatures["generate"], "The ", 0.0, 2)[0] == greedy
    # The continuation is made of characters of the table, never of padding.
    assert (in_process[1] > 0).all() and (in_process[1] < CHAR_ID_COUNT).all()


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
    """The real splits, transformed by the preprocessing_fn analysed on the train split."""
    folder = tmp_path_factory.mktemp("text_real")
    text.write_splits(str(folder / "data"), seed=0)
    splits = {
        name: text.read_csv(str(folder / "data" / name / text.FILE_NAME))
        for name in text.SPLIT_NAMES
    }
    transform_dir = str(folder / "transform")
    text_fixtures.write_transform_output(transform_dir, *splits["train"])
    transform_output = tft.TFTransformOutput(transform_dir)
    return {
        name: (text_fixtures.transform(transform_output, texts), labels)
        for name, (texts, labels) in splits.items()
    }


@pytest.mark.slow
def test_classifier_trained_briefly_beats_the_majority_baseline_clearly(real_data):
    keras.utils.set_random_seed(0)
    (train, train_labels), (test, test_labels) = real_data["train"], real_data["test"]
    model = registry.get_family("text_transformer").make_model(TEXT)
    model.fit(train[TOKENS_KEY], train_labels, batch_size=32, epochs=4, verbose=0)
    accuracy = model.evaluate(test[TOKENS_KEY], test_labels, verbose=0)[1]
    baseline = text.majority_baseline(train_labels, test_labels)
    assert baseline < 0.35
    assert accuracy > baseline + 0.25, (accuracy, baseline)


@pytest.mark.slow
def test_language_model_trained_briefly_has_low_test_perplexity(real_data):
    keras.utils.set_random_seed(0)
    train, test = real_data["train"][0], real_data["test"][0]
    model = registry.get_family("transformer_lm").make_model(TEXT_LM)
    untrained = model.evaluate(test[CHARS_KEY], test[NEXT_CHARS_KEY], verbose=0)[1]
    model.fit(train[CHARS_KEY], train[NEXT_CHARS_KEY], batch_size=32, epochs=2, verbose=0)
    perplexity = model.evaluate(test[CHARS_KEY], test[NEXT_CHARS_KEY], verbose=0)[1]
    # An untrained model is about uniform over the CHAR_ID_COUNT ids; English text is far from it.
    assert untrained > CHAR_ID_COUNT / 2
    assert perplexity < CHAR_ID_COUNT / 5, perplexity
