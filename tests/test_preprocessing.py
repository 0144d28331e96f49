"""The digits preprocessing_fn, run by TensorFlow Transform on Beam."""

import numpy as np

from tests import fixtures


def test_pixels_are_z_scored_with_statistics_of_the_analysed_data(transform_output, digits_sample):
    pixels, _ = digits_sample
    transformed = fixtures.transform(transform_output, pixels)
    assert transformed.shape == (len(pixels), 64)
    assert abs(transformed.mean()) < 1e-4
    assert abs(transformed.std() - 1) < 1e-3
    expected = (pixels - pixels.mean()) / pixels.std()
    np.testing.assert_allclose(transformed, expected, rtol=1e-4, atol=1e-4)


def test_transformed_schema_has_model_input_and_label(transform_output):
    spec = transform_output.transformed_feature_spec()
    assert list(spec["pixels_xf"].shape) == [64]
    assert spec["pixels_xf"].dtype.name == "float32"
    assert spec["label"].dtype.name == "int64"


def test_serving_transform_needs_no_label(transform_output, digits_sample):
    pixels, _ = digits_sample
    transformed = fixtures.transform(transform_output, pixels[:3])
    assert transformed.shape == (3, 64)
