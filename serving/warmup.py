"""TF Serving's SavedModel warmup: replay `assets.extra/tf_serving_warmup_requests` on load.

The file is a TFRecord of `PredictionLog` protos. Every record is replayed once before the
version takes traffic, so the first real request does not pay for tracing and lazy
initialisation; a record that fails fails the load, as in TF Serving.
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving import inference
from serving.servable import Servable

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000


def replay(servable: Servable, runner: inference.Runner) -> int:
    """Replays the version's warmup requests, if it has any.

    Returns:
        The number of requests replayed.

    Raises:
        ValueError: If the file holds more than 1000 records, a record that is not a
            PredictionLog, or a log type TF Serving does not replay.
        ServingError: If a replayed request fails.
    """
    path = os.path.join(servable.path, WARMUP_FILE)
    if not os.path.exists(path):
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(path):
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise ValueError(
                f"{path}: expected at most {MAX_WARMUP_RECORDS} warmup records, found more."
            )
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            request = log.predict_log.request
            inputs = {
                alias: inference.tensor_to_array(tensor) for alias, tensor in request.inputs.items()
            }
            inference.predict(
                servable, request.model_spec.signature_name, inputs, request.output_filter, runner
            )
        elif kind == "classify_log":
            request = log.classify_log.request
            inference.classify(servable, request.model_spec.signature_name, request.input, runner)
        elif kind == "regress_log":
            request = log.regress_log.request
            inference.regress(servable, request.model_spec.signature_name, request.input, runner)
        else:
            raise ValueError(
                f"{path}: record {count}: expected a predict, classify or regress log, "
                f"received {kind!r}."
            )
    return count
