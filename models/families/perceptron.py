"""Single-layer perceptron: one dense softmax layer over the flattened input."""

from __future__ import annotations

from models.classifier import LOSSES, OPTIMIZERS, finish_classifier, model_signatures, sample_batch
from models.keras_lib import keras
from models.spec import TaskSpec


def make_model(
    spec: TaskSpec,
    *,
    optimizer: str = "sgd",
    learning_rate: float = 0.1,
    loss: str = "sparse_categorical_crossentropy",
) -> keras.Model:
    """Builds a compiled single-layer perceptron (multinomial logistic regression).

    Args:
        spec: The task.
        optimizer: One of `models.classifier.OPTIMIZERS`.
        learning_rate: Step size.
        loss: One of `models.classifier.LOSSES`.

    Returns:
        A compiled model mapping `spec.feature_key` to class probabilities.
    """
    inputs = keras.Input(shape=(spec.num_features,), name=spec.feature_key)
    return finish_classifier(
        inputs,
        inputs,
        name="perceptron",
        optimizer=optimizer,
        learning_rate=learning_rate,
        loss=loss,
        num_classes=spec.num_classes,
    )


def search_space(hp) -> dict:
    """The tunable hyper-parameters of the perceptron, with their defaults."""
    return {
        "optimizer": hp.Choice("optimizer", list(OPTIMIZERS), default="sgd"),
        "learning_rate": hp.Float("learning_rate", 1e-3, 0.5, sampling="log", default=0.1),
        "loss": hp.Choice("loss", list(LOSSES), default="sparse_categorical_crossentropy"),
    }


def build_model(hp, spec: TaskSpec) -> keras.Model:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))


__all__ = ["build_model", "make_model", "model_signatures", "sample_batch", "search_space"]
