"""What the recurrent forecasters share: the network around the recurrent cell, its compilation,
search space, sample batch and serving signature.

A forecaster reads a window of past values, scaled by Transform with one shared mean and standard
deviation, and forecasts the next value on the same scale. The network forecasts the change from
the window's last value: the recurrent layers read the window relative to its last value, and a
dense layer's output is added back to that value. Forecasts are thereby independent of the
series' level, so a rising series (CO2) whose test weeks lie above every training week is
forecast as well as the training weeks are; a network fed the levels themselves would have to
extrapolate outside the range it was trained on.

The recurrent layers are unrolled (the window is short and fixed): the graph then has no
TensorList ops, and the dense signature converts to a TFLite model with builtin ops only.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models import export
from models.classifier import OPTIMIZERS, make_optimizer
from models.keras_lib import keras
from models.spec import TaskSpec

CELLS = {
    "simple_rnn": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}


def check_sequence_task(spec: TaskSpec) -> int:
    """Returns the task's number of time steps.

    Raises:
        ValueError: If the task is not a regression over a univariate sequence (one value per
            time step).
    """
    if spec.kind != "regression" or spec.sequence_length != spec.num_features:
        raise ValueError(
            "Expected a regression task over a sequence of one value per time step, received "
            f"task {spec.name!r} of kind {spec.kind!r} with sequence_length "
            f"{spec.sequence_length} and num_features {spec.num_features}."
        )
    return spec.sequence_length


def make_forecaster(
    spec: TaskSpec,
    *,
    cell: str,
    num_layers: int = 1,
    units: int = 32,
    dropout: float = 0.0,
    optimizer: str = "adam",
    learning_rate: float = 3e-3,
) -> keras.Model:
    """Builds a compiled recurrent forecaster.

    Args:
        spec: A regression task over a univariate sequence; the model input `spec.feature_key`
            holds one value per time step, oldest first.
        cell: One of `CELLS`.
        num_layers: Stacked recurrent layers, >= 1.
        units: Units of each recurrent layer, >= 1.
        dropout: Dropout rate before the output layer, in [0, 1).
        optimizer: One of `models.classifier.OPTIMIZERS`.
        learning_rate: Step size.

    Returns:
        A model compiled with the mean squared error loss and `rmse`/`mae` metrics, whose output
        "forecast" is [batch, 1] on the scale of its input.

    Raises:
        ValueError: For a value outside the ranges above, or a task that is not a sequence
            regression.
    """
    timesteps = check_sequence_task(spec)
    if cell not in CELLS:
        raise ValueError(f"Expected a cell in {sorted(CELLS)}, received {cell!r}.")
    if num_layers < 1 or units < 1:
        raise ValueError(
            f"Expected num_layers >= 1 and units >= 1, received {num_layers} and {units}."
        )
    if not 0 <= dropout < 1:
        raise ValueError(f"Expected a dropout rate in [0, 1), received {dropout}.")
    inputs = keras.Input(shape=(spec.num_features,), name=spec.feature_key)
    sequence = keras.layers.Reshape((timesteps, 1), name="sequence")(inputs)
    last_step = keras.layers.Cropping1D((timesteps - 1, 0), name="last_step")(sequence)
    hidden = keras.layers.Subtract(name="relative")([sequence, last_step])
    for index in range(num_layers):
        hidden = CELLS[cell](
            units,
            return_sequences=index < num_layers - 1,
            unroll=True,
            name=f"{cell}_{index}",
        )(hidden)
    if dropout:
        hidden = keras.layers.Dropout(dropout, name="dropout")(hidden)
    change = keras.layers.Dense(1, name="change")(hidden)
    last_value = keras.layers.Reshape((1,), name="last_value")(last_step)
    outputs = keras.layers.Add(name=export.FORECAST)([last_value, change])
    model = keras.Model(inputs, outputs, name=cell)
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss=keras.losses.MeanSquaredError(),
        metrics=[
            keras.metrics.RootMeanSquaredError(name="rmse"),
            keras.metrics.MeanAbsoluteError(name="mae"),
        ],
    )
    return model


def search_space(hp) -> dict:
    """The tunable hyper-parameters of a recurrent forecaster, with their defaults."""
    return {
        "num_layers": hp.Int("num_layers", 1, 2, default=1),
        "units": hp.Int("units", 16, 64, step=16, default=32),
        "dropout": hp.Float("dropout", 0.0, 0.3, step=0.1, default=0.0),
        "optimizer": hp.Choice("optimizer", list(OPTIMIZERS), default="adam"),
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=3e-3),
    }


def sample_batch(spec: TaskSpec, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A tiny batch of standardised windows of a noisy seasonal series with a trend.

    Args:
        spec: A sequence regression task.
        size: Windows in the batch.
        seed: Seed of the noise and of the windows' start weeks.

    Returns:
        (inputs float32 [size, num_features], targets float32 [size]), on one shared scale as
        Transform produces them.
    """
    timesteps = check_sequence_task(spec)
    rng = np.random.default_rng(seed)
    length = 4 * timesteps + size
    weeks = np.arange(length)
    series = 0.03 * weeks + np.sin(2 * np.pi * weeks / 52) + rng.normal(0, 0.1, length)
    series = (series - series.mean()) / series.std()
    starts = rng.choice(length - timesteps, size=size, replace=False)
    inputs = np.stack([series[start : start + timesteps] for start in starts])
    targets = series[starts + timesteps]
    return inputs.astype(np.float32), targets.astype(np.float32)


def model_signatures(model: keras.Model, spec: TaskSpec) -> dict:
    """The dense signature over model inputs: scaled windows -> scaled forecasts [batch]."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, spec.num_features], tf.float32, name=export.DENSE_INPUT)
        ]
    )
    def serve_dense(values):
        return {export.FORECAST: tf.reshape(model(values), [-1])}

    return {export.DENSE_SIGNATURE: serve_dense.get_concrete_function()}
