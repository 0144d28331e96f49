"""The dense signature's float path: the transform graph's per-column affine map."""

import numpy as np
import pytest
import tensorflow as tf

from models import export
from models.tasks import DIGITS
from tests import fixtures

KEYS = ("a", "b", "c")
RAW_SPEC = {key: tf.io.FixedLenFeature([1], tf.int64) for key in KEYS}


def _layer(function):
    """A stand-in transform layer: raw int64 [n, 1] columns -> {"x": function([n, 3] floats)}."""

    def call(features):
        values = tf.concat([tf.cast(features[key], tf.float32) for key in KEYS], axis=1)
        return {"x": function(values)}

    return call


def test_an_affine_transform_is_read_off_per_column():
    slope, intercept = export.dense_affine_map(
        _layer(lambda values: values * [2.0, -1.0, 0.5] + [1.0, 0.0, -3.0]), RAW_SPEC, KEYS, "x"
    )
    np.testing.assert_allclose(slope, [2.0, -1.0, 0.5])
    np.testing.assert_allclose(intercept, [1.0, 0.0, -3.0])


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda values: values**2, "scales and shifts each raw feature"),
        (lambda values: values[:, ::-1], "scales and shifts each raw feature"),
        (lambda values: values[:, :2], "onto 3 values of 'x', received 2"),
    ],
)
def test_a_transform_the_dense_path_cannot_reproduce_is_refused(function, message):
    with pytest.raises(ValueError, match=message):
        export.dense_affine_map(_layer(function), RAW_SPEC, KEYS, "x")


def test_the_digits_transform_is_one_z_score_for_every_pixel(transform_output, digits_sample):
    pixels, _ = digits_sample
    raw_spec = dict(transform_output.raw_feature_spec())
    slope, intercept = export.dense_affine_map(
        transform_output.transform_features_layer(),
        raw_spec,
        DIGITS.raw_feature_keys,
        DIGITS.feature_key,
    )
    np.testing.assert_allclose(slope, 1 / pixels.std(), rtol=1e-4)
    np.testing.assert_allclose(intercept, -pixels.mean() / pixels.std(), rtol=1e-4)
    np.testing.assert_allclose(
        pixels * slope + intercept, fixtures.transform(transform_output, pixels), atol=1e-4
    )
