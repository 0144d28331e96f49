"""The text tasks' model inputs, as `models.text_preprocessing` makes them (no TensorFlow here).

- `tokens_xf`: a passage as `SEQUENCE_LENGTH` word ids for the classifiers: 0 pads, the
  vocabulary of the `VOCABULARY_SIZE` most frequent tokens of the train split takes
  1..VOCABULARY_SIZE at most, and the out-of-vocabulary bucket the next id.
- `chars_xf` / `next_chars_xf`: a passage's first `CHAR_SEQUENCE_LENGTH` characters and the
  characters one step later, as fixed character ids, for the language models: 0 pads,
  printable ASCII (space to "~") takes 1..95 and any other character `CHAR_OOV_ID`.
"""

from __future__ import annotations

TOKENS_KEY = "tokens_xf"
CHARS_KEY = "chars_xf"
NEXT_CHARS_KEY = "next_chars_xf"
PAD_ID = 0

SEQUENCE_LENGTH = 64
VOCABULARY_SIZE = 5000
TOKEN_ID_COUNT = VOCABULARY_SIZE + 2
VOCABULARY_NAME = "text_tokens"

CHAR_SEQUENCE_LENGTH = 128
FIRST_CHAR = ord(" ")
LAST_CHAR = ord("~")
CHAR_OOV_ID = LAST_CHAR - FIRST_CHAR + 2
CHAR_ID_COUNT = CHAR_OOV_ID + 1
