"""TensorFlow Transform preprocessing of the digits data (TFX finds it by dotted path)."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models.data import digits
from models.tasks import DIGITS


def stack_pixels(inputs: dict[str, tf.Tensor]) -> tf.Tensor:
    """Stacks the 64 raw pixel features, each [batch, 1] int64, into a [batch, 64] float tensor."""
    columns = [tf.cast(inputs[key], tf.float32) for key in digits.PIXEL_KEYS]
    return tf.concat([tf.reshape(column, [-1, 1]) for column in columns], axis=1)


def preprocessing_fn(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Maps raw digits features to model inputs.

    The pixels are z-scored with the mean and standard deviation of all pixel values of the
    analysed (train) split, computed once by a TFT analyzer and baked into the transform graph,
    so serving applies exactly the training-time scaling.

    Args:
        inputs: Raw features: `pixel_00`..`pixel_63` and, in training, `label`.

    Returns:
        `pixels_xf` (float [batch, 64]) and, when present, `label` (int64 [batch]).
    """
    outputs = {DIGITS.feature_key: tft.scale_to_z_score(stack_pixels(inputs))}
    if digits.LABEL_KEY in inputs:
        outputs[digits.LABEL_KEY] = tf.reshape(inputs[digits.LABEL_KEY], [-1])
    return outputs
