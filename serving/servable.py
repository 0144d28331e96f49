"""One loaded model version: its SignatureDefs (as TF Serving reports them) and its functions."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

# Registers TF Text's ops, which a bert model's in-graph WordPiece tokenizer calls; TF Serving's
# model server links them in too.
import tensorflow_text  # noqa: F401
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from serving import status

SERVE_TAG = "serve"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"


def read_signature_defs(path: str) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs of the `serve` MetaGraph in the SavedModel at `path`.

    Raises:
        ValueError: If there is no readable `saved_model.pb` with a `serve` MetaGraph.
    """
    model_file = os.path.join(path, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with open(model_file, "rb") as handle:
        saved_model.ParseFromString(handle.read())
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{model_file}: expected a MetaGraph tagged {SERVE_TAG!r}, found none.")


@functools.cache
def numpy_dtype(dtype_enum: int) -> np.dtype:
    """The numpy dtype of a TensorFlow DataType enum (object for strings)."""
    return tf.dtypes.as_dtype(dtype_enum).as_numpy_dtype


def dtype_name(dtype_enum: int) -> str:
    """TF Serving's short dtype name in messages, e.g. `float` for DT_FLOAT."""
    return tf.dtypes.as_dtype(dtype_enum).name


@dataclass(frozen=True)
class InputSpec:
    """What a signature input takes, read once from its TensorInfo.

    Attributes:
        dtype: The TensorFlow DataType enum.
        shape: Sizes (-1: any), or None for an unknown rank.
    """

    dtype: int
    shape: tuple[int, ...] | None


def input_specs(signature: meta_graph_pb2.SignatureDef) -> dict[str, InputSpec]:
    """Input alias -> InputSpec of a SignatureDef."""
    return {
        alias: InputSpec(
            info.dtype,
            None
            if info.tensor_shape.unknown_rank
            else tuple(dim.size for dim in info.tensor_shape.dim),
        )
        for alias, info in signature.inputs.items()
    }


class Servable:
    """A SavedModel version loaded for serving.

    Args:
        name: The model name it is served under.
        version: Its version number.
        path: The version folder (already checked to lie under the model's base path).

    Raises:
        Exception: Whatever reading or loading the SavedModel raises; the manager records it.
    """

    def __init__(self, name: str, version: int, path: str):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = read_signature_defs(path)
        # Signature key -> input alias -> InputSpec: read per request, so parsed once.
        self.input_specs = {key: input_specs(value) for key, value in self.signature_defs.items()}
        self._model = tf.saved_model.load(path, tags=[SERVE_TAG])
        self._functions = dict(self._model.signatures)

    def run(
        self, signature_name: str, inputs: dict[str, np.ndarray], output_keys: list[str]
    ) -> dict[str, np.ndarray]:
        """Runs a signature on numpy inputs that were already checked against its SignatureDef.

        Raises:
            ServingError: With the code of the TensorFlow error the model call raised.
        """
        function = self._functions[signature_name]
        specs = self.input_specs[signature_name]
        tensors = {key: tf.constant(value, dtype=specs[key].dtype) for key, value in inputs.items()}
        try:
            outputs = function(**tensors)
        except tf.errors.OpError as error:
            raise status.ServingError(
                _grpc_code(error.error_code), _runtime_message(error.message)
            ) from None
        except (TypeError, ValueError) as error:
            raise status.invalid_argument(str(error)) from None
        return {key: outputs[key].numpy() for key in output_keys}


def _runtime_message(message: str) -> str:
    """The runtime's own words, without the Python stack eager TensorFlow puts before them.

    The stack would show the server's files to clients; TF Serving's C++ runtime reports only
    the op's message.
    """
    if message.startswith("Graph execution error"):
        message = message.split("\n\n")[-1]
    return re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", message)


def _grpc_code(error_code: int):
    import grpc

    for code in grpc.StatusCode:
        if code.value[0] == error_code:
            return code
    return grpc.StatusCode.UNKNOWN
