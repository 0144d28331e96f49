"""TensorFlow Transform preprocessing of the text data (TFX finds it by dotted path).

One pass makes the inputs of both text tasks (`models.text_features`): word ids for the
classifiers (lower-cased, punctuation split off as tokens of its own, looked up in the vocabulary
of the analysed train split) and character ids for the language models. The raw passage passes
through as `PASSAGE_KEY` for the classifier that tokenises it itself with its checkpoint's
vocabulary (`models.families.bert`). The character table is
fixed rather than analysed, so that a generation signature can encode a prompt and decode its
continuation without the transform graph.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models.data import text
from models.text_features import (
    CHAR_OOV_ID,
    CHAR_SEQUENCE_LENGTH,
    CHARS_KEY,
    FIRST_CHAR,
    LAST_CHAR,
    NEXT_CHARS_KEY,
    PAD_ID,
    SEQUENCE_LENGTH,
    TOKENS_KEY,
    VOCABULARY_NAME,
    VOCABULARY_SIZE,
)

# The raw passage, string [batch], unchanged.
PASSAGE_KEY = "passage_xf"

# Typographic characters of the documentation, spelled in ASCII before the lookup.
_ASCII_SPELLINGS = (
    ("[\u2018\u2019]", "'"),  # Single quotation marks.
    ("[\u201c\u201d]", '"'),  # Double quotation marks.
    ("[\u2013\u2014]", "-"),  # En and em dashes.
    ("\u2026", "..."),  # Ellipsis.
)


def _flat(values: tf.Tensor) -> tf.Tensor:
    """A raw feature, [batch, 1] as ExampleGen's CSV gives it, as [batch]."""
    return tf.reshape(values, [-1])


def word_tokens(texts: tf.Tensor) -> tf.RaggedTensor:
    """Lower-cases and splits passages into words and punctuation marks, [batch, (tokens)]."""
    lowered = tf.strings.lower(texts, encoding="utf-8")
    spaced = tf.strings.regex_replace(lowered, r"([^\w\s])", r" \1 ")
    return tf.strings.split(spaced)


def fixed_length(ids: tf.RaggedTensor, length: int) -> tf.Tensor:
    """Cuts or pads (with `PAD_ID`, at the end) each row of ids to `length`, int64."""
    return tf.cast(ids.to_tensor(default_value=PAD_ID, shape=[None, length]), tf.int64)


def char_ids(texts: tf.Tensor) -> tf.RaggedTensor:
    """Maps strings [batch] to character ids [batch, (characters)] with the fixed table."""
    for pattern, ascii_spelling in _ASCII_SPELLINGS:
        texts = tf.strings.regex_replace(texts, pattern, ascii_spelling)
    code_points = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
    printable = (code_points >= FIRST_CHAR) & (code_points <= LAST_CHAR)
    return tf.where(printable, code_points - FIRST_CHAR + 1, CHAR_OOV_ID)


def chars_of_ids(ids: tf.Tensor) -> tf.Tensor:
    """Maps character ids [batch, length] back to strings [batch]; padding is dropped."""
    ids = tf.cast(ids, tf.int32)
    ragged = tf.ragged.boolean_mask(ids, ids != PAD_ID)
    # The OOV id has no character: it reads back as "?".
    code_points = tf.where(ragged == CHAR_OOV_ID, ord("?"), ragged + FIRST_CHAR - 1)
    return tf.strings.unicode_encode(code_points, "UTF-8")


def preprocessing_fn(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Maps raw passages to the word ids of the classifiers and the characters of the LMs.

    Args:
        inputs: Raw features: `text` (string [batch, 1]) and, in training, `label`.

    Returns:
        `tokens_xf` (int64 [batch, SEQUENCE_LENGTH]), `chars_xf` and `next_chars_xf` (int64
        [batch, CHAR_SEQUENCE_LENGTH]), `passage_xf` (the raw text, string [batch]) and, when
        present, `label` (int64 [batch]).
    """
    texts = _flat(inputs[text.TEXT_KEY])
    tokens = word_tokens(texts)
    ids = tft.compute_and_apply_vocabulary(
        tokens, top_k=VOCABULARY_SIZE, num_oov_buckets=1, vocab_filename=VOCABULARY_NAME
    )
    characters = char_ids(texts)
    outputs = {
        TOKENS_KEY: fixed_length(ids + 1, SEQUENCE_LENGTH),
        PASSAGE_KEY: texts,
        CHARS_KEY: fixed_length(characters[:, :CHAR_SEQUENCE_LENGTH], CHAR_SEQUENCE_LENGTH),
        NEXT_CHARS_KEY: fixed_length(
            characters[:, 1 : CHAR_SEQUENCE_LENGTH + 1], CHAR_SEQUENCE_LENGTH
        ),
    }
    if text.LABEL_KEY in inputs:
        outputs[text.LABEL_KEY] = _flat(inputs[text.LABEL_KEY])
    return outputs
