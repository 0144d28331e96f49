"""The bert family: its pretrained path on a tiny checkpoint written here, its random path, and
its tokenisation with the checkpoint's vocabulary."""

import logging
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from models.families import bert
from models.tasks import TEXT
from models.text_preprocessing import PASSAGE_KEY

WORDS = ["the", "class", "function", "import", "return", "##s", "loop", "raise", "error", "."]
VOCABULARY = [*bert.SPECIAL_TOKENS, *WORDS]
SEQUENCE_LENGTH = 16


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random BERT saved with `save_pretrained`, its vocab.txt beside it, and its weights
    by name."""
    from transformers import BertConfig, TFBertModel

    directory = tmp_path_factory.mktemp("bert_checkpoint")
    tf.keras.utils.set_random_seed(1)
    config = BertConfig(
        vocab_size=len(VOCABULARY),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    model = TFBertModel(config)
    model(model.dummy_inputs)
    model.save_pretrained(str(directory))
    (directory / bert.VOCABULARY_FILE).write_text("\n".join(VOCABULARY) + "\n")
    weights = {_name(weight): weight.numpy() for weight in model.bert.weights}
    return str(directory), weights


def _name(weight) -> str:
    """A weight's name inside the BERT main layer, e.g. embeddings/word_embeddings/weight:0."""
    return weight.name.split("bert/", 1)[1]


def _passages(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([" ".join(rng.choice(WORDS[:5], size=6)) for _ in range(size)], dtype=object)


def test_random_vocabulary_spells_every_ascii_word_in_characters():
    vocabulary = bert.character_vocabulary()
    assert vocabulary[: len(bert.SPECIAL_TOKENS)] == list(bert.SPECIAL_TOKENS)
    assert len(set(vocabulary)) == len(vocabulary)
    tokenizer = bert.WordPieceTokenizer(vocabulary, 8, lower_case=True)
    ids, mask = tokenizer(tf.constant(["Def x", ""]))
    pieces = [vocabulary[index] for index in ids[0].numpy()]
    assert pieces == ["[CLS]", "d", "##e", "##f", "x", "[SEP]", "[PAD]", "[PAD]"]
    np.testing.assert_array_equal(mask.numpy(), [[1] * 6 + [0] * 2, [1, 1] + [0] * 6])


def test_a_missing_checkpoint_is_named_and_nothing_is_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        bert.make_model(TEXT, pretrained_dir=str(tmp_path))


@pytest.mark.slow
def test_without_a_checkpoint_the_tiny_random_encoder_is_built_and_logged(caplog):
    with caplog.at_level(logging.INFO, logger=bert.__name__):
        model = bert.make_model(TEXT)

    assert "no pretrained_dir, training a tiny random encoder" in caplog.text
    encoder = model.get_layer("encoder").bert
    assert encoder.config.num_hidden_layers == bert.TINY_CONFIG["num_hidden_layers"]
    assert encoder.config.hidden_size == bert.TINY_CONFIG["hidden_size"]
    assert encoder.config.vocab_size == len(bert.character_vocabulary())
    probabilities = model.predict(np.array(["def main():", "raise ValueError"]), verbose=0)
    assert probabilities.shape == (2, TEXT.num_classes)


@pytest.mark.slow
def test_a_pretrained_checkpoint_loads_its_weights_and_vocabulary_and_fine_tunes(
    checkpoint, caplog
):
    directory, saved = checkpoint
    with caplog.at_level(logging.INFO, logger=bert.__name__):
        model = bert.make_model(
            TEXT,
            pretrained_dir=directory,
            sequence_length=SEQUENCE_LENGTH,
            pretrained_learning_rate=1e-3,
            warmup_steps=2,
        )

    assert f"fine-tuning the pretrained encoder of {directory}" in caplog.text
    loaded = {_name(weight): weight.numpy() for weight in model.get_layer("encoder").bert.weights}
    assert sorted(loaded) == sorted(saved)
    for name, value in saved.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)
    # The checkpoint's vocab.txt tokenises, lower-cased as BERT's default: "##s" continues.
    ids, _ = model.get_layer("tokenizer")(tf.constant(["The Functions loop."]))
    expected = ["[CLS]", "the", "function", "##s", "loop", ".", "[SEP]"]
    assert list(ids[0, :7].numpy()) == [VOCABULARY.index(token) for token in expected]
    assert (ids[0, 7:].numpy() == VOCABULARY.index("[PAD]")).all()

    passages = _passages(16, 0)
    labels = np.array([len(passage) % 2 for passage in passages], dtype=np.int64)
    history = model.fit(passages, labels, batch_size=16, epochs=8, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


@pytest.mark.slow
def test_the_trainer_export_serves_raw_text_examples_through_the_transform(tmp_path):
    from models import export, training
    from models.data import text
    from tests import text_fixtures

    passages = ["The import statement binds names.", "A for loop runs over an iterable."]
    transform_dir = text_fixtures.write_transform_output(
        str(tmp_path / "transform"), passages, np.array([3, 4])
    )
    transform_output = tft.TFTransformOutput(transform_dir)
    # Transform passes the raw passage through for the model's own tokeniser.
    transformed = text_fixtures.transform(transform_output, passages)
    assert [value.decode() for value in transformed[PASSAGE_KEY]] == passages
    model = bert.make_model(TEXT, sequence_length=SEQUENCE_LENGTH)

    directory = str(tmp_path / "model")
    training.save_model(model, transform_output, TEXT, directory)

    loaded = tf.saved_model.load(directory)
    assert training.PASSAGES_SIGNATURE in loaded.signatures
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    text.TEXT_KEY: tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[passage.encode()])
                    )
                }
            )
        ).SerializeToString()
        for passage in passages
    ]
    from_examples = loaded.signatures[export.DEFAULT_SIGNATURE](examples=tf.constant(examples))
    from_passages = loaded.signatures[training.PASSAGES_SIGNATURE](passages=tf.constant(passages))
    expected = model.predict(np.array(passages, dtype=object), verbose=0)
    for outputs in (from_examples, from_passages):
        np.testing.assert_allclose(outputs[export.PROBABILITIES].numpy(), expected, atol=1e-5)
        assert outputs[export.CLASS_IDS].numpy().tolist() == expected.argmax(-1).tolist()


def test_the_model_server_registers_the_tokenizer_ops_a_bert_model_calls():
    """A fresh process loading a bert SavedModel fails on `FastBertNormalize` unless TF Text's
    ops are registered; `serving.servable` registers them."""
    check = (
        "from tensorflow.python.framework import op_def_registry as ops\n"
        "assert ops.get('FastBertNormalize') is None\n"
        "import serving.servable\n"
        "assert ops.get('FastBertNormalize') is not None\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True, capture_output=True)
