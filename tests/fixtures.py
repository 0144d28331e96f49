"""Small data and a real TensorFlow Transform output shared by the model tests."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from models import preprocessing
from models.data import digits
from pipelines.validate import SCHEMA_FILE


def raw_schema() -> schema_pb2.Schema:
    """The curated raw-data schema checked into the repository."""
    schema = schema_pb2.Schema()
    with open(SCHEMA_FILE) as handle:
        text_format.Parse(handle.read(), schema)
    return schema


def sample_arrays(num_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A reproducible sample of the embedded digits data: (pixels [n, 64], labels [n])."""
    pixels, labels = digits.load_digits_arrays()
    rows = np.random.default_rng(seed).choice(len(labels), size=num_rows, replace=False)
    return pixels[rows], labels[rows]


def raw_examples(pixels: np.ndarray, labels: np.ndarray | None = None) -> list[bytes]:
    """Serialized tf.Examples of raw features, as ExampleGen writes them from the CSV."""
    serialized = []
    for index, row in enumerate(pixels):
        feature = {
            key: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
            for key, value in zip(digits.PIXEL_KEYS, row, strict=True)
        }
        if labels is not None:
            feature[digits.LABEL_KEY] = tf.train.Feature(
                int64_list=tf.train.Int64List(value=[int(labels[index])])
            )
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        serialized.append(example.SerializeToString())
    return serialized


def write_transform_output(output_dir: str, pixels: np.ndarray, labels: np.ndarray) -> str:
    """Runs `preprocessing_fn` with TFT on Beam over the rows and writes the transform graph.

    Returns:
        The transform output folder (for `tft.TFTransformOutput`).
    """
    metadata = dataset_metadata.DatasetMetadata(raw_schema())
    feature_spec = schema_utils.schema_as_feature_spec(raw_schema()).feature_spec
    instances = [
        {
            **{key: [int(value)] for key, value in zip(digits.PIXEL_KEYS, row, strict=True)},
            digits.LABEL_KEY: [int(label)],
        }
        for row, label in zip(pixels, labels, strict=True)
    ]
    assert set(instances[0]) == set(feature_spec)
    with tft_beam.Context(temp_dir=os.path.join(output_dir, "tmp")):
        _, transform_fn = (
            instances,
            metadata,
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing.preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    # TFX's Transform also keeps the raw schema beside the graph; serving parses with it.
    metadata_io.write_metadata(
        metadata, os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR)
    )
    return output_dir


def transform(transform_output: tft.TFTransformOutput, pixels: np.ndarray) -> np.ndarray:
    """Applies the transform graph to raw pixels and returns the model input."""
    features = {
        key: tf.constant(pixels[:, index : index + 1], tf.int64)
        for index, key in enumerate(digits.PIXEL_KEYS)
    }
    transformed = transform_output.transform_features_layer()(features)
    return transformed["pixels_xf"].numpy()
