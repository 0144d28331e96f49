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


def standardize(values: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor) -> tf.Tensor:
    """`(values - mean) / sqrt(variance)`, or `values - mean` when the variance is 0.

    Unlike `tft.scale_to_z_score`, the zero-variance guard selects between two constants, not
    between two tensors of values: in the exported graph `mean` and `variance` are constants, so
    the guard folds away and the device graph is one subtraction and one multiplication. The
    tensor select of `tft.scale_to_z_score` forces full-integer TFLite quantization to give
    `values - mean` and the z-score one shared int8 range, which clips `values - mean` to the
    z-score's range (digits: [-0.8, 1.9] instead of [-4.9, 11.1]) and ruins the int8 model.
    """
    scale = tf.where(variance > 0, tf.math.rsqrt(variance), tf.ones_like(variance))
    return (values - mean) * scale


def preprocessing_fn(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Maps raw digits features to model inputs.

    The pixels are z-scored with the mean and variance of all pixel values of the analysed
    (train) split, computed once by TFT analyzers and baked into the transform graph as
    constants, so serving applies exactly the training-time scaling.

    Args:
        inputs: Raw features: `pixel_00`..`pixel_63` and, in training, `label`.

    Returns:
        `pixels_xf` (float [batch, 64]) and, when present, `label` (int64 [batch]).
    """
    pixels = stack_pixels(inputs)
    outputs = {DIGITS.feature_key: standardize(pixels, tft.mean(pixels), tft.var(pixels))}
    if digits.LABEL_KEY in inputs:
        outputs[digits.LABEL_KEY] = tf.reshape(inputs[digits.LABEL_KEY], [-1])
    return outputs
