"""What the text families share: embeddings, the transformer block, the LM loss and perplexity,
tiny batches, serving signatures and generation.

The layers' `call` methods have no data-dependent Python control flow, so they are not converted
by AutoGraph: converting them converts every tf_keras function they call (hundreds, minutes of
model building on a loaded machine). The wrapper hides their signature, so each takes the
`training` argument Keras then passes.

Classifiers map word ids [batch, SEQUENCE_LENGTH] to class probabilities; language models map
character ids [batch, CHAR_SEQUENCE_LENGTH] to the probabilities of each next character
[batch, CHAR_SEQUENCE_LENGTH, CHAR_ID_COUNT]. Id 0 pads both: padded positions are masked out of
attention and out of the LM loss and perplexity.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import tensorflow as tf

from models import text_preprocessing
from models.classifier import finish_classifier, make_optimizer
from models.keras_lib import keras
from models.spec import TaskSpec
from models.text_features import PAD_ID

DEFAULT_SIGNATURE = "serving_default"
# The default signature over one sequence: a recurrent layer over a batch of unknown size lowers
# to TensorList ops that TFLite builtin ops cannot express; with a batch of 1 it converts.
SINGLE_SIGNATURE = "serving_single"
GENERATE_SIGNATURE = "generate"
TOKENS_INPUT = "tokens"
PROBABILITIES = "probabilities"
CLASS_IDS = "class_ids"
PROMPT_INPUT = "prompt"
TEMPERATURE_INPUT = "temperature"
SEED_INPUT = "seed"
NUM_CHARACTERS_INPUT = "num_characters"
GENERATED_TEXT = "text"
GENERATED_IDS = "ids"


def check_token_task(spec: TaskSpec) -> int:
    """Returns the task's vocabulary size.

    Raises:
        ValueError: If the task's feature is not a sequence of token ids.
    """
    if spec.vocabulary_size is None:
        raise ValueError(
            f"Expected a task whose feature is token ids (with a vocabulary_size), received "
            f"task {spec.name!r} without one."
        )
    return spec.vocabulary_size


def token_inputs(spec: TaskSpec) -> keras.KerasTensor:
    """The model input: int64 token ids [batch, spec.num_features], named `spec.feature_key`."""
    check_token_task(spec)
    return keras.Input(shape=(spec.num_features,), dtype=tf.int64, name=spec.feature_key)


@keras.utils.register_keras_serializable(package="dlforge")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Sum of a learned token embedding and a learned embedding of each position."""

    def __init__(self, vocabulary_size: int, sequence_length: int, embedding_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.tokens = keras.layers.Embedding(vocabulary_size, embedding_dim, name="tokens")
        self.positions = keras.layers.Embedding(sequence_length, embedding_dim, name="positions")

    @tf.autograph.experimental.do_not_convert
    def call(self, ids, training=None):
        positions = tf.range(tf.shape(ids)[-1])
        return self.tokens(ids) + self.positions(positions)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "sequence_length": self.sequence_length,
            "embedding_dim": self.embedding_dim,
        }


@keras.utils.register_keras_serializable(package="dlforge")
class TransformerBlock(keras.layers.Layer):
    """Post-norm transformer block: self-attention, then a position-wise feed-forward network,
    each with dropout, a residual connection and layer normalisation.

    Called with the ids' padding mask ([batch, length], True for a token); keys that are padding
    get no attention, and with `causal` no position attends to a later one.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        feed_forward_dim: int,
        dropout: float,
        causal: bool,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if embedding_dim % num_heads:
            raise ValueError(
                f"Expected an embedding_dim divisible by num_heads, received {embedding_dim} and "
                f"{num_heads}."
            )
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.feed_forward_dim = feed_forward_dim
        self.dropout = dropout
        self.causal = causal
        self.attention = keras.layers.MultiHeadAttention(
            num_heads, embedding_dim // num_heads, dropout=dropout, name="attention"
        )
        self.feed_forward = keras.Sequential(
            [
                keras.layers.Dense(feed_forward_dim, activation="relu"),
                keras.layers.Dense(embedding_dim),
            ],
            name="feed_forward",
        )
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.feed_forward_norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.attention_dropout = keras.layers.Dropout(dropout)
        self.feed_forward_dropout = keras.layers.Dropout(dropout)

    @tf.autograph.experimental.do_not_convert
    def call(self, hidden, token_mask, training=None):
        length = tf.shape(hidden)[1]
        # [batch, query, key]: a query may look at every key that is a token.
        attention_mask = tf.tile(token_mask[:, tf.newaxis, :], [1, length, 1])
        if self.causal:
            # Built from comparisons of ranges, which TFLite's builtin ops have.
            positions = tf.range(length)
            later = positions[tf.newaxis, :] <= positions[:, tf.newaxis]
            attention_mask = attention_mask & later[tf.newaxis]
        attended = self.attention(hidden, hidden, attention_mask=attention_mask, training=training)
        hidden = self.attention_norm(hidden + self.attention_dropout(attended, training=training))
        transformed = self.feed_forward(hidden, training=training)
        return self.feed_forward_norm(
            hidden + self.feed_forward_dropout(transformed, training=training)
        )

    def get_config(self):
        return {
            **super().get_config(),
            "embedding_dim": self.embedding_dim,
            "num_heads": self.num_heads,
            "feed_forward_dim": self.feed_forward_dim,
            "dropout": self.dropout,
            "causal": self.causal,
        }


@keras.utils.register_keras_serializable(package="dlforge")
class TokenMask(keras.layers.Layer):
    """True where the id is a token, False where it pads."""

    @tf.autograph.experimental.do_not_convert
    def call(self, ids, training=None):
        return tf.not_equal(ids, PAD_ID)


def token_mask(ids: keras.KerasTensor) -> keras.KerasTensor:
    """The padding mask of an ids input, [batch, length] bool."""
    return TokenMask(name="token_mask")(ids)


@keras.utils.register_keras_serializable(package="dlforge")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of the vectors of the tokens of each sequence (padding left out)."""

    @tf.autograph.experimental.do_not_convert
    def call(self, hidden, token_mask, training=None):
        weights = tf.cast(token_mask, hidden.dtype)[:, :, tf.newaxis]
        total = tf.reduce_sum(hidden * weights, axis=1)
        # A sequence of padding only (an empty passage) pools to zeros, not NaN.
        return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


def finish_text_classifier(
    inputs: keras.KerasTensor,
    hidden: keras.KerasTensor,
    spec: TaskSpec,
    *,
    name: str,
    optimizer: str,
    learning_rate: float,
) -> keras.Model:
    """The softmax head and compilation of a text classifier (see `finish_classifier`)."""
    return finish_classifier(
        inputs,
        hidden,
        name=name,
        num_classes=spec.num_classes,
        optimizer=optimizer,
        learning_rate=learning_rate,
        loss="sparse_categorical_crossentropy",
    )


def _token_cross_entropy(y_true, y_pred):
    """Per-position cross-entropy [batch, length] and the float mask of the real targets."""
    targets = tf.cast(y_true, tf.int64)
    cross_entropy = keras.losses.sparse_categorical_crossentropy(targets, y_pred)
    return cross_entropy, tf.cast(tf.not_equal(targets, PAD_ID), cross_entropy.dtype)


@keras.utils.register_keras_serializable(package="dlforge")
class MaskedSequenceLoss(keras.losses.Loss):
    """Mean cross-entropy of each sequence's next-token predictions, padding left out."""

    def __init__(self, **kwargs):
        super().__init__(name=kwargs.pop("name", "masked_sequence_cross_entropy"), **kwargs)

    @tf.autograph.experimental.do_not_convert
    def call(self, y_true, y_pred):
        cross_entropy, mask = _token_cross_entropy(y_true, y_pred)
        return tf.reduce_sum(cross_entropy * mask, axis=-1) / tf.maximum(
            tf.reduce_sum(mask, axis=-1), 1.0
        )


@keras.utils.register_keras_serializable(package="dlforge")
class Perplexity(keras.metrics.Metric):
    """exp of the mean cross-entropy per predicted token over everything seen (padding left out).

    Averaged over tokens, not over batches of per-batch perplexities, so it is the perplexity of
    the whole evaluated text.
    """

    def __init__(self, name: str = "perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total_cross_entropy = self.add_weight("total_cross_entropy", initializer="zeros")
        self.token_count = self.add_weight("token_count", initializer="zeros")

    @tf.autograph.experimental.do_not_convert
    def update_state(self, y_true, y_pred, sample_weight=None):
        cross_entropy, mask = _token_cross_entropy(y_true, y_pred)
        self.total_cross_entropy.assign_add(tf.reduce_sum(cross_entropy * mask))
        self.token_count.assign_add(tf.reduce_sum(mask))

    def result(self):
        return tf.exp(self.total_cross_entropy / tf.maximum(self.token_count, 1.0))

    def reset_state(self):
        self.total_cross_entropy.assign(0.0)
        self.token_count.assign(0.0)


def finish_language_model(
    inputs: keras.KerasTensor,
    hidden: keras.KerasTensor,
    spec: TaskSpec,
    *,
    name: str,
    optimizer: str,
    learning_rate: float,
) -> keras.Model:
    """Adds the per-position softmax over next tokens and compiles with perplexity.

    Args:
        inputs: The token ids input.
        hidden: One vector per position, [batch, length, width].
        spec: The language-model task; its `num_classes` is the softmax width.
        name: Model name.
        optimizer: One of `models.classifier.OPTIMIZERS`.
        learning_rate: Step size.

    Returns:
        The compiled model, whose output layer is named "probabilities".
    """
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax", name=PROBABILITIES)(hidden)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss=MaskedSequenceLoss(),
        metrics=[Perplexity()],
    )
    return model


def random_token_ids(spec: TaskSpec, size: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of random token ids [size, spec.num_features], each padded after a random length."""
    vocabulary_size = check_token_task(spec)
    ids = rng.integers(1, vocabulary_size, size=(size, spec.num_features), dtype=np.int64)
    lengths = rng.integers(1, spec.num_features + 1, size=size)
    ids[np.arange(spec.num_features)[np.newaxis, :] >= lengths[:, np.newaxis]] = PAD_ID
    return ids


def classifier_sample_batch(spec: TaskSpec, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A tiny batch: random padded id sequences [size, length] and random labels [size]."""
    rng = np.random.default_rng(seed)
    ids = random_token_ids(spec, size, rng)
    return ids, rng.integers(0, spec.num_classes, size=size, dtype=np.int64)


def language_model_sample_batch(
    spec: TaskSpec, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A tiny batch: random padded id sequences [size, length] and the same one step later."""
    rng = np.random.default_rng(seed)
    longer = random_token_ids(replace(spec, num_features=spec.num_features + 1), size, rng)
    return longer[:, :-1], longer[:, 1:]


def _tokens_spec(spec: TaskSpec, batch_size: int | None) -> tf.TensorSpec:
    return tf.TensorSpec([batch_size, spec.num_features], tf.int64, name=TOKENS_INPUT)


def classifier_signatures(
    model: keras.Model, spec: TaskSpec, *, single: bool = False
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """The signatures of a text classifier.

    - `serving_default`: token ids int64 [batch, length] -> probabilities and class ids;
    - `serving_single` (when `single`): the same over a batch of exactly one sequence.
    """

    def serve(tokens):
        probabilities = model(tokens, training=False)
        return {PROBABILITIES: probabilities, CLASS_IDS: tf.argmax(probabilities, axis=-1)}

    return _serving_signatures(serve, spec, single)


def _serving_signatures(serve, spec: TaskSpec, single: bool) -> dict:
    """`serve` over a batch of any size and, when `single`, of one sequence.

    Each is its own tf.function: two traces of one function saved together convert the
    one-sequence trace with the unknown batch of the other (TensorList ops again).
    """
    signatures = {
        DEFAULT_SIGNATURE: tf.function(serve).get_concrete_function(_tokens_spec(spec, None))
    }
    if single:
        signatures[SINGLE_SIGNATURE] = tf.function(serve).get_concrete_function(
            _tokens_spec(spec, 1)
        )
    return signatures


def recurrent_classifier_signatures(
    model: keras.Model, spec: TaskSpec
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """`classifier_signatures` with `serving_single`, the one TFLite can convert."""
    return classifier_signatures(model, spec, single=True)


def generate_ids(
    model: keras.Model,
    prompt_ids: tf.Tensor,
    num_steps: tf.Tensor,
    temperature: tf.Tensor,
    seed: tf.Tensor,
    window: int,
) -> tf.Tensor:
    """Extends a prompt one id at a time with a language model.

    Each step runs the model on the last `window` ids of the text so far (padded at the end)
    and picks the next id from the prediction at the last real position: the most probable one
    when `temperature` is 0 or below, otherwise a sample from the distribution sharpened or
    flattened by `temperature`, drawn with a stateless generator seeded by (seed, step), so the
    same seed gives the same text. The padding id is never picked.

    Args:
        model: Maps ids [1, window] to next-id probabilities [1, window, num_ids].
        prompt_ids: int64 [prompt length], at least one id.
        num_steps: How many ids to add, int32 scalar.
        temperature: float32 scalar; <= 0 picks greedily.
        seed: int64 scalar.
        window: The model's input length.

    Returns:
        The added ids, int64 [num_steps].
    """
    tf.debugging.assert_positive(tf.size(prompt_ids), message="Expected a non-empty prompt.")
    prompt_ids = tf.cast(prompt_ids, tf.int64)

    def step(index, text_ids):
        recent = text_ids[-window:]
        length = tf.shape(recent)[0]
        padded = tf.pad(recent, [[0, window - length]])[tf.newaxis]
        probabilities = model(padded, training=False)[0, length - 1]
        not_padding = tf.one_hot(PAD_ID, tf.shape(probabilities)[0], on_value=0.0, off_value=1.0)
        probabilities = probabilities * not_padding

        def greedy():
            return tf.argmax(probabilities, output_type=tf.int64)

        def sample():
            logits = tf.math.log(probabilities + 1e-12) / temperature
            return tf.random.stateless_categorical(
                logits[tf.newaxis],
                1,
                seed=tf.stack([seed, tf.cast(index, tf.int64)]),
                dtype=tf.int64,
            )[0, 0]

        next_id = tf.cond(temperature > 0, sample, greedy)
        return index + 1, tf.concat([text_ids, next_id[tf.newaxis]], axis=0)

    _, text_ids = tf.while_loop(
        lambda index, _: index < num_steps,
        step,
        [tf.constant(0), prompt_ids],
        shape_invariants=[tf.TensorShape([]), tf.TensorShape([None])],
    )
    return text_ids[tf.size(prompt_ids) :]


def language_model_signatures(
    model: keras.Model, spec: TaskSpec, *, single: bool = False
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """The signatures of a character language model.

    - `serving_default`: ids int64 [batch, length] -> `probabilities` of the next id at each
      position [batch, length, num_ids];
    - `serving_single` (when `single`): the same over a batch of exactly one sequence;
    - `generate`: `prompt` (string scalar), `num_characters` (int32), `temperature` (float32,
      0 or below for greedy) and `seed` (int64) -> the continuation as `text` (string scalar)
      and `ids`.
    """

    def serve(tokens):
        return {PROBABILITIES: model(tokens, training=False)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([], tf.string, name=PROMPT_INPUT),
            tf.TensorSpec([], tf.int32, name=NUM_CHARACTERS_INPUT),
            tf.TensorSpec([], tf.float32, name=TEMPERATURE_INPUT),
            tf.TensorSpec([], tf.int64, name=SEED_INPUT),
        ]
    )
    def generate(prompt, num_characters, temperature, seed):
        prompt_ids = text_preprocessing.char_ids(prompt[tf.newaxis])[0]
        ids = generate_ids(model, prompt_ids, num_characters, temperature, seed, spec.num_features)
        return {
            GENERATED_TEXT: text_preprocessing.chars_of_ids(ids[tf.newaxis])[0],
            GENERATED_IDS: ids,
        }

    return {
        **_serving_signatures(serve, spec, single),
        GENERATE_SIGNATURE: generate.get_concrete_function(),
    }


def recurrent_language_model_signatures(
    model: keras.Model, spec: TaskSpec
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """`language_model_signatures` with `serving_single`, the one TFLite can convert."""
    return language_model_signatures(model, spec, single=True)


def examples_signature(
    model: keras.Model, transform_output, spec: TaskSpec
) -> tf.types.experimental.ConcreteFunction:
    """Serialized tf.Examples of raw passages -> the model's outputs, the transform inside.

    What TF Serving's predict clients and TFMA send to a pipeline's model: the raw `text`
    feature is parsed, transformed by the Transform graph the model was trained behind, and the
    task's feature fed to the model. The label, if present in the examples, is not parsed.

    Args:
        model: The trained model.
        transform_output: `tft.TFTransformOutput` of the text preprocessing.
        spec: The model's task.

    Returns:
        A concrete function over `examples` (string [batch]) -> `probabilities` and, for a
        classifier (one probability vector per example), `class_ids`.
    """
    model.tft_layer = transform_output.transform_features_layer()
    raw_spec = dict(transform_output.raw_feature_spec())
    raw_spec = {key: raw_spec[key] for key in spec.raw_feature_keys}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(examples):
        features = model.tft_layer(tf.io.parse_example(examples, raw_spec))
        # The feature the model takes: word ids, or the raw passage for a model that
        # tokenises it itself (bert).
        probabilities = model(features[model.input_names[0]], training=False)
        outputs = {PROBABILITIES: probabilities}
        if probabilities.shape.rank == 2:
            outputs[CLASS_IDS] = tf.argmax(probabilities, axis=-1)
        return outputs

    return serve_examples.get_concrete_function()
