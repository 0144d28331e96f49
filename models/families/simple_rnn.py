"""SimpleRNN forecaster of the next value of a series (see `models.recurrent`)."""

from __future__ import annotations

import functools

from models import recurrent
from models.keras_lib import keras
from models.recurrent import model_signatures, sample_batch, search_space
from models.spec import TaskSpec

__all__ = ["build_model", "make_model", "model_signatures", "sample_batch", "search_space"]

# The shared forecaster with a SimpleRNN cell; its arguments are `recurrent.make_forecaster`'s.
make_model = functools.partial(recurrent.make_forecaster, cell="simple_rnn")


def build_model(hp, spec: TaskSpec) -> keras.Model:
    """Builds the model for one KerasTuner trial."""
    return make_model(spec, **search_space(hp))
