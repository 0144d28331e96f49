"""The text preprocessing_fn, analysed by a real TFT run on Beam over a few passages."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from models import text_preprocessing
from models.text_features import (
    CHAR_OOV_ID,
    CHAR_SEQUENCE_LENGTH,
    CHARS_KEY,
    NEXT_CHARS_KEY,
    PAD_ID,
    SEQUENCE_LENGTH,
    TOKEN_ID_COUNT,
    TOKENS_KEY,
    VOCABULARY_NAME,
)
from tests import text_fixtures

PASSAGES = [
    "The assert statement inserts debugging assertions into a program.",
    "The if statement is used for conditional execution: if x: pass",
    "The (Pdb) prompt: the debugger's commands are one word each.",
    "Long " + "word " * 100,
]


@pytest.fixture(scope="module")
def transform_output(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("text_transform"))
    text_fixtures.write_transform_output(directory, PASSAGES, np.array([3, 4, 6, 0]))
    return tft.TFTransformOutput(directory)


@pytest.mark.slow
def test_tokens_are_lower_cased_vocabulary_ids_padded_with_zeros(transform_output):
    vocabulary = transform_output.vocabulary_by_name(VOCABULARY_NAME)
    ids = text_fixtures.transform(transform_output, ["THE Statement.", "the statement ."])
    tokens = ids[TOKENS_KEY]
    assert tokens.shape == (2, SEQUENCE_LENGTH) and tokens.dtype == np.int64
    np.testing.assert_array_equal(tokens[0], tokens[1])
    expected = [vocabulary.index(token.encode()) + 1 for token in ("the", "statement", ".")]
    assert list(tokens[0, :3]) == expected
    assert (tokens[0, 3:] == PAD_ID).all()


@pytest.mark.slow
def test_unseen_words_share_the_oov_id_and_long_passages_are_cut(transform_output):
    vocabulary_size = transform_output.vocabulary_size_by_name(VOCABULARY_NAME)
    tokens = text_fixtures.transform(transform_output, ["zebra quokka assert", PASSAGES[3]])[
        TOKENS_KEY
    ]
    oov_id = vocabulary_size + 1
    assert list(tokens[0, :2]) == [oov_id, oov_id]
    assert 0 < tokens[0, 2] < oov_id
    assert (tokens[1] != PAD_ID).all()
    assert tokens.max() < TOKEN_ID_COUNT


@pytest.mark.slow
def test_next_characters_are_the_characters_one_step_later(transform_output):
    transformed = text_fixtures.transform(transform_output, [PASSAGES[0], PASSAGES[3]])
    chars, next_chars = transformed[CHARS_KEY], transformed[NEXT_CHARS_KEY]
    assert chars.shape == next_chars.shape == (2, CHAR_SEQUENCE_LENGTH)
    np.testing.assert_array_equal(chars[:, 1:], next_chars[:, :-1])
    length = len(PASSAGES[0])
    assert (chars[0, length:] == PAD_ID).all() and (chars[0, :length] != PAD_ID).all()
    assert next_chars[0, length - 1] == PAD_ID
    # The long passage fills both windows; the target window reaches one character further.
    assert (next_chars[1] != PAD_ID).all()
    assert "label" not in transformed  # No label was given, so none comes out.


def test_character_ids_round_trip_printable_ascii_and_spell_typography():
    texts = tf.constant(
        ["def f(x): return x ~ {y}", "it\u2019s \u201cquoted\u201d \u2014 ok\u2026", "naïve"]
    )
    ids = text_preprocessing.char_ids(texts)
    padded = text_preprocessing.fixed_length(ids, 40)
    decoded = [value.decode() for value in text_preprocessing.chars_of_ids(padded).numpy()]
    assert decoded == ["def f(x): return x ~ {y}", 'it\'s "quoted" - ok...', "na?ve"]
    assert ids.flat_values.numpy().min() >= 1
    assert ids[2].numpy().tolist()[2] == CHAR_OOV_ID


@pytest.mark.slow
def test_examples_signature_transforms_raw_passages_like_the_transform_layer(transform_output):
    from models import text_models
    from models.families import text_transformer
    from models.tasks import TEXT

    model = text_transformer.make_model(TEXT, embedding_dim=16, num_heads=2, num_layers=1)
    serve = text_models.examples_signature(model, transform_output, TEXT)
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[passage])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
                }
            )
        ).SerializeToString()
        for passage in (PASSAGES[0].encode(), b"zebra")
    ]
    outputs = serve(examples=tf.constant(examples))
    tokens = text_fixtures.transform(transform_output, [PASSAGES[0], "zebra"])[TOKENS_KEY]
    np.testing.assert_allclose(outputs["probabilities"].numpy(), model(tokens).numpy(), atol=1e-6)
    assert outputs["class_ids"].numpy().tolist() == model(tokens).numpy().argmax(-1).tolist()
