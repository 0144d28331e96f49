"""TF Serving's warmup file for a pushed SavedModel: `assets.extra/tf_serving_warmup_requests`.

TF Serving (and `dlforge serve`) replays these PredictionLog records when it loads a version,
before the version takes traffic, so the first real requests are not slowed by lazy
initialisation. The Pusher writes requests it can build without data: zeros for every predict
signature whose inputs are all numeric with a known size per example (dlforge's
`serving_dense`), at a few batch sizes. Signatures taking serialized tf.Examples are not warmed
up: a valid example needs the raw schema, which a model folder does not carry.
"""

from __future__ import annotations

import logging
import posixpath

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from components import storage

# "/"-separated: joined onto a local folder or a URI (`gs://...`) alike.
WARMUP_FILE = posixpath.join("assets.extra", "tf_serving_warmup_requests")
WARMUP_BATCH_SIZES = (1, 8, 32)
PREDICT_METHOD = "tensorflow/serving/predict"


def _serve_signatures(model_dir: str) -> dict:
    saved_model = saved_model_pb2.SavedModel()
    path = storage.join(model_dir, "saved_model.pb")
    with tf.io.gfile.GFile(path, "rb") as handle:
        try:
            saved_model.ParseFromString(handle.read())
        except DecodeError as error:
            # Pushing is copying; whether the model loads is for the server to find out (it
            # will refuse this one). Nothing can be warmed up, so nothing is written.
            logging.warning("No warmup requests for %s: it does not parse (%s)", path, error)
            return {}
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    return {}


def _zeros_for(signature) -> dict[str, np.ndarray] | None:
    """Zero inputs of one example, or None when an input is not numeric of a known size."""
    inputs = {}
    for alias, info in signature.inputs.items():
        dtype = tf.dtypes.as_dtype(info.dtype)
        dims = [dim.size for dim in info.tensor_shape.dim]
        if (
            not (dtype.is_floating or dtype.is_integer or dtype.is_bool)
            or info.tensor_shape.unknown_rank
            or not dims
            or any(size < 0 for size in dims[1:])
        ):
            return None
        inputs[alias] = np.zeros([1, *dims[1:]], dtype.as_numpy_dtype)
    return inputs or None


def warmup_requests(
    model_dir: str, batch_sizes: tuple[int, ...] = WARMUP_BATCH_SIZES
) -> list[prediction_log_pb2.PredictionLog]:
    """The PredictionLogs to replay for the SavedModel in `model_dir` (see the module doc)."""
    logs = []
    for name, signature in sorted(_serve_signatures(model_dir).items()):
        if signature.method_name != PREDICT_METHOD:
            continue
        example = _zeros_for(signature)
        if example is None:
            continue
        for batch_size in batch_sizes:
            log = prediction_log_pb2.PredictionLog()
            request = log.predict_log.request
            request.model_spec.signature_name = name
            for alias, value in example.items():
                request.inputs[alias].CopyFrom(
                    tf.make_tensor_proto(np.repeat(value, batch_size, axis=0))
                )
            logs.append(log)
    return logs


def write_warmup_file(model_dir: str) -> int:
    """Writes the warmup file into a model folder (local or a URI) unless the model already
    has one. The records are written under a temporary name and renamed into place.

    Returns:
        The number of records written (0 when a warmup file was already there).
    """
    path = storage.join(model_dir, *WARMUP_FILE.split("/"))
    if tf.io.gfile.exists(path):
        return 0
    logs = warmup_requests(model_dir)
    if not logs:
        return 0
    temporary = path + ".tmp"
    tf.io.gfile.makedirs(storage.dirname(path))
    with tf.io.TFRecordWriter(temporary) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    tf.io.gfile.rename(temporary, path, overwrite=True)
    return len(logs)
