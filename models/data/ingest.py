"""Safe ingestion of a user's CSV or TFRecord files as a new span of a pipeline's raw data.

Every file is read and checked in full before anything is written. A CSV file: UTF-8 text, a
header with exactly the expected columns, the same number of values on every line, an integer
in every cell. A TFRecord file (gzipped or plain): readable records, each a tf.Example with
exactly the expected features, each one int64 value. The first problem stops the ingestion with
a message naming the file, the line or record, the column, what was expected and what was
found. Range and distribution checks are left to the
pipeline's schema gate, which sees every split.

Accepted rows become the next span, `<data_dir>/span-<N>/`, split like the embedded data; the
pipeline's ExampleGen reads the latest span. Ingesting the same rows again adds no span.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SPAN_PREFIX = "span-"
SOURCE_FILE = "source.json"


class IngestError(ValueError):
    """User data that cannot become a span; the message says where and why."""


@dataclass(frozen=True)
class Span:
    """A span of raw data and where its rows came from."""

    number: int
    path: str
    rows: int
    added: bool


def span_numbers(data_dir: str) -> list[int]:
    """The span numbers present under `data_dir`, ascending."""
    if not os.path.isdir(data_dir):
        return []
    numbers = []
    for name in os.listdir(data_dir):
        suffix = name[len(SPAN_PREFIX) :]
        if name.startswith(SPAN_PREFIX) and suffix.isdigit():
            numbers.append(int(suffix))
    return sorted(numbers)


def span_dir(data_dir: str, number: int) -> str:
    return os.path.join(data_dir, f"{SPAN_PREFIX}{number}")


CSV_SUFFIXES = (".csv",)
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz")
GZIP_MAGIC = b"\x1f\x8b"


def _is_data_file(path: str) -> bool:
    return path.endswith(CSV_SUFFIXES + TFRECORD_SUFFIXES)


def find_data_files(path: str) -> list[str]:
    """The data files at `path`: the file itself, or the CSV and TFRecord files of a folder,
    sorted.

    Raises:
        IngestError: If the path does not exist, is not a data file, or is a folder without any.
    """
    kinds = f"{', '.join(CSV_SUFFIXES + TFRECORD_SUFFIXES)} files"
    if os.path.isdir(path):
        files = sorted(
            os.path.join(path, name)
            for name in os.listdir(path)
            if _is_data_file(name) and os.path.isfile(os.path.join(path, name))
        )
        if not files:
            raise IngestError(f"Expected {kinds} in the folder {path}, found none.")
        return files
    if not os.path.exists(path):
        raise IngestError(f"Expected one of {kinds} or a folder of them at {path}, found nothing.")
    if not _is_data_file(path):
        raise IngestError(f"Expected one of {kinds}, received {path}.")
    return [path]


def read_tfrecord_rows(path: str, columns: Sequence[str]) -> np.ndarray:
    """Reads a TFRecord file (gzipped or plain) of tf.Examples with exactly `columns`, each
    holding one integer.

    Args:
        path: The TFRecord file; gzip is recognised by its first bytes, not by the name.
        columns: The expected feature names; the result's columns are in this order.

    Returns:
        int64 array [records, len(columns)].

    Raises:
        IngestError: For a file that is not TFRecord (or is truncated), a record that is not a
            tf.Example, an example with missing or unexpected features, a feature that is not
            one int64 value, or a file with no records.
    """
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    with open(path, "rb") as handle:
        compressed = handle.read(2) == GZIP_MAGIC
    records = tf.data.TFRecordDataset(path, compression_type="GZIP" if compressed else "")
    rows = []
    number = 0
    try:
        for number, serialized in enumerate(records.as_numpy_iterator(), start=1):
            try:
                example = tf.train.Example.FromString(serialized)
            except DecodeError:
                raise IngestError(
                    f"{path}, record {number}: expected a serialized tf.Example, found "
                    f"{len(serialized)} bytes that do not parse as one."
                ) from None
            rows.append(_example_row(path, number, example.features.feature, columns))
    except tf.errors.OpError as error:
        raise IngestError(
            f"{path}, record {number + 1}: expected a {'gzipped ' if compressed else ''}TFRecord "
            f"file, found data that does not read as one ({error.message.splitlines()[0]})."
        ) from None
    if not rows:
        raise IngestError(f"{path}: the file holds no records; expected at least one.")
    return np.asarray(rows, dtype=np.int64)


def _layout_problems(
    noun: str, *, missing: list[str], unexpected: list[str], duplicated: Sequence[str] = ()
) -> list[str]:
    """What is wrong with a file's set of columns (or a record's features), in words."""
    kinds = (("missing", missing), ("unexpected", unexpected), ("duplicated", duplicated))
    return [f"{kind} {noun}(s) {', '.join(names)}" for kind, names in kinds if names]


def _example_row(path: str, number: int, features, columns: Sequence[str]) -> list[int]:
    problems = _layout_problems(
        "feature",
        missing=[name for name in columns if name not in features],
        unexpected=sorted(name for name in features if name not in columns),
    )
    if problems:
        raise IngestError(
            f"{path}, record {number}: the example has {'; '.join(problems)}; expected exactly "
            f"the features {', '.join(columns)}."
        )
    row = []
    for name in columns:
        kind = features[name].WhichOneof("kind")
        values = list(getattr(features[name], kind).value) if kind else []
        if kind != "int64_list" or len(values) != 1:
            found = f"{len(values)} value(s) in a {kind or 'feature without a type'}"
            if values:
                found += f" {values[:3]}"
            raise IngestError(
                f"{path}, record {number}, feature {name!r}: expected one integer (int64_list "
                f"with one value), found {found}."
            )
        row.append(values[0])
    return row


def read_csv_rows(path: str, columns: Sequence[str]) -> np.ndarray:
    """Reads an integer CSV file whose header holds exactly `columns`, in any order.

    Args:
        path: The CSV file.
        columns: The expected column names; the result's columns are in this order.

    Returns:
        int64 array [rows, len(columns)].

    Raises:
        IngestError: For text that is not UTF-8, an empty file, a header with missing or
            unexpected columns, a line with the wrong number of values, a value that is not an
            integer, or a file with no rows.
    """
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise IngestError(
            f"{path}, line {line}: expected UTF-8 text, found byte "
            f"0x{raw[error.start]:02x} that is not UTF-8."
        ) from error
    lines = csv.reader(io.StringIO(text))
    header = next(lines, None)
    if not header or not any(name.strip() for name in header):
        raise IngestError(
            f"{path}: the file is empty; expected a header line naming the columns "
            f"{', '.join(columns)}."
        )
    header = [name.strip() for name in header]
    _check_header(path, header, columns)
    order = [header.index(name) for name in columns]
    rows = []
    for line_number, values in enumerate(lines, start=2):
        if not values:
            continue
        if len(values) != len(header):
            raise IngestError(
                f"{path}, line {line_number}: expected {len(header)} values (one per column), "
                f"found {len(values)}."
            )
        rows.append([_integer(path, line_number, header[index], values[index]) for index in order])
    if not rows:
        raise IngestError(f"{path}: the file has a header but no rows; expected at least one.")
    return np.asarray(rows, dtype=np.int64)


def _check_header(path: str, header: list[str], columns: Sequence[str]) -> None:
    problems = _layout_problems(
        "column",
        missing=[name for name in columns if name not in header],
        unexpected=[name for name in header if name not in columns],
        duplicated=sorted({name for name in header if header.count(name) > 1}),
    )
    if problems:
        raise IngestError(
            f"{path}, line 1: the header has {'; '.join(problems)}; expected exactly the "
            f"columns {', '.join(columns)}."
        )


def _integer(path: str, line_number: int, column: str, value: str) -> int:
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        found = "an empty value" if not text else repr(value)
        raise IngestError(
            f"{path}, line {line_number}, column {column!r}: expected an integer, found {found}."
        ) from None


def read_files(path: str, columns: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Reads and checks every data file at `path` (a file or a folder of them).

    Returns:
        The files read and their rows, int64 [rows, len(columns)] in `columns` order.

    Raises:
        IngestError: At the first file that is not acceptable.
    """
    files = find_data_files(path)
    return files, np.concatenate(
        [
            read_csv_rows(file, columns)
            if file.endswith(CSV_SUFFIXES)
            else read_tfrecord_rows(file, columns)
            for file in files
        ]
    )


def rows_fingerprint(rows: np.ndarray) -> str:
    """A content hash of the rows, to recognise data that was ingested before."""
    return hashlib.sha256(np.ascontiguousarray(rows).tobytes()).hexdigest()


def read_source(data_dir: str, number: int) -> dict:
    """What `add_span` recorded about a span's origin ({} for the embedded data)."""
    path = os.path.join(span_dir(data_dir, number), SOURCE_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def add_span(path: str, data_dir: str, columns: Sequence[str], write_span) -> Span:
    """Checks the user's CSV or TFRecord files and adds their rows as the next span.

    Args:
        path: A data file or a folder of them.
        data_dir: The pipeline's raw data folder (holding `span-<N>/`).
        columns: The expected columns.
        write_span: `write_span(rows, folder)` creates `folder` holding the rows' splits. It
            writes under a staging folder that is renamed to `span-<N>` only when whole.

    Returns:
        The span that now holds the rows: a new one, or the latest one if it holds the same rows.

    Raises:
        IngestError: If a file is not acceptable; nothing is written then.
    """
    files, rows = read_files(path, columns)
    fingerprint = rows_fingerprint(rows)
    numbers = span_numbers(data_dir)
    if numbers and read_source(data_dir, numbers[-1]).get("sha256") == fingerprint:
        return Span(numbers[-1], span_dir(data_dir, numbers[-1]), len(rows), added=False)
    number = numbers[-1] + 1 if numbers else 0
    os.makedirs(data_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".span-", dir=data_dir)
    try:
        folder = os.path.join(staging, "span")
        write_span(rows, folder)
        source = {"files": [os.path.abspath(file) for file in files], "rows": len(rows)}
        with open(os.path.join(folder, SOURCE_FILE), "w") as handle:
            json.dump({**source, "sha256": fingerprint}, handle, indent=1)
        os.rename(folder, span_dir(data_dir, number))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Span(number, span_dir(data_dir, number), len(rows), added=True)
