"""Multi-layer perceptron with selectable activation, optimizer and loss."""

from __future__ import annotations

from models.classifier import LOSSES, OPTIMIZERS, finish_classifier, model_signatures, sample_batch
from models.keras_lib import keras
from models.spec import TaskSpec

ACTIVATIONS = ("relu", "tanh", "elu", "sigmoid")


def make_model(
    spec: TaskSpec,
    *,
    num_layers: int = 2,
    units: int = 128,
    activation: str = "relu",
    dropout: float = 0.2,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    loss: str = "sparse_categorical_crossentropy",
) -> keras.Model:
    """Builds a compiled MLP classifier.

    Args:
        spec: The task.
        num_layers: Number of hidden dense layers, >= 1.
        units: Width of each hidden layer.
        activation: One of `ACTIVATIONS`.
        dropout: Dropout rate after each hidden layer, in [0, 1).
        optimizer: One of `models.classifier.OPTIMIZERS`.
        learning_rate: Step size.
        loss: One of `models.classifier.LOSSES`.

    Returns:
        A compiled model mapping `spec.feature_key` to class probabilities.

    Raises:
        ValueError: For a value outside the ranges above.
    """
    if num_layers < 1 or units < 1:
        raise ValueError(
            f"Expected num_layers >= 1 and units >= 1, received {num_layers} and {units}."
        )
    if activation not in ACTIVATIONS:
        raise ValueError(f"Expected an activation in {list(ACTIVATIONS)}, received {activation!r}.")
    if not 0 <= dropout < 1:
        raise ValueError(f"Expected a dropout rate in [0, 1), received {dropout}.")
    inputs = keras.Input(shape=(spec.num_features,), name=spec.feature_key)
    hidden = inputs
    for index in range(num_layers):
        hidden = keras.layers.Dense(units, activation=activation, name=f"dense_{index}")(hidden)
        if dropout:
            hidden = keras.layers.Dropout(dropout, name=f"dropout_{index}")(hidden)
    return finish_classifier(
        inputs,
        hidden,
        name="mlp",
        optimizer=optimizer,
        learning_rate=learning_rate,
        loss=loss,
        num_classes=spec.num_classes,
    )


def search_space(hp) -> dict:
    """The tunable hyper-parameters of the MLP, with their defaults."""
    return {
        "num_layers": hp.Int("num_layers", 1, 3, default=2),
        "units": hp.Int("units", 32, 256, step=32, default=128),
        "activation": hp.Choice("activation", list(ACTIVATIONS), default="relu"),
        "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.2),
        "optimizer": hp.Choice("optimizer", list(OPTIMIZERS), default="adam"),
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-1, sampling="log", default=1e-3),
        "loss": hp.Choice("loss", list(LOSSES), default="sparse_categorical_crossentropy"),
    }


def build_model(hp, spec: TaskSpec) -> keras.Model:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))


__all__ = ["build_model", "make_model", "model_signatures", "sample_batch", "search_space"]
