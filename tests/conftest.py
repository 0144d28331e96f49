"""Test setup: TensorFlow must use Keras 2 (tf_keras) before it is first imported."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest


@pytest.fixture(scope="session")
def digits_sample():
    """120 rows of the embedded digits data."""
    from tests import fixtures

    return fixtures.sample_arrays(120)


@pytest.fixture(scope="session")
def transform_output(tmp_path_factory, digits_sample):
    """A real TFT output (the digits preprocessing_fn analysed on the sample)."""
    import tensorflow_transform as tft

    from tests import fixtures

    directory = str(tmp_path_factory.mktemp("transform_output"))
    fixtures.write_transform_output(directory, *digits_sample)
    return tft.TFTransformOutput(directory)
