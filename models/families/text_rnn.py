"""Recurrent text classifier: token embedding, bidirectional LSTM or GRU layers, softmax."""

from __future__ import annotations

from models import text_models
from models.classifier import OPTIMIZERS
from models.keras_lib import keras
from models.spec import TaskSpec

CELLS = ("lstm", "gru")


def make_model(
    spec: TaskSpec,
    *,
    cell: str = "gru",
    embedding_dim: int = 64,
    units: int = 64,
    num_layers: int = 1,
    dropout: float = 0.2,
    optimizer: str = "adam",
    learning_rate: float = 3e-3,
) -> keras.Model:
    """Builds a compiled recurrent classifier over token ids.

    The embedding masks the padding id, so each direction of each recurrent layer reads only the
    passage's tokens; the last layer's two final states are concatenated and classified.

    Args:
        spec: A task whose feature is token ids (`spec.vocabulary_size` set).
        cell: "lstm" or "gru".
        embedding_dim: Width of the token embedding.
        units: Units of each direction of each recurrent layer.
        num_layers: Number of stacked bidirectional layers, >= 1.
        dropout: Dropout rate on the embedding and the final state, in [0, 1).
        optimizer: One of `models.classifier.OPTIMIZERS`.
        learning_rate: Step size.

    Returns:
        A compiled model mapping ids [batch, spec.num_features] to class probabilities.

    Raises:
        ValueError: For a value outside the ranges above.
    """
    if cell not in CELLS:
        raise ValueError(f"Expected a cell in {list(CELLS)}, received {cell!r}.")
    if num_layers < 1 or units < 1 or embedding_dim < 1:
        raise ValueError(
            "Expected num_layers, units and embedding_dim >= 1, received "
            f"{num_layers}, {units} and {embedding_dim}."
        )
    if not 0 <= dropout < 1:
        raise ValueError(f"Expected a dropout rate in [0, 1), received {dropout}.")
    layer = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    inputs = text_models.token_inputs(spec)
    hidden = keras.layers.Embedding(
        spec.vocabulary_size, embedding_dim, mask_zero=True, name="embedding"
    )(inputs)
    hidden = keras.layers.Dropout(dropout, name="embedding_dropout")(hidden)
    for index in range(num_layers):
        last = index == num_layers - 1
        hidden = keras.layers.Bidirectional(
            layer(units, return_sequences=not last), name=f"bidirectional_{cell}_{index}"
        )(hidden)
    hidden = keras.layers.Dropout(dropout, name="state_dropout")(hidden)
    return text_models.finish_text_classifier(
        inputs, hidden, spec, name="text_rnn", optimizer=optimizer, learning_rate=learning_rate
    )


def search_space(hp) -> dict:
    """The tunable hyper-parameters of the recurrent classifier, with their defaults."""
    return {
        "cell": hp.Choice("cell", list(CELLS), default="gru"),
        "embedding_dim": hp.Int("embedding_dim", 32, 128, step=32, default=64),
        "units": hp.Int("units", 32, 128, step=32, default=64),
        "num_layers": hp.Int("num_layers", 1, 2, default=1),
        "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.2),
        "optimizer": hp.Choice("optimizer", list(OPTIMIZERS), default="adam"),
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=3e-3),
    }


def build_model(hp, spec: TaskSpec) -> keras.Model:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))


sample_batch = text_models.classifier_sample_batch
model_signatures = text_models.recurrent_classifier_signatures
