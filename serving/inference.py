"""Predict, Classify and Regress on a loaded version, with TF Serving's checks in its order.

Both front ends (REST and gRPC) and the warmup replay call these functions, so a request gets
the same answer and the same error whichever way it arrives. Tensors are numpy arrays here; the
front ends convert from JSON or TensorProtos. The model call itself goes through a `Runner`:
the servable directly, or the batch scheduler that merges concurrent calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import input_pb2

from serving import status
from serving.servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    PREDICT_METHOD,
    REGRESS_METHOD,
    InputSpec,
    Servable,
    dtype_name,
    numpy_dtype,
)

Runner = Callable[[Servable, str, dict[str, np.ndarray], list[str]], dict[str, np.ndarray]]
CLASSIFY_CLASSES = "classes"
CLASSIFY_SCORES = "scores"
REGRESS_OUTPUTS = "outputs"


def direct_runner(
    servable: Servable, signature_name: str, inputs: dict[str, np.ndarray], outputs: list[str]
) -> dict[str, np.ndarray]:
    """Calls the model once per request (no batching)."""
    return servable.run(signature_name, inputs, outputs)


def signature_or_default(signature_name: str) -> str:
    return signature_name or DEFAULT_SIGNATURE


def predict(
    servable: Servable,
    signature_name: str,
    inputs: dict[str, np.ndarray],
    output_filter: Sequence[str],
    runner: Runner,
) -> dict[str, np.ndarray]:
    """TF Serving's RunPredict: `checked_call`, then the model call through `runner`.

    Returns:
        Output alias -> values.

    Raises:
        ServingError: As `checked_call`.
    """
    return runner(servable, *checked_call(servable, signature_name, inputs, output_filter))


def checked_call(
    servable: Servable,
    signature_name: str,
    inputs: dict[str, np.ndarray],
    output_filter: Sequence[str],
) -> tuple[str, dict[str, np.ndarray], list[str]]:
    """TF Serving's checks of a Predict request, in its order: signature, method, input
    names, input values, output filter.

    Args:
        servable: The version that serves the request.
        signature_name: The request's signature name ("" for `serving_default`).
        inputs: Input alias -> values (any dtype; converted to the signature's).
        output_filter: Output aliases to return; empty for all.

    Returns:
        The model call's arguments after the servable: the signature key, the inputs in the
        signature's dtypes and the output aliases to compute.

    Raises:
        ServingError: FAILED_PRECONDITION for an unknown signature, INTERNAL for a signature
            of another method, INVALID_ARGUMENT for wrong inputs or outputs.
    """
    name = signature_or_default(signature_name)
    signature = servable.signature_defs.get(name)
    if signature is None:
        raise status.failed_precondition(f'Serving signature key "{name}" not found.')
    if signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        raise status.internal(
            "Expected prediction signature method_name to be one of "
            f"{{{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. "
            f"Was: {signature.method_name}"
        )
    requested, expected = set(inputs), set(signature.inputs)
    if requested != expected:
        raise status.invalid_argument(
            f"input size does not match signature: {len(requested)}!={len(expected)} "
            f"len({{{','.join(sorted(requested))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(sorted(requested - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - requested))}}}."
        )
    converted = {
        alias: _checked_input(alias, value, servable.input_specs[name][alias])
        for alias, value in inputs.items()
    }
    output_keys = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise status.invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in output_keys:
            raise status.invalid_argument(f"duplicate output tensor alias: {alias}")
        output_keys.append(alias)
    return name, converted, output_keys or sorted(signature.outputs)


def _checked_input(alias: str, value: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The value in the signature's dtype, or INVALID_ARGUMENT naming expected and received."""
    dtype = numpy_dtype(spec.dtype)
    array = np.asarray(value)
    if dtype is object or np.dtype(dtype) == np.dtype(object):
        if array.size and not all(isinstance(item, bytes) for item in array.flat):
            raise status.invalid_argument(
                f"input {alias!r}: expected {dtype_name(spec.dtype)} values, received "
                f"{array.dtype} values"
            )
        array = array.astype(object)
    else:
        if array.dtype == object or array.dtype.kind in "SU":
            raise status.invalid_argument(
                f"input {alias!r}: expected {dtype_name(spec.dtype)} values, received strings"
            )
        array = array.astype(dtype, copy=False)
    expected = spec.shape
    if expected is not None and (
        len(expected) != array.ndim
        or any(
            size >= 0 and size != actual for size, actual in zip(expected, array.shape, strict=True)
        )
    ):
        shown = ",".join(str(size) for size in expected)
        raise status.invalid_argument(
            f"input {alias!r}: expected shape [{shown}] (-1: any size), received "
            f"[{','.join(str(size) for size in array.shape)}]"
        )
    return array


def serialized_examples(request_input: input_pb2.Input) -> list[bytes]:
    """The serialized tf.Examples of a Classify/Regress `Input`, context merged into each.

    Raises:
        ServingError: INVALID_ARGUMENT "Input is empty." when there are no examples.
    """
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = [example.SerializeToString() for example in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        examples = []
        for example in with_context.examples:
            merged = example_pb2.Example()
            merged.CopyFrom(with_context.context)
            merged.MergeFrom(example)
            examples.append(merged.SerializeToString())
    else:
        examples = []
    if not examples:
        raise status.invalid_argument("Input is empty.")
    return examples


def _method_signature(servable: Servable, signature_name: str, method: str, kind: str):
    name = signature_or_default(signature_name)
    signature = servable.signature_defs.get(name)
    if signature is None:
        raise status.invalid_argument(f"No signature was found with the name: {name}")
    if signature.method_name != method:
        raise status.invalid_argument(
            f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}"
        )
    if len(signature.inputs) != 1:
        raise status.invalid_argument("Expected one input Tensor.")
    return name, signature


def classify(
    servable: Servable, signature_name: str, request_input: input_pb2.Input, runner: Runner
) -> list[list[tuple[str, float]]]:
    """TF Serving's Classify: per example, (class label, score) pairs.

    Raises:
        ServingError: INVALID_ARGUMENT when the signature is missing, is not a classification
            signature, or its outputs do not have the shapes TF Serving expects.
    """
    name, signature = _method_signature(servable, signature_name, CLASSIFY_METHOD, "classification")
    outputs = [key for key in (CLASSIFY_CLASSES, CLASSIFY_SCORES) if key in signature.outputs]
    if not outputs:
        raise status.invalid_argument(
            "Expected classification signature outputs to contain at least one of "
            f'"{CLASSIFY_CLASSES}" or "{CLASSIFY_SCORES}".'
        )
    examples = serialized_examples(request_input)
    (input_key,) = signature.inputs
    result = runner(servable, name, {input_key: _string_array(examples)}, outputs)
    count = len(examples)
    classes = result.get(CLASSIFY_CLASSES)
    scores = result.get(CLASSIFY_SCORES)
    for key, tensor in ((CLASSIFY_CLASSES, classes), (CLASSIFY_SCORES, scores)):
        if tensor is not None and (tensor.ndim != 2 or tensor.shape[0] != count):
            raise status.invalid_argument(
                f"Expected Tensor shape: [batch_size num_classes] but got {list(tensor.shape)} "
                f"for {key}"
            )
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise status.invalid_argument(
            "Tensors class and score should match in dim_size(1). Got "
            f"{classes.shape[1]} vs. {scores.shape[1]}"
        )
    width = (classes if classes is not None else scores).shape[1]
    return [
        [
            (
                classes[row, column].decode("utf-8", "replace") if classes is not None else "",
                float(scores[row, column]) if scores is not None else 0.0,
            )
            for column in range(width)
        ]
        for row in range(count)
    ]


def regress(
    servable: Servable, signature_name: str, request_input: input_pb2.Input, runner: Runner
) -> list[float]:
    """TF Serving's Regress: one value per example.

    Raises:
        ServingError: INVALID_ARGUMENT when the signature is missing, is not a regression
            signature, or its output is not one value per example.
    """
    name, signature = _method_signature(servable, signature_name, REGRESS_METHOD, "regression")
    if REGRESS_OUTPUTS not in signature.outputs:
        raise status.invalid_argument(
            f'No regression outputs found in SignatureDef: expected "{REGRESS_OUTPUTS}".'
        )
    examples = serialized_examples(request_input)
    (input_key,) = signature.inputs
    result = runner(servable, name, {input_key: _string_array(examples)}, [REGRESS_OUTPUTS])[
        REGRESS_OUTPUTS
    ]
    if result.ndim == 2 and result.shape[1] == 1:
        result = result[:, 0]
    if result.ndim != 1 or result.shape[0] != len(examples):
        raise status.invalid_argument(
            f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            f"{list(result.shape)}"
        )
    return [float(value) for value in result]


def _string_array(values: list[bytes]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def tensor_to_array(proto) -> np.ndarray:
    """A TensorProto's values as numpy (strings as an object array of bytes).

    Raises:
        ServingError: INVALID_ARGUMENT when the proto does not hold a valid tensor.
    """
    try:
        return tf.make_ndarray(proto)
    except Exception as error:  # Any proto TensorFlow cannot read is the client's to fix.
        raise status.invalid_argument(
            f"tensor parsing error: {type(error).__name__}: {error}"
        ) from None


def array_to_tensor(value: np.ndarray):
    """A numpy array as a TensorProto (values in the typed fields, as TF Serving fills them)."""
    return tf.make_tensor_proto(value)


def error_from_exception(error: Exception) -> status.ServingError:
    """A ServingError for anything unexpected raised while serving (UNKNOWN, as TF does)."""
    if isinstance(error, status.ServingError):
        return error
    return status.ServingError(grpc.StatusCode.UNKNOWN, f"{type(error).__name__}: {error}")
