"""LSTM forecaster of the next value of a series (see `models.recurrent`)."""

from __future__ import annotations

import tf_keras as keras

from models import recurrent
from models.recurrent import model_signatures, sample_batch, search_space
from models.spec import TaskSpec

__all__ = ["build_model", "make_model", "model_signatures", "sample_batch", "search_space"]


def make_model(
    spec: TaskSpec,
    *,
    num_layers: int = 1,
    units: int = 32,
    dropout: float = 0.0,
    optimizer: str = "adam",
    learning_rate: float = 3e-3,
) -> keras.Model:
    """Builds a compiled LSTM forecaster.

    See `models.recurrent.make_forecaster` for the arguments.
    """
    return recurrent.make_forecaster(
        spec,
        cell="lstm",
        num_layers=num_layers,
        units=units,
        dropout=dropout,
        optimizer=optimizer,
        learning_rate=learning_rate,
    )


def build_model(hp, spec: TaskSpec) -> keras.Model:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))
