"""Character-level LSTM language model: embedding, stacked LSTMs, a softmax over the next
character at every position."""

from __future__ import annotations

from models import text_models
from models.classifier import OPTIMIZERS
from models.keras_lib import keras
from models.spec import TaskSpec


def make_model(
    spec: TaskSpec,
    *,
    embedding_dim: int = 32,
    units: int = 256,
    num_layers: int = 1,
    dropout: float = 0.1,
    optimizer: str = "adam",
    learning_rate: float = 3e-3,
) -> keras.Model:
    """Builds a compiled LSTM language model over character ids.

    Args:
        spec: A language-model task (ids in, the next ids as labels, `spec.vocabulary_size` set).
        embedding_dim: Width of the character embedding.
        units: Units of each LSTM layer.
        num_layers: Number of stacked LSTM layers, >= 1.
        dropout: Dropout rate between the last LSTM layer and the softmax, in [0, 1).
        optimizer: One of `models.classifier.OPTIMIZERS`.
        learning_rate: Step size.

    Returns:
        A compiled model mapping ids [batch, length] to next-id probabilities
        [batch, length, spec.num_classes], with a perplexity metric.

    Raises:
        ValueError: For a value outside the ranges above.
    """
    if num_layers < 1 or units < 1 or embedding_dim < 1:
        raise ValueError(
            "Expected num_layers, units and embedding_dim >= 1, received "
            f"{num_layers}, {units} and {embedding_dim}."
        )
    if not 0 <= dropout < 1:
        raise ValueError(f"Expected a dropout rate in [0, 1), received {dropout}.")
    inputs = text_models.token_inputs(spec)
    # The padding only ever follows the text, so an LSTM reading left to right never sees it
    # before a real character; the loss and perplexity leave its positions out.
    hidden = keras.layers.Embedding(spec.vocabulary_size, embedding_dim, name="embedding")(inputs)
    for index in range(num_layers):
        hidden = keras.layers.LSTM(units, return_sequences=True, name=f"lstm_{index}")(hidden)
    hidden = keras.layers.Dropout(dropout, name="dropout")(hidden)
    return text_models.finish_language_model(
        inputs, hidden, spec, name="char_lstm_lm", optimizer=optimizer, learning_rate=learning_rate
    )


def search_space(hp) -> dict:
    """The tunable hyper-parameters of the LSTM language model, with their defaults."""
    return {
        "embedding_dim": hp.Choice("embedding_dim", [16, 32, 64], default=32),
        "units": hp.Choice("units", [128, 256, 512], default=256),
        "num_layers": hp.Int("num_layers", 1, 2, default=1),
        "dropout": hp.Float("dropout", 0.0, 0.3, step=0.1, default=0.1),
        "optimizer": hp.Choice("optimizer", list(OPTIMIZERS), default="adam"),
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=3e-3),
    }


def build_model(hp, spec: TaskSpec) -> keras.Model:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))


sample_batch = text_models.language_model_sample_batch
model_signatures = text_models.recurrent_language_model_signatures
