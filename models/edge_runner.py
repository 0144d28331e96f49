"""Runs an exported classifier's TFLite model on a device, with numpy and tflite-runtime only.

This module imports nothing but the standard library, numpy and `tflite_runtime.interpreter`
(no TensorFlow, no other dlforge module), so it runs where only `tflite-runtime` and `numpy`
are installed. It uses the model's `serving_dense` signature when there is one (dlforge's dense
raw-feature contract, `models/export.py`), else the model's only signature, else the model's
plain input and output tensors. Inputs are real values: for an integer-quantized input they are
quantized with the input's scale and zero point, and quantized outputs are dequantized back.

The interpreter behind an `EdgeModel` is not thread-safe: use one `EdgeModel` per thread.
"""

from __future__ import annotations

import csv
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from tflite_runtime import interpreter as tflite_interpreter

# The serving contract of models/export.py, repeated because importing it would import
# TensorFlow; tests/test_edge_runner.py keeps the two equal.
DENSE_SIGNATURE = "serving_dense"
PROBABILITIES = "probabilities"
CLASS_IDS = "class_ids"

INPUT_EXTENSIONS = (".npy", ".csv", ".json")
_TFLITE_IDENTIFIER = b"TFL3"


class EdgeModelError(ValueError):
    """A model file or an input that the edge runner cannot use.

    The message says what was expected and what was received, and names the file if any.
    """


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a TFLite model.

    Attributes:
        name: The signature's name for the tensor, or the tensor's own name without a signature.
        shape: Sizes per dimension; None where the size is dynamic (the batch, usually).
        dtype: The tensor's element type in the model.
        scale: Quantization scale, or None when the tensor is not quantized.
        zero_point: Quantization zero point, or None when the tensor is not quantized.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    scale: float | None
    zero_point: int | None

    @property
    def quantized(self) -> bool:
        """Whether values of this tensor are integers standing for `scale * (q - zero_point)`."""
        return self.scale is not None


class EdgeModel:
    """A TFLite classifier that predicts from plain numbers.

    Args:
        content: The TFLite flatbuffer.
        source: What to call the model in error messages (a file name).
        signature_key: The signature to run; by default `serving_dense` when the model has it,
            else the model's only signature, else the model's plain input and output tensors.
        num_threads: Threads for the interpreter; None lets TFLite choose.

    Raises:
        EdgeModelError: If `content` is not a TFLite model the interpreter can load, the
            signature is missing or ambiguous, or the model does not have exactly one numeric
            input.
    """

    def __init__(
        self,
        content: bytes,
        *,
        source: str = "<model bytes>",
        signature_key: str | None = None,
        num_threads: int | None = None,
    ):
        self.source = source
        self._content = bytes(content)
        try:
            _check_flatbuffer(self._content)
        except _FlatBufferError as error:
            raise EdgeModelError(
                f"{source}: expected a TFLite model (a 'TFL3' flatbuffer), received "
                f"{len(self._content)} bytes that are not one: {error}"
            ) from None
        try:
            self._interpreter = tflite_interpreter.Interpreter(
                model_content=self._content, num_threads=num_threads
            )
            # Ops the interpreter lacks (e.g. TensorFlow "Flex" ops) fail here, not mid-predict.
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise EdgeModelError(
                f"{source}: expected a TFLite model that tflite-runtime can load, received one "
                f"it refuses: {error}"
            ) from None
        self.signature_key = _choose_signature(
            self._interpreter.get_signature_list(), signature_key, source
        )
        if self.signature_key is None:
            self._runner = None
            input_details = {
                detail["name"]: detail for detail in self._interpreter.get_input_details()
            }
            output_details = {
                detail["name"]: detail for detail in self._interpreter.get_output_details()
            }
        else:
            self._runner = self._interpreter.get_signature_runner(self.signature_key)
            input_details = self._runner.get_input_details()
            output_details = self._runner.get_output_details()
        if len(input_details) != 1:
            raise EdgeModelError(
                f"{source}: expected a model with one input, received {len(input_details)}: "
                f"{sorted(input_details)}"
            )
        ((input_name, self._input_detail),) = input_details.items()
        self.input = _tensor_info(input_name, self._input_detail, source)
        if not np.issubdtype(self.input.dtype, np.integer) and not np.issubdtype(
            self.input.dtype, np.floating
        ):
            raise EdgeModelError(
                f"{source}: expected a model whose input holds numbers, received input "
                f"{input_name!r} of dtype {self.input.dtype}"
            )
        if len(self.input.shape) == 0:
            raise EdgeModelError(
                f"{source}: expected an input with a batch dimension, received a scalar input "
                f"{input_name!r}"
            )
        self.outputs = {
            name: _tensor_info(name, detail, source) for name, detail in output_details.items()
        }

    @classmethod
    def from_file(
        cls, path: str, *, signature_key: str | None = None, num_threads: int | None = None
    ) -> EdgeModel:
        """Loads a `.tflite` file.

        Args:
            path: The model file.
            signature_key: As for the constructor.
            num_threads: As for the constructor.

        Returns:
            The model.

        Raises:
            EdgeModelError: If the file cannot be read or does not hold a usable TFLite model;
                the message names the file.
        """
        try:
            with open(path, "rb") as stream:
                content = stream.read()
        except OSError as error:
            raise EdgeModelError(
                f"{path}: expected a readable TFLite model file, received an error: "
                f"{error.strerror or error}"
            ) from None
        return cls(content, source=str(path), signature_key=signature_key, num_threads=num_threads)

    @property
    def output_names(self) -> tuple[str, ...]:
        """The names `predict` returns, in order (with `class_ids` when it is derived)."""
        names = tuple(sorted(self.outputs))
        if PROBABILITIES in self.outputs and CLASS_IDS not in self.outputs:
            names = (*names, CLASS_IDS)
        return names

    def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        """Runs a batch of examples.

        Args:
            inputs: A numpy array or nested list of real values, shaped [n, features] (the
                model input's shape, with any batch size), or one example shaped [features].

        Returns:
            Output name -> values with the batch as first dimension (also for one example).
            Quantized outputs are dequantized to float32; when the model has `probabilities`
            but no `class_ids`, `class_ids` (int64, the most probable class) is added.

        Raises:
            EdgeModelError: If the inputs are not numbers, or not of the model's input shape, or
                have no example, or hold non-finite values for an integer input.
        """
        batch = self._convert(self._shaped(inputs))
        batch_size = self.input.shape[0]
        if batch_size is None:
            outputs = self._invoke(batch)
        else:
            outputs = self._invoke_in_chunks(batch, batch_size)
        results = {}
        for name, value in outputs.items():
            info = self.outputs[name]
            if info.quantized and np.issubdtype(value.dtype, np.integer):
                value = (value.astype(np.float32) - np.float32(info.zero_point)) * np.float32(
                    info.scale
                )
            results[name] = value
        if PROBABILITIES in results and CLASS_IDS not in results:
            results[CLASS_IDS] = np.argmax(results[PROBABILITIES], axis=-1).astype(np.int64)
        return results

    def _expected_shape(self, *, batch: bool = True) -> str:
        sizes = ["?" if size is None else str(size) for size in self.input.shape[1:]]
        return f"[{', '.join(['n', *sizes] if batch else sizes)}]"

    def _shaped(self, inputs: Any) -> np.ndarray:
        try:
            array = np.asarray(inputs)
        except ValueError as error:  # Nested lists of unequal lengths.
            raise EdgeModelError(
                f"Expected inputs of shape {self._expected_shape()}, received rows of unequal "
                f"lengths ({error})"
            ) from None
        if array.dtype.kind not in "iuf":
            raise EdgeModelError(
                f"Expected numeric inputs (integers or floats), received "
                f"{_describe_dtype(array.dtype)}"
            )
        feature_shape = self.input.shape[1:]
        if array.ndim == len(feature_shape):
            array = array[np.newaxis]
        matches = array.ndim == len(self.input.shape) and all(
            expected is None or expected == received
            for expected, received in zip(feature_shape, array.shape[1:], strict=True)
        )
        if not matches:
            raise EdgeModelError(
                f"Expected inputs of shape {self._expected_shape()} (n examples) or "
                f"{self._expected_shape(batch=False)} (one example), received shape "
                f"{list(array.shape)}"
            )
        if array.shape[0] == 0:
            raise EdgeModelError(
                f"Expected at least one example of shape {self._expected_shape()}, received 0"
            )
        return array

    def _convert(self, array: np.ndarray) -> np.ndarray:
        dtype = self.input.dtype
        if np.issubdtype(dtype, np.floating):
            return np.ascontiguousarray(array, dtype=dtype)
        if not np.all(np.isfinite(array)):
            raise EdgeModelError(
                f"Expected finite values for the model's {dtype} input, received NaN or infinity"
            )
        limits = np.iinfo(dtype)
        if self.input.quantized:
            quantized = (
                np.round(array.astype(np.float64) / self.input.scale) + self.input.zero_point
            )
            return np.ascontiguousarray(np.clip(quantized, limits.min, limits.max), dtype=dtype)
        if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
            raise EdgeModelError(
                f"Expected whole numbers for the model's {dtype} input, received fractions"
            )
        if array.min() < limits.min or array.max() > limits.max:
            raise EdgeModelError(
                f"Expected values in [{limits.min}, {limits.max}] for the model's {dtype} input, "
                f"received values in [{array.min()}, {array.max()}]"
            )
        return np.ascontiguousarray(array, dtype=dtype)

    def _invoke(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        try:
            return self._invoke_unchecked(batch)
        except (ValueError, RuntimeError) as error:
            raise EdgeModelError(
                f"{self.source}: expected the model to run on a batch of shape "
                f"{list(batch.shape)}, received an error from the interpreter: {error}"
            ) from None

    def _invoke_unchecked(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self._runner is not None:
            # The signature runner resizes the input to the batch's shape and reallocates.
            outputs = self._runner(**{self.input.name: batch})
            return {name: np.array(value) for name, value in outputs.items()}
        index = self._input_detail["index"]
        if tuple(self._interpreter.get_input_details()[0]["shape"]) != batch.shape:
            self._interpreter.resize_tensor_input(index, list(batch.shape), strict=True)
            self._interpreter.allocate_tensors()
        self._interpreter.set_tensor(index, batch)
        self._interpreter.invoke()
        return {
            detail["name"]: self._interpreter.get_tensor(detail["index"])
            for detail in self._interpreter.get_output_details()
        }

    def _invoke_in_chunks(self, batch: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        """Runs a model with a fixed batch size, padding the last chunk and dropping the pad."""
        pieces: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(batch), batch_size):
            chunk = batch[start : start + batch_size]
            real = len(chunk)
            if real < batch_size:
                padding = np.zeros((batch_size - real, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, padding])
            for name, value in self._invoke(chunk).items():
                if value.ndim and value.shape[0] == batch_size:
                    value = value[:real]
                pieces.setdefault(name, []).append(value)
        return {
            name: np.concatenate(values) if values[0].ndim else np.stack(values)
            for name, values in pieces.items()
        }


def load_inputs(path: str) -> np.ndarray:
    """Reads examples to predict from a `.npy`, `.csv` or `.json` file.

    A CSV file holds one example per line; its first line is a header, and skipped, when none
    of its cells is a number. A JSON file holds a list of rows (or one row of numbers) or
    `{"instances": [...]}` as TF Serving's REST API takes.

    Args:
        path: The file; its extension says the format.

    Returns:
        The examples ([n, features], float64 from CSV and JSON, as stored from `.npy`).

    Raises:
        EdgeModelError: For another extension, an unreadable file or content that is not
            numbers in rows; the message names the file (and the line and column, or the row).
    """
    extension = os.path.splitext(str(path))[1].lower()
    if extension not in INPUT_EXTENSIONS:
        raise EdgeModelError(
            f"{path}: expected a file ending in {', '.join(INPUT_EXTENSIONS)}, received "
            f"{repr(extension) if extension else 'no extension'}"
        )
    try:
        if extension == ".npy":
            return _read_npy(path)
        if extension == ".csv":
            return _read_csv(path)
        return _read_json(path)
    except UnicodeDecodeError as error:
        raise EdgeModelError(
            f"{path}: expected UTF-8 text, received a byte that is not UTF-8 at position "
            f"{error.start}"
        ) from None
    except OSError as error:
        raise EdgeModelError(
            f"{path}: expected a readable file, received an error: {error.strerror or error}"
        ) from None


def _read_npy(path: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as error:
        raise EdgeModelError(f"{path}: expected a numpy .npy array, received: {error}") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise EdgeModelError(f"{path}: expected one numpy array (.npy), received an .npz archive")
    if array.dtype.kind not in "iuf":
        raise EdgeModelError(
            f"{path}: expected an array of numbers, received {_describe_dtype(array.dtype)}"
        )
    if array.ndim == 0:
        raise EdgeModelError(f"{path}: expected an array of examples, received a single number")
    return array


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _read_csv(path: str) -> np.ndarray:
    rows: list[list[float]] = []
    width = width_line = None
    header = False
    with open(path, newline="", encoding="utf-8-sig") as stream:
        try:
            for line_number, cells in enumerate(csv.reader(stream), start=1):
                if not any(cell.strip() for cell in cells):
                    continue
                values = [_number(cell) for cell in cells]
                if width is None and all(value is None for value in values):
                    header, width, width_line = True, len(cells), line_number
                    continue
                for column, (cell, value) in enumerate(zip(cells, values, strict=True), start=1):
                    if value is None:
                        raise EdgeModelError(
                            f"{path}, line {line_number}, column {column}: expected a number, "
                            f"found {cell!r}"
                        )
                if width is None:
                    width, width_line = len(cells), line_number
                elif len(cells) != width:
                    raise EdgeModelError(
                        f"{path}, line {line_number}: expected {width} values (as on line "
                        f"{width_line}), found {len(cells)}"
                    )
                rows.append(values)
        except csv.Error as error:
            raise EdgeModelError(f"{path}: expected CSV text, received: {error}") from None
    if not rows:
        found = "only a header" if header else "an empty file"
        raise EdgeModelError(f"{path}: expected at least one row of numbers, found {found}")
    return np.array(rows, dtype=np.float64)


def _read_json(path: str) -> np.ndarray:
    with open(path, encoding="utf-8") as stream:
        try:
            document = json.load(stream)
        except json.JSONDecodeError as error:
            raise EdgeModelError(f"{path}: expected JSON, received invalid JSON: {error}") from None
    where = ""
    if isinstance(document, dict):
        if "instances" not in document:
            raise EdgeModelError(
                f'{path}: expected a list of rows or {{"instances": [...]}}, received an object '
                f"with the keys {sorted(document)}"
            )
        document, where = document["instances"], "instances"
    if not isinstance(document, list) or not document:
        raise EdgeModelError(
            f"{path}: expected a non-empty list of rows{' in ' + where if where else ''}, "
            f"received {json.dumps(document)[:80]}"
        )

    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if all(is_number(value) for value in document):
        return np.array(document, dtype=np.float64)  # One example.
    width = None
    for row_index, row in enumerate(document):
        position = f"{path}, {where}[{row_index}]"
        if not isinstance(row, list):
            raise EdgeModelError(
                f"{position}: expected a list of numbers, received {json.dumps(row)[:80]}"
            )
        for column, value in enumerate(row):
            if not is_number(value):
                raise EdgeModelError(
                    f"{position}[{column}]: expected a number, received {json.dumps(value)[:80]}"
                )
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise EdgeModelError(
                f"{position}: expected {width} values (as in {where}[0]), received {len(row)}"
            )
    try:
        return np.array(document, dtype=np.float64)
    except OverflowError as error:
        raise EdgeModelError(f"{path}: expected numbers a float holds, received: {error}") from None


def _describe_dtype(dtype: np.dtype) -> str:
    kinds = {"U": "strings", "S": "byte strings", "O": "Python objects (e.g. None or mixed types)"}
    kinds.update({"b": "booleans", "c": "complex numbers", "M": "dates", "m": "time spans"})
    return f"{kinds.get(dtype.kind, 'values')} (dtype {dtype})"


def _choose_signature(signatures: dict[str, Any], requested: str | None, source: str) -> str | None:
    if requested is not None:
        if requested not in signatures:
            raise EdgeModelError(
                f"{source}: expected a signature {requested!r}, received a model with the "
                f"signatures {sorted(signatures)}"
            )
        return requested
    if DENSE_SIGNATURE in signatures:
        return DENSE_SIGNATURE
    if len(signatures) > 1:
        raise EdgeModelError(
            f"{source}: expected a signature {DENSE_SIGNATURE!r} or exactly one signature, "
            f"received {sorted(signatures)}; pass signature_key to choose one"
        )
    return next(iter(signatures), None)


def _tensor_info(name: str, detail: dict[str, Any], source: str) -> TensorInfo:
    shape = detail["shape"]
    signature = detail.get("shape_signature")
    if signature is not None and len(signature) == len(shape):
        shape = signature
    scales = detail["quantization_parameters"]["scales"]
    zero_points = detail["quantization_parameters"]["zero_points"]
    if len(scales) > 1:
        raise EdgeModelError(
            f"{source}: expected per-tensor quantization on {name!r}, received {len(scales)} "
            f"scales (per-axis)"
        )
    quantized = len(scales) == 1 and scales[0] != 0
    return TensorInfo(
        name=name,
        shape=tuple(None if size < 0 else int(size) for size in shape),
        dtype=np.dtype(detail["dtype"]),
        scale=float(scales[0]) if quantized else None,
        zero_point=int(zero_points[0]) if quantized else None,
    )


# The Python interpreter of tflite-runtime builds models without verifying the flatbuffer, and
# a truncated or damaged file can crash the process. This walks the parts of the TFLite schema
# (tensorflow/lite/schema/schema.fbs) that the interpreter reads and checks that every offset,
# vector and index stays in range. It proves the structure is intact, not that every value in
# it is sane, and it does not look inside ops' option tables beyond their own bounds.


class _FlatBufferError(Exception):
    """A flatbuffer that is cut short or points outside itself."""


class _Table:
    """A flatbuffer table whose vtable and inline fields are inside the buffer."""

    def __init__(self, content: bytes, position: int, what: str):
        self._content = content
        self._position = position
        self._what = what
        self._vtable = position - _unpack(content, "<i", position, what)
        self._vtable_size = _unpack(content, "<H", self._vtable, f"{what} vtable")
        self._table_size = _unpack(content, "<H", self._vtable + 2, f"{what} vtable")
        if self._vtable_size < 4 or self._vtable_size % 2:
            raise _FlatBufferError(f"{what} has a vtable of {self._vtable_size} bytes")
        _require(content, self._vtable, self._vtable_size, f"{what} vtable")
        _require(content, position, max(self._table_size, 4), what)

    def _field(self, slot: int, size: int) -> int | None:
        entry = 4 + 2 * slot
        if entry + 2 > self._vtable_size:
            return None
        offset = _unpack(self._content, "<H", self._vtable + entry, self._what)
        if offset == 0:
            return None
        if offset + size > self._table_size:
            raise _FlatBufferError(f"{self._what} field {slot} is outside its table")
        return self._position + offset

    def scalar(self, slot: int, fmt: str) -> int:
        position = self._field(slot, struct.calcsize(fmt))
        return 0 if position is None else _unpack(self._content, fmt, position, self._what)

    def _target(self, slot: int) -> int | None:
        position = self._field(slot, 4)
        if position is None:
            return None
        return position + _unpack(self._content, "<I", position, self._what)

    def table(self, slot: int, what: str) -> _Table | None:
        target = self._target(slot)
        return None if target is None else _Table(self._content, target, what)

    def vector(self, slot: int, element_size: int, what: str) -> tuple[int, int]:
        """(position of the first element, number of elements); (0, 0) when absent."""
        target = self._target(slot)
        if target is None:
            return 0, 0
        count = _unpack(self._content, "<I", target, what)
        _require(self._content, target + 4, count * element_size, what)
        return target + 4, count

    def string(self, slot: int, what: str) -> None:
        start, count = self.vector(slot, 1, what)
        if start:
            _require(self._content, start + count, 1, f"{what} terminator")
            if self._content[start + count] != 0:  # TFLite reads names as C strings.
                raise _FlatBufferError(f"{what} at byte {start} does not end with a zero byte")
            try:
                self._content[start : start + count].decode("utf-8")
            except UnicodeDecodeError:
                raise _FlatBufferError(f"{what} at byte {start} is not UTF-8") from None

    def integers(self, slot: int, what: str) -> tuple[int, ...]:
        start, count = self.vector(slot, 4, what)
        return struct.unpack_from(f"<{count}i", self._content, start) if count else ()

    def tables(self, slot: int, what: str) -> list[_Table]:
        start, count = self.vector(slot, 4, what)
        tables = []
        for index in range(count):
            element = start + 4 * index
            target = element + _unpack(self._content, "<I", element, what)
            tables.append(_Table(self._content, target, f"{what}[{index}]"))
        return tables


def _require(content: bytes, position: int, length: int, what: str) -> None:
    if position < 0 or position + length > len(content):
        raise _FlatBufferError(
            f"{what} (bytes {position} to {position + length}) lies outside the "
            f"{len(content)}-byte file"
        )


def _unpack(content: bytes, fmt: str, position: int, what: str) -> int:
    _require(content, position, struct.calcsize(fmt), what)
    return struct.unpack_from(fmt, content, position)[0]


def _require_indices(indices: tuple[int, ...], count: int, what: str, optional: bool) -> None:
    lowest = -1 if optional else 0
    for index in indices:
        if not lowest <= index < count:
            raise _FlatBufferError(f"{what} refers to tensor {index} of {count}")


def _require_large_data(content: bytes, offset: int, size: int, what: str) -> None:
    # Offsets 0 and 1 mean "none" and "not yet placed"; larger ones point past the flatbuffer.
    if offset > 1:
        _require(content, offset, size, what)


def _check_flatbuffer(content: bytes) -> None:
    """Raises _FlatBufferError unless `content` is a structurally intact TFLite flatbuffer."""
    if len(content) < 8:
        raise _FlatBufferError(f"{len(content)} bytes are too few for a flatbuffer")
    if content[4:8] != _TFLITE_IDENTIFIER:
        raise _FlatBufferError(f"bytes 4 to 8 are {content[4:8]!r}, not {_TFLITE_IDENTIFIER!r}")
    model = _Table(content, _unpack(content, "<I", 0, "root offset"), "model")
    operator_codes = model.tables(1, "operator_codes")
    for code in operator_codes:
        code.string(1, "custom_code")
    buffers = model.tables(4, "buffers")
    for buffer in buffers:
        buffer.vector(0, 1, "buffer data")
        _require_large_data(content, buffer.scalar(1, "<Q"), buffer.scalar(2, "<Q"), "buffer")
    subgraphs = model.tables(2, "subgraphs")
    tensor_counts = [
        _check_subgraph(content, subgraph, len(operator_codes), len(buffers))
        for subgraph in subgraphs
    ]
    model.string(3, "description")
    model.vector(5, 4, "metadata_buffer")
    for metadata in model.tables(6, "metadata"):
        metadata.string(0, "metadata name")
        if metadata.scalar(1, "<I") >= len(buffers):
            raise _FlatBufferError("metadata refers to a buffer that does not exist")
    for signature in model.tables(7, "signature_defs"):
        signature.string(2, "signature_key")
        subgraph_index = signature.scalar(4, "<I")
        if subgraph_index >= len(subgraphs):
            raise _FlatBufferError(f"a signature refers to subgraph {subgraph_index}")
        for tensor_map in (*signature.tables(0, "inputs"), *signature.tables(1, "outputs")):
            tensor_map.string(0, "signature tensor name")
            index = tensor_map.scalar(1, "<I")
            _require_indices((index,), tensor_counts[subgraph_index], "a signature", False)


def _check_subgraph(
    content: bytes, subgraph: _Table, operator_code_count: int, buffer_count: int
) -> int:
    tensors = subgraph.tables(0, "tensors")
    for tensor in tensors:
        tensor.vector(0, 4, "tensor shape")
        if tensor.scalar(2, "<I") >= buffer_count:
            raise _FlatBufferError("a tensor refers to a buffer that does not exist")
        tensor.string(3, "tensor name")
        quantization = tensor.table(4, "quantization")
        if quantization is not None:
            for slot, size in ((0, 4), (1, 4), (2, 4), (3, 8)):
                quantization.vector(slot, size, "quantization parameters")
            details = quantization.table(5, "quantization details")
            if details is not None and quantization.scalar(4, "<B") == 1:
                details.vector(0, 1, "custom quantization")
        sparsity = tensor.table(6, "sparsity")
        if sparsity is not None:
            sparsity.vector(0, 4, "traversal_order")
            sparsity.vector(1, 4, "block_map")
            for dimension in sparsity.tables(2, "dim_metadata"):
                for type_slot, slot in ((2, 3), (4, 5)):
                    indices = dimension.table(slot, "sparse index vector")
                    element_size = {1: 4, 2: 2, 3: 1}.get(dimension.scalar(type_slot, "<B"))
                    if indices is not None and element_size is not None:
                        indices.vector(0, element_size, "sparse index values")
        tensor.vector(7, 4, "shape_signature")
        for variant in tensor.tables(9, "variant_tensors"):
            variant.vector(0, 4, "variant shape")
    _require_indices(subgraph.integers(1, "inputs"), len(tensors), "subgraph inputs", False)
    _require_indices(subgraph.integers(2, "outputs"), len(tensors), "subgraph outputs", False)
    for operator in subgraph.tables(3, "operators"):
        if operator.scalar(0, "<I") >= operator_code_count:
            raise _FlatBufferError("an operator refers to an operator code that does not exist")
        for slot in (1, 2, 8):
            _require_indices(
                operator.integers(slot, "operator tensors"), len(tensors), "an operator", True
            )
        operator.table(4, "builtin_options")
        operator.vector(5, 1, "custom_options")
        operator.vector(7, 1, "mutating_variable_inputs")
        _require_large_data(
            content, operator.scalar(9, "<Q"), operator.scalar(10, "<Q"), "custom options"
        )
        operator.table(12, "builtin_options_2")
    subgraph.string(4, "subgraph name")
    return len(tensors)
