"""TF Serving's JSON mapping of the REST API (`util/json_tensor.cc`), with its error messages.

Requests: `instances` (row format) or `inputs` (columnar format) become numpy tensors typed by
the signature; `examples` and `context` become tf.Examples. Responses: `predictions` /
`outputs` / `results`, with float32 values written in their shortest round-tripping form,
`NaN`/`Infinity` tokens, and `{"b64": ...}` for string outputs named `*_bytes`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import orjson
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import input_pb2

from serving import status
from serving.servable import numpy_dtype

ROW, COLUMNAR = "row", "columnar"
_MAX_DEBUG_CHARS = 256
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_INT_RANGES = {
    types_pb2.DT_INT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT16: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_UINT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
_FLOATS = (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE)
# DataTypeString of TensorFlow, as TF Serving's messages print dtypes.
_DTYPE_NAMES = {
    types_pb2.DT_FLOAT: "float",
    types_pb2.DT_DOUBLE: "double",
    types_pb2.DT_INT32: "int32",
    types_pb2.DT_UINT8: "uint8",
    types_pb2.DT_INT16: "int16",
    types_pb2.DT_INT8: "int8",
    types_pb2.DT_STRING: "string",
    types_pb2.DT_INT64: "int64",
    types_pb2.DT_BOOL: "bool",
    types_pb2.DT_UINT32: "uint32",
    types_pb2.DT_UINT64: "uint64",
}
# rapidjson's wording for the parse errors Python's json module reports differently.
_PARSE_ERRORS = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Expecting ',' delimiter": "Missing a comma or ']' after an array element.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid control character at": "Invalid encoding in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
}


def debug_string(value: Any) -> str:
    """A JSON value in one line, cut at 256 characters, for error messages."""
    return json.dumps(value, ensure_ascii=False)[:_MAX_DEBUG_CHARS]


def json_type(value: Any) -> str:
    """rapidjson's type name of a parsed JSON value."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def parse_document(body: bytes) -> dict:
    """The request body as a JSON object; trailing bytes after the document are ignored.

    Raises:
        ServingError: INVALID_ARGUMENT "JSON Parse error: ..." or "... Is not object".
    """
    if not body:
        raise status.invalid_argument("JSON Parse error: The document is empty")
    # The fast parser takes the common well-formed object (an integer beyond 64 bits becomes a
    # double, as in rapidjson); anything else (NaN, Infinity, trailing bytes, bad encodings,
    # errors to report) goes the way below.
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        if isinstance(document, dict):
            return document
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise status.invalid_argument(
            f"JSON Parse error: Invalid encoding in string. at offset: {error.start}"
        ) from None
    start = len(text) - len(text.lstrip(" \t\n\r"))
    if start == len(text):
        raise status.invalid_argument("JSON Parse error: The document is empty")
    try:
        document, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as error:
        message = next(
            (ours for theirs, ours in _PARSE_ERRORS.items() if error.msg.startswith(theirs)),
            error.msg,
        )
        raise status.invalid_argument(
            f"JSON Parse error: {message} at offset: {error.pos}"
        ) from None
    except RecursionError:
        raise status.invalid_argument("JSON Parse error: Nesting too deep.") from None
    escape = _SURROGATE_ESCAPE.search(text)
    if escape is not None:
        # Python decodes a lone surrogate escape to a str that no UTF-8 encoder takes;
        # rapidjson refuses it while parsing.
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise status.invalid_argument(
                "JSON Parse error: The surrogate pair in string is invalid. at offset: "
                f"{escape.start()}"
            ) from None
    if not isinstance(document, dict):
        raise status.invalid_argument(f"JSON Value: {debug_string(document)} Is not object")
    return document


def signature_name(document: dict) -> str:
    """The optional `signature_name` ("" when absent).

    Raises:
        ServingError: INVALID_ARGUMENT when it is not a string.
    """
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise status.invalid_argument(
            f"JSON Value: {debug_string(document)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


def _is_base64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decode_base64(value: Any) -> bytes:
    if not _is_base64(value):
        raise status.invalid_argument(
            f"JSON Value: {debug_string(value)} not formatted correctly for base64 data"
        )
    text = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise status.invalid_argument("Unable to base64 decode") from None


def _type_error(value: Any, dtype: int) -> status.ServingError:
    return status.invalid_argument(
        f"JSON Value: {debug_string(value)} Type: {json_type(value)} is not of expected type: "
        f"{_DTYPE_NAMES.get(dtype, str(dtype))}"
    )


def _leaf(value: Any, dtype: int) -> Any:
    kind = type(value)
    if dtype in _FLOATS:
        if kind is float or kind is int:
            return value
    elif dtype == types_pb2.DT_STRING:
        if kind is str:
            return value.encode("utf-8")
        if kind is dict:
            return _decode_base64(value)
    elif dtype == types_pb2.DT_BOOL:
        if kind is bool:
            return value
    elif dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if kind is int and low <= value <= high:
            return value
    else:
        raise status.ServingError(
            status.grpc.StatusCode.UNIMPLEMENTED,
            f"Conversion of JSON Value: {debug_string(value)} to type: "
            f"{_DTYPE_NAMES.get(dtype, str(dtype))}",
        )
    raise _type_error(value, dtype)


def _fill(value: Any, level: int, shape: list[int], dtype: int, out: list) -> None:
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise status.invalid_argument(
                f"JSON Value: {debug_string(value)} found at incorrect level: {level + 1} in the "
                f"JSON DOM. Expected at level: {rank}"
            )
        out.append(_leaf(value, dtype))
        return
    if level >= rank:
        raise status.invalid_argument(
            f"Encountered list at unexpected level: {level} expected < {rank}"
        )
    if len(value) != shape[level]:
        raise status.invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected "
            f"size: {shape[level]}"
        )
    if level == rank - 1:
        if dtype in _FLOATS and all(type(item) is float or type(item) is int for item in value):
            out.extend(value)  # The common case, numbers only: no per-value checks needed.
            return
        for item in value:
            if isinstance(item, list):
                raise status.invalid_argument(
                    f"Encountered list at unexpected level: {level + 1} expected < {rank}"
                )
            out.append(_leaf(item, dtype))
        return
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def to_array(value: Any, dtype: int) -> np.ndarray:
    """A JSON value (scalar or nested lists) as a dense tensor of `dtype`.

    The shape is read along the first elements; every list must match it, as TF Serving does.

    Raises:
        ServingError: INVALID_ARGUMENT for ragged lists or values of the wrong type.
    """
    shape = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat: list = []
    _fill(value, 0, shape, dtype, flat)
    numpy_type = numpy_dtype(dtype)
    array = np.empty(len(flat), dtype=object) if numpy_type is object else None
    if array is not None:
        array[:] = flat
    else:
        array = np.array(flat, dtype=numpy_type)
    return array.reshape(shape)


def _shape_string(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


def predict_inputs(
    document: dict, input_dtypes: Callable[[str], Mapping[str, int]]
) -> tuple[str, dict[str, np.ndarray], str]:
    """Reads a `:predict` body the way TF Serving's FillPredictRequestFromJson does.

    Args:
        document: The parsed body.
        input_dtypes: signature name -> {input alias: DataType}; it looks the servable up, so
            its errors (model not found, unknown signature) come after the body's own checks.

    Returns:
        (signature name, input alias -> tensor, ROW or COLUMNAR).

    Raises:
        ServingError: INVALID_ARGUMENT with TF Serving's message for each malformed body.
    """
    name = signature_name(document)
    infos = dict(input_dtypes(name))
    if not infos:
        raise status.invalid_argument(f"Failed to get input map for signature: {name or 'DEFAULT'}")
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise status.invalid_argument(
            f"JSON Value: {debug_string(document)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise status.invalid_argument(
                f"JSON Value: {debug_string(document)} Expecting 'instances' to be an list/array"
            )
        if not instances:
            raise status.invalid_argument(
                f"JSON Value: {debug_string(document)} No values in 'instances' array"
            )
        return name, _from_instances(instances, infos), ROW
    if has_inputs:
        return name, _from_inputs(document["inputs"], infos), COLUMNAR
    raise status.invalid_argument("Missing 'inputs' or 'instances' key")


def _is_element_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_base64(value)


def _from_instances(instances: list, infos: dict[str, int]) -> dict[str, np.ndarray]:
    if not isinstance(instances[0], dict) and len(infos) > 1:
        raise status.invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    objects = _is_element_object(instances[0])
    names = sorted(infos)
    if not objects and infos[names[0]] in _FLOATS:
        numbers = _numeric_rows(instances, infos[names[0]])
        if numbers is not None:
            return {names[0]: numbers}
    rows: dict[str, list[np.ndarray]] = {}
    for index, element in enumerate(instances):
        if objects:
            if not _is_element_object(element):
                raise status.invalid_argument(
                    f"Expecting object but got list at item {index} of input list"
                )
            for key, item in element.items():
                try:
                    _add_instance(key, item, infos, rows)
                except status.ServingError as error:
                    raise status.invalid_argument(
                        f"Failed to process element: {index} key: {key} of 'instances' list. "
                        f"Error: {error.code_name}: {error.message}"
                    ) from None
            if sorted(element) != names:
                raise status.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{debug_string(element)} keys must be equal to: {','.join(names)}"
                )
        else:
            if _is_element_object(element):
                raise status.invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            try:
                _add_instance(names[0], element, infos, rows)
            except status.ServingError as error:
                raise status.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. "
                    f"Error: {error.code_name}: {error.message}"
                ) from None
    return {key: np.stack(values) for key, values in rows.items()}


def _numeric_rows(instances: list, dtype: int) -> np.ndarray | None:
    """The instances as one float array when they are all numbers, or all lists of numbers of
    one length (what the checks below would accept without a message); else None."""
    first = instances[0]
    if type(first) is list:
        width = len(first)
        if not width or not all(
            type(row) is list
            and len(row) == width
            and all(type(item) is float or type(item) is int for item in row)
            for row in instances
        ):
            return None
    elif not all(type(item) is float or type(item) is int for item in instances):
        return None
    try:
        return np.array(instances, dtype=numpy_dtype(dtype))
    except (OverflowError, ValueError):
        return None


def _add_instance(
    name: str, item: Any, infos: dict[str, int], rows: dict[str, list[np.ndarray]]
) -> None:
    if name not in infos:
        raise status.invalid_argument(f"JSON object: does not have named input: {name}")
    array = to_array(item, infos[name])
    earlier = rows.setdefault(name, [])
    if earlier:
        first = earlier[0]
        if first.size != array.size:
            raise status.invalid_argument(
                f"Expecting tensor size: {first.size} but got: {array.size}"
            )
        if first.shape != array.shape:
            raise status.invalid_argument(
                f"Expecting shape {_shape_string(first.shape)} but got: "
                f"{_shape_string(array.shape)}"
            )
    earlier.append(array)


def _from_inputs(value: Any, infos: dict[str, int]) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or _is_base64(value):
        if len(infos) > 1:
            raise status.invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        ((name, dtype),) = infos.items()
        return {name: to_array(value, dtype)}
    tensors = {}
    for name in sorted(infos):
        if name not in value:
            raise status.invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = to_array(value[name], infos[name])
    return tensors


def _format_value(value: Any, as_bytes: bool) -> str:
    if isinstance(value, (np.floating, float)):
        if np.isnan(value):
            return "NaN"
        if np.isinf(value):
            return "-Infinity" if value < 0 else "Infinity"
        text = str(value) if isinstance(value, np.float32) else repr(float(value))
        return text if ("." in text or "e" in text) else text + ".0"
    if isinstance(value, (bytes, np.bytes_)):
        if as_bytes:
            return json.dumps({"b64": base64.b64encode(bytes(value)).decode("ascii")})
        return json.dumps(bytes(value).decode("utf-8", "replace"), ensure_ascii=False)
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(int(value))


def _float_text(dtype: np.dtype):
    """str of a finite float32 value (its shortest repr, with a '.' or 'e'); repr of a float
    of another width as a Python float, with '.0' where it has neither."""
    if dtype == np.float32:
        return str

    def text(value) -> str:
        shown = repr(float(value))
        return shown if ("." in shown or "e" in shown) else shown + ".0"

    return text


def _format_tensor(array: np.ndarray, as_bytes: bool) -> str:
    if not isinstance(array, np.ndarray):
        return _format_value(array, as_bytes)
    if array.ndim == 0:
        return _format_value(array[()], as_bytes)
    if array.ndim == 1:
        if array.dtype.kind == "f":
            # The common case, finite floats, prints as `_format_value` would without its
            # per-value checks; "nan" and "inf" are the only texts with an "n".
            text = ", ".join(map(_float_text(array.dtype), array))
            if "n" not in text:
                return "[" + text + "]"
        return "[" + ", ".join(_format_value(item, as_bytes) for item in array) + "]"
    return "[" + ", ".join(_format_tensor(row, as_bytes) for row in array) + "]"


def _as_bytes(name: str, array: np.ndarray) -> bool:
    return array.dtype == object and name.endswith("_bytes")


def predict_response(outputs: dict[str, np.ndarray], request_format: str) -> str:
    """The `:predict` response body for the request's format.

    Raises:
        ServingError: INVALID_ARGUMENT when a row-format response has outputs without a common
            batch size, as TF Serving's MakeRowFormatJsonFromTensors.
    """
    if not outputs:
        raise status.invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if request_format == COLUMNAR:
        if len(names) == 1:
            ((name, array),) = outputs.items()
            return '{"outputs": ' + _format_tensor(array, _as_bytes(name, array)) + "}"
        members = (
            json.dumps(name) + ": " + _format_tensor(outputs[name], _as_bytes(name, outputs[name]))
            for name in names
        )
        return '{"outputs": {' + ", ".join(members) + "}}"
    batch = None
    for name in names:
        array = outputs[name]
        if array.ndim == 0:
            raise status.invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch is not None and array.shape[0] != batch:
            raise status.invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                f"expecting: {batch}"
            )
        batch = array.shape[0]
    if len(names) == 1:
        array = outputs[names[0]]
        rows = (_format_tensor(row, _as_bytes(names[0], array)) for row in array)
    else:
        keys = [json.dumps(name) + ": " for name in names]
        as_bytes = [_as_bytes(name, outputs[name]) for name in names]
        rows = (
            "{"
            + ", ".join(
                key + _format_tensor(outputs[name][index], flag)
                for key, name, flag in zip(keys, names, as_bytes, strict=True)
            )
            + "}"
            for index in range(batch)
        )
    return '{"predictions": [' + ", ".join(rows) + "]}"


def _feature_kind_name(feature: feature_pb2.Feature) -> str:
    return {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}.get(
        feature.WhichOneof("kind"), "UNKNOWN"
    )


def _add_to_feature(value: Any, name: str, feature: feature_pb2.Feature) -> None:
    kind = feature.WhichOneof("kind")

    def require(wanted: str) -> None:
        if kind not in (None, wanted):
            raise status.invalid_argument(
                f"Unexpected element type in feature: {name} expecting type: "
                f"{_feature_kind_name(feature)}"
            )

    if (
        value is None
        or isinstance(value, list)
        or (isinstance(value, dict) and not _is_base64(value))
    ):
        raise status.invalid_argument(
            f"Feature: {name} has element with unexpected JSON type: {json_type(value)}"
        )
    if isinstance(value, bool):
        require("int64_list")
        feature.int64_list.value.append(int(value))
    elif isinstance(value, dict):
        require("bytes_list")
        feature.bytes_list.value.append(_decode_base64(value))
    elif isinstance(value, str):
        require("bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif isinstance(value, float) or value >= 2**64 or value < -(2**63):
        require("float_list")
        feature.float_list.value.append(float(value))
    else:
        require("int64_list")
        if value >= 2**63:
            raise status.invalid_argument(
                f"Feature: {name} has uint64_t element. Only int64_t is supported."
            )
        feature.int64_list.value.append(value)


def _example(value: Any, example: example_pb2.Example) -> None:
    if not isinstance(value, dict):
        raise status.invalid_argument(
            f"Example must be JSON object but got JSON {json_type(value)}"
        )
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_to_feature(item, name, feature)
        example.features.feature[name].CopyFrom(feature)


def examples_input(document: dict) -> tuple[str, input_pb2.Input]:
    """Reads a `:classify` or `:regress` body (FillClassifyRegressRequestFromJson).

    Returns:
        (signature name, the Input proto of the request).

    Raises:
        ServingError: INVALID_ARGUMENT with TF Serving's message for each malformed body.
    """
    name = signature_name(document)
    request_input = input_pb2.Input()
    has_context = "context" in document
    if has_context:
        _example(document["context"], request_input.example_list_with_context.context)
    if "examples" not in document:
        raise status.invalid_argument(
            f"JSON Value: {debug_string(document)} When method is classify, key 'examples' is "
            "expected and was not found"
        )
    examples = document["examples"]
    if not isinstance(examples, list):
        raise status.invalid_argument(
            f"JSON Value: {debug_string(document)} Expecting 'examples' value to be an list/array"
        )
    if not examples:
        raise status.invalid_argument(
            f"JSON Value: {debug_string(document)} 'examples' value is an empty array"
        )
    target = (
        request_input.example_list_with_context.examples
        if has_context
        else request_input.example_list.examples
    )
    for value in examples:
        _example(value, target.add())
    return name, request_input


def classify_response(results: list[list[tuple[str, float]]]) -> str:
    rows = (
        "["
        + ", ".join(
            "["
            + json.dumps(label, ensure_ascii=False)
            + ", "
            + _format_value(np.float32(score), False)
            + "]"
            for label, score in row
        )
        + "]"
        for row in results
    )
    return '{"results": [' + ", ".join(rows) + "]}"


def regress_response(results: list[float]) -> str:
    return (
        '{"results": ['
        + ", ".join(_format_value(np.float32(value), False) for value in results)
        + "]}"
    )


def error_body(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)
