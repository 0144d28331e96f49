"""BERT text classifier: WordPiece tokenisation inside the model, a HuggingFace `transformers`
BERT encoder, its pooled [CLS] vector and a softmax layer.

The model takes the raw passage (`passage_xf`, a string per example, which Transform passes
through) and tokenises it in the graph with the vocabulary of its encoder, so a checkpoint's
`vocab.txt` always goes with the weights trained on it, and the served model reads raw text like
the other text families. The encoder is either

- pretrained: `pretrained_dir` names a local folder as `save_pretrained` writes it (`config.json`,
  the weights, and `vocab.txt`; `tokenizer_config.json`'s `do_lower_case` is read when present),
  loaded with `from_pretrained(local_files_only=True)` and fine-tuned at a low learning rate
  after a linear warm-up; or
- random: without a folder, a tiny BERT (`TINY_CONFIG`) over a character-level WordPiece
  vocabulary (`character_vocabulary`), trained from scratch at a higher learning rate.

Nothing is downloaded: a folder without its files is an error. `transformers` is imported only
when a model is built, so listing or importing the family costs no `transformers` import.
"""

from __future__ import annotations

import json
import logging
import os
import string

import numpy as np
import tensorflow as tf
import tensorflow_text

from models import text_models
from models.keras_lib import keras
from models.spec import TaskSpec
from models.text_preprocessing import PASSAGE_KEY

VOCABULARY_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
PAD_TOKEN, UNKNOWN_TOKEN, CLS_TOKEN, SEP_TOKEN = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
REQUIRED_TOKENS = (PAD_TOKEN, UNKNOWN_TOKEN, CLS_TOKEN, SEP_TOKEN)
SPECIAL_TOKENS = (*REQUIRED_TOKENS, "[MASK]")
WORDPIECE_SUFFIX = "##"
# The random encoder: 2 layers of width 32 with 2 heads, about 60k weights with its vocabulary.
TINY_CONFIG = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
DEFAULT_SEQUENCE_LENGTH = 128
PASSAGES_INPUT = "passages"

_LOG = logging.getLogger(__name__)


def character_vocabulary() -> list[str]:
    """The random encoder's WordPiece vocabulary: the special tokens, then every printable
    non-space ASCII character as a word start and as a `##` continuation, so any lower-cased
    ASCII word is spelled in pieces of one character (other characters map to [UNK])."""
    characters = [character for character in string.printable if not character.isspace()]
    return [
        *SPECIAL_TOKENS,
        *characters,
        *(WORDPIECE_SUFFIX + character for character in characters),
    ]


def read_vocabulary(path: str) -> list[str]:
    """Reads a `vocab.txt` (one token a line, the line number is the id).

    Raises:
        ValueError: If a special token BERT needs is missing.
    """
    with tf.io.gfile.GFile(path) as handle:
        vocabulary = [line.rstrip("\n") for line in handle]
    missing = [
        token
        for token in (PAD_TOKEN, UNKNOWN_TOKEN, CLS_TOKEN, SEP_TOKEN)
        if token not in vocabulary
    ]
    if missing:
        raise ValueError(
            f"Expected {path} to hold the tokens {list(REQUIRED_TOKENS)}, received a vocabulary "
            f"of {len(vocabulary)} tokens without {missing}."
        )
    return vocabulary


def checkpoint_lower_case(pretrained_dir: str) -> bool:
    """Whether a checkpoint's tokenizer lower-cases (`do_lower_case` of its tokenizer config;
    BERT's default, True, when the folder has no such file)."""
    path = os.path.join(pretrained_dir, TOKENIZER_CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        return True
    with tf.io.gfile.GFile(path) as handle:
        return bool(json.load(handle).get("do_lower_case", True))


@keras.utils.register_keras_serializable(package="dlforge")
class WordPieceTokenizer(keras.layers.Layer):
    """Raw passages [batch] -> BERT inputs: `[CLS] pieces [SEP]` ids and the attention mask,
    both int32 [batch, sequence_length], padded with the [PAD] id and cut to fit.

    Text is normalised as BERT's tokenizer does (with `lower_case`, lower-cased with accents
    stripped), split on whitespace and punctuation, and each word split into the longest
    pieces of the vocabulary (tensorflow_text.FastBertTokenizer, one op in the graph).
    """

    def __init__(self, vocabulary: list[str], sequence_length: int, lower_case: bool, **kwargs):
        super().__init__(**kwargs)
        if sequence_length < 3:
            raise ValueError(
                "Expected a sequence_length >= 3 ([CLS], a piece, [SEP]), received "
                f"{sequence_length}."
            )
        self.vocabulary = list(vocabulary)
        self.sequence_length = sequence_length
        self.lower_case = lower_case
        self.pad_id = self.vocabulary.index(PAD_TOKEN)
        self.cls_id = self.vocabulary.index(CLS_TOKEN)
        self.sep_id = self.vocabulary.index(SEP_TOKEN)
        self.tokenizer = tensorflow_text.FastBertTokenizer(
            vocab=self.vocabulary,
            suffix_indicator=WORDPIECE_SUFFIX,
            token_out_type=tf.int32,
            unknown_token=UNKNOWN_TOKEN,
            lower_case_nfd_strip_accents=lower_case,
        )

    @tf.autograph.experimental.do_not_convert
    def call(self, passages, training=None):
        passages = tf.reshape(passages, [-1])
        pieces = self.tokenizer.tokenize(passages)
        if isinstance(pieces, tf.RaggedTensor) and pieces.ragged_rank > 1:
            pieces = pieces.merge_dims(-2, -1)
        pieces = pieces[:, : self.sequence_length - 2]
        ids, _ = tensorflow_text.combine_segments(
            [pieces], start_of_sequence_id=self.cls_id, end_of_segment_id=self.sep_id
        )
        return tensorflow_text.pad_model_inputs(ids, self.sequence_length, pad_value=self.pad_id)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary,
            "sequence_length": self.sequence_length,
            "lower_case": self.lower_case,
        }


@keras.utils.register_keras_serializable(package="dlforge")
class BertEncoder(keras.layers.Layer):
    """A `transformers` BERT main layer: (ids, attention mask) -> the pooled [CLS] vector.

    Args:
        config: The `transformers.BertConfig` as a dict (`to_dict()`).
        main_layer: An already built (e.g. pretrained) `TFBertMainLayer` of that config; a new,
            randomly initialised one when None.
    """

    def __init__(self, config: dict, main_layer=None, **kwargs):
        super().__init__(**kwargs)
        from transformers import BertConfig
        from transformers.models.bert.modeling_tf_bert import TFBertMainLayer

        self.config = dict(config)
        self.bert = main_layer or TFBertMainLayer(
            BertConfig.from_dict(self.config), add_pooling_layer=True, name="bert"
        )

    # Not converted by AutoGraph (see models/text_models.py): converting transformers' code
    # takes most of a minute, and it has no data-dependent Python control flow.
    @tf.autograph.experimental.do_not_convert
    def call(self, ids, attention_mask, training=None):
        outputs = self.bert(
            input_ids=ids, attention_mask=attention_mask, training=training, return_dict=True
        )
        return outputs.pooler_output

    def get_config(self):
        return {**super().get_config(), "config": self.config}


def load_encoder(pretrained_dir: str):
    """Loads a local BERT checkpoint.

    Args:
        pretrained_dir: A folder as `save_pretrained` writes it, with the checkpoint's
            `vocab.txt` beside the weights.

    Returns:
        (`TFBertMainLayer` holding the pretrained weights, its `BertConfig`, vocabulary,
        lower_case).

    Raises:
        FileNotFoundError: If the folder or its `config.json` or `vocab.txt` is missing.
    """
    from transformers import TFBertModel

    for name in ("config.json", VOCABULARY_FILE):
        if not tf.io.gfile.exists(os.path.join(pretrained_dir, name)):
            raise FileNotFoundError(
                f"Expected a BERT checkpoint folder with {name} (as save_pretrained writes it, "
                f"with the tokenizer's {VOCABULARY_FILE}), received {pretrained_dir!r} without it."
            )
    pretrained = TFBertModel.from_pretrained(pretrained_dir, local_files_only=True)
    vocabulary = read_vocabulary(os.path.join(pretrained_dir, VOCABULARY_FILE))
    if len(vocabulary) != pretrained.config.vocab_size:
        raise ValueError(
            f"Expected {VOCABULARY_FILE} to hold the checkpoint's vocab_size="
            f"{pretrained.config.vocab_size} tokens, received {len(vocabulary)}."
        )
    return pretrained.bert, pretrained.config, vocabulary, checkpoint_lower_case(pretrained_dir)


@keras.utils.register_keras_serializable(package="dlforge")
class WarmUp(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly from 0 to `learning_rate` over `warmup_steps`, then stays there."""

    def __init__(self, learning_rate: float, warmup_steps: int):
        self.learning_rate = learning_rate
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        fraction = (tf.cast(step, tf.float32) + 1.0) / float(max(self.warmup_steps, 1))
        return self.learning_rate * tf.minimum(1.0, fraction)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps}


def make_model(
    spec: TaskSpec,
    *,
    pretrained_dir: str = "",
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
    dropout: float = 0.1,
    learning_rate: float = 1e-3,
    pretrained_learning_rate: float = 3e-5,
    warmup_steps: int = 100,
    weight_decay: float = 0.01,
) -> keras.Model:
    """Builds a compiled BERT classifier over raw passages.

    Args:
        spec: The text classification task (its classes; the input is `PASSAGE_KEY`).
        pretrained_dir: Local checkpoint folder to fine-tune (see `load_encoder`), or "" for
            the tiny random encoder of `TINY_CONFIG` over `character_vocabulary()`.
        sequence_length: Pieces per passage, [CLS] and [SEP] included; at most the encoder's
            `max_position_embeddings`.
        dropout: Dropout rate of the random encoder and before the softmax, in [0, 1) (a
            pretrained encoder keeps its own).
        learning_rate: Peak AdamW step size when training the random encoder.
        pretrained_learning_rate: Peak AdamW step size when fine-tuning a pretrained encoder.
        warmup_steps: Steps of the linear warm-up to the peak step size.
        weight_decay: AdamW's decoupled weight decay.

    Returns:
        A compiled model mapping passages (string [batch]) to class probabilities.

    Raises:
        ValueError: For a value outside the ranges above.
        FileNotFoundError: If `pretrained_dir` is not a checkpoint folder.
    """
    if not 0 <= dropout < 1:
        raise ValueError(f"Expected a dropout rate in [0, 1), received {dropout}.")
    if min(learning_rate, pretrained_learning_rate) <= 0 or warmup_steps < 0 or weight_decay < 0:
        raise ValueError(
            "Expected learning rates > 0, warmup_steps >= 0 and weight_decay >= 0, received "
            f"{learning_rate}, {pretrained_learning_rate}, {warmup_steps} and {weight_decay}."
        )
    from transformers import BertConfig

    if pretrained_dir:
        main_layer, config, vocabulary, lower_case = load_encoder(pretrained_dir)
        peak_learning_rate = pretrained_learning_rate
        _LOG.info(
            "bert: fine-tuning the pretrained encoder of %s (%d layers, width %d, %d pieces) at "
            "learning rate %g",
            pretrained_dir,
            config.num_hidden_layers,
            config.hidden_size,
            len(vocabulary),
            peak_learning_rate,
        )
    else:
        vocabulary, lower_case = character_vocabulary(), True
        config = BertConfig(
            vocab_size=len(vocabulary),
            max_position_embeddings=sequence_length,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            pad_token_id=vocabulary.index(PAD_TOKEN),
            **TINY_CONFIG,
        )
        main_layer, peak_learning_rate = None, learning_rate
        _LOG.info(
            "bert: no pretrained_dir, training a tiny random encoder (%s) over characters at "
            "learning rate %g",
            TINY_CONFIG,
            peak_learning_rate,
        )
    if sequence_length > config.max_position_embeddings:
        raise ValueError(
            f"Expected a sequence_length <= the encoder's max_position_embeddings="
            f"{config.max_position_embeddings}, received {sequence_length}."
        )
    passages = keras.Input(shape=(), dtype=tf.string, name=PASSAGE_KEY)
    ids, attention_mask = WordPieceTokenizer(
        vocabulary, sequence_length, lower_case, name="tokenizer"
    )(passages)
    pooled = BertEncoder(config.to_dict(), main_layer, name="encoder")(ids, attention_mask)
    hidden = keras.layers.Dropout(dropout, name="pooled_dropout")(pooled)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax", name="probabilities")(
        hidden
    )
    model = keras.Model(passages, outputs, name="bert")
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=WarmUp(peak_learning_rate, warmup_steps), weight_decay=weight_decay
        ),
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def search_space(hp) -> dict:
    """The tunable hyper-parameters, with their defaults.

    The checkpoint folder and the sequence length are fixed values (set them with the trainer's
    `hyperparameters`, e.g. `pretrained_dir = "/models/bert-base-uncased"`).
    """
    return {
        "pretrained_dir": hp.Fixed("pretrained_dir", ""),
        "sequence_length": hp.Fixed("sequence_length", DEFAULT_SEQUENCE_LENGTH),
        "dropout": hp.Float("dropout", 0.0, 0.3, step=0.1, default=0.1),
        "learning_rate": hp.Float("learning_rate", 1e-4, 3e-3, sampling="log", default=1e-3),
        "pretrained_learning_rate": hp.Choice(
            "pretrained_learning_rate", [2e-5, 3e-5, 5e-5], default=3e-5
        ),
        "warmup_steps": hp.Fixed("warmup_steps", 100),
        "weight_decay": hp.Fixed("weight_decay", 0.01),
    }


def build_model(hp, spec: TaskSpec) -> keras.Model:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))


_WORDS = (
    "the function returns a list of values",
    "class attribute lookup calls",
    "an exception is raised when",
    "the import statement binds names",
    "for loop over an iterable object",
)


def sample_batch(spec: TaskSpec, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A tiny batch: passages of random words (strings [size]) and random labels [size]."""
    rng = np.random.default_rng(seed)
    words = " ".join(_WORDS).split()
    passages = np.array(
        [" ".join(rng.choice(words, size=rng.integers(1, 30))) for _ in range(size)], dtype=object
    )
    return passages, rng.integers(0, spec.num_classes, size=size, dtype=np.int64)


def model_signatures(model: keras.Model, spec: TaskSpec) -> dict:
    """The signature over the model's own input: `serving_default`, passages string [batch] ->
    probabilities and class ids (tokenisation included)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=PASSAGES_INPUT)])
    def serve(passages):
        probabilities = model(passages, training=False)
        return {
            text_models.PROBABILITIES: probabilities,
            text_models.CLASS_IDS: tf.argmax(probabilities, axis=-1),
        }

    return {text_models.DEFAULT_SIGNATURE: serve.get_concrete_function()}
