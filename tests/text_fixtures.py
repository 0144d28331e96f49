"""A real TensorFlow Transform run of the text preprocessing, shared by the text tests."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

from models import text_preprocessing
from models.data import text

SCHEMA_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "pipelines",
    "schemas",
    "text",
    "schema.pbtxt",
)


def raw_schema() -> schema_pb2.Schema:
    """The curated raw-data schema of the text pipeline."""
    schema = schema_pb2.Schema()
    with open(SCHEMA_FILE) as handle:
        text_format.Parse(handle.read(), schema)
    return schema


def write_transform_output(output_dir: str, texts: list[str], labels: np.ndarray) -> str:
    """Analyses `preprocessing_fn` with TFT on Beam over the passages and writes the graph.

    Returns:
        The transform output folder (for `tft.TFTransformOutput`).
    """
    metadata = dataset_metadata.DatasetMetadata(raw_schema())
    instances = [
        {text.TEXT_KEY: [passage.encode()], text.LABEL_KEY: [int(label)]}
        for passage, label in zip(texts, labels, strict=True)
    ]
    with tft_beam.Context(temp_dir=os.path.join(output_dir, "tmp")):
        transform_fn = (instances, metadata) | tft_beam.AnalyzeDataset(
            text_preprocessing.preprocessing_fn
        )
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    metadata_io.write_metadata(
        metadata, os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR)
    )
    return output_dir


def transform(transform_output: tft.TFTransformOutput, texts: list[str]) -> dict[str, np.ndarray]:
    """Applies the transform graph to passages and returns the model inputs as arrays."""
    features = {text.TEXT_KEY: tf.constant([[passage] for passage in texts])}
    transformed = transform_output.transform_features_layer()(features)
    return {key: value.numpy() for key, value in transformed.items()}
