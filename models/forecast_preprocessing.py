"""TensorFlow Transform preprocessing of the CO2 windows (TFX finds it by dotted path)."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models.data import co2
from models.preprocessing import standardize
from models.tasks import CO2


def stack_lags(inputs: dict[str, tf.Tensor]) -> tf.Tensor:
    """Stacks the raw lag features, each [batch, 1], into a float [batch, LOOKBACK] tensor,
    oldest week first."""
    columns = [tf.cast(inputs[key], tf.float32) for key in co2.FEATURE_KEYS]
    return tf.concat([tf.reshape(column, [-1, 1]) for column in columns], axis=1)


def preprocessing_fn(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Maps raw CO2 windows to model inputs and the scaled target.

    Every lag and the target are standardised with one mean and variance, those of all lag
    values of the analysed (train) split, computed once by TFT analyzers and baked into the
    transform graph as constants. One shared scale keeps the window's shape (the differences
    between weeks) and puts the target on the inputs' scale, so a model can forecast the change
    from the last week; the serving signature undoes the target's scaling
    (`models.export.label_affine_map`), so it answers in ppm.

    Args:
        inputs: Raw features: `lag_52`..`lag_01` (float ppm) and, in training, `co2`.

    Returns:
        `lags_xf` (float [batch, LOOKBACK]) and, when present, `co2` (float [batch], scaled).
    """
    lags = stack_lags(inputs)
    mean, variance = tft.mean(lags), tft.var(lags)
    outputs = {CO2.feature_key: standardize(lags, mean, variance)}
    if co2.LABEL_KEY in inputs:
        target = tf.reshape(tf.cast(inputs[co2.LABEL_KEY], tf.float32), [-1])
        outputs[co2.LABEL_KEY] = standardize(target, mean, variance)
    return outputs
