"""Ingestion of users' CSV files: every malformed input is refused with where and why."""

import json
import os

import numpy as np
import pytest

from models.data import digits, ingest
from tests.files import snapshot

COLUMNS = ("a", "b", "label")


def _write(path, text: str | bytes) -> str:
    mode = "wb" if isinstance(text, bytes) else "w"
    with open(path, mode) as handle:
        handle.write(text)
    return str(path)


def _write_span(rows, folder):
    os.makedirs(os.path.join(folder, "train"))
    np.savetxt(os.path.join(folder, "train", "rows.csv"), rows, fmt="%d", delimiter=",")


def test_reads_integer_rows_in_the_expected_column_order(tmp_path):
    path = _write(tmp_path / "data.csv", "label,b,a\n1,20,10\n0, 21 ,11\n\n")
    rows = ingest.read_csv_rows(path, COLUMNS)
    np.testing.assert_array_equal(rows, [[10, 20, 1], [11, 21, 0]])
    assert rows.dtype == np.int64


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"data.csv: the file is empty; expected a header line naming the columns a, b, label"),
        ("a,b\n1,2\n", r"line 1: the header has missing column\(s\) label"),
        ("a,b,label,c\n1,2,3,4\n", r"line 1: the header has unexpected column\(s\) c"),
        ("a,b,a,label\n1,2,3,4\n", r"duplicated column\(s\) a"),
        ("a,b,label\n1,2,3\n4,5\n", r"line 3: expected 3 values \(one per column\), found 2"),
        ("a,b,label\n1,2,3,9\n", r"line 2: expected 3 values \(one per column\), found 4"),
        ("a,b,label\n1,x7,3\n", r"line 2, column 'b': expected an integer, found 'x7'"),
        ("a,b,label\n1,2.5,3\n", r"line 2, column 'b': expected an integer, found '2.5'"),
        ("a,b,label\n1,,3\n", r"line 2, column 'b': expected an integer, found an empty value"),
        ("a,b,label\n", r"the file has a header but no rows"),
    ],
)
def test_malformed_files_name_the_place_and_the_problem(tmp_path, content, message):
    path = _write(tmp_path / "data.csv", content)
    with pytest.raises(ingest.IngestError, match=message) as error:
        ingest.read_csv_rows(path, COLUMNS)
    assert str(error.value).startswith(path)


def test_text_that_is_not_utf8_names_the_line_and_byte(tmp_path):
    path = _write(tmp_path / "data.csv", b"a,b,label\n1,2,3\n" + b"4,\xff5,6\n")
    with pytest.raises(ingest.IngestError, match=r"line 3: expected UTF-8 text, found byte 0xff"):
        ingest.read_csv_rows(path, COLUMNS)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = _write(tmp_path / "data.csv", "\ufeffa,b,label\n1,2,3\n".encode())
    np.testing.assert_array_equal(ingest.read_csv_rows(path, COLUMNS), [[1, 2, 3]])


def test_finding_files(tmp_path):
    with pytest.raises(ingest.IngestError, match="found nothing"):
        ingest.find_data_files(str(tmp_path / "missing.csv"))
    with pytest.raises(ingest.IngestError, match=r"Expected one of \.csv, .*received .*data\.json"):
        ingest.find_data_files(_write(tmp_path / "data.json", "{}"))
    with pytest.raises(ingest.IngestError, match=r"Expected \.csv, .* files in the folder"):
        ingest.find_data_files(str(tmp_path))
    second = _write(tmp_path / "2.csv", "")
    first = _write(tmp_path / "1.csv", "")
    records = _write(tmp_path / "3.tfrecord.gz", "")
    assert ingest.find_data_files(str(tmp_path)) == [first, second, records]


def _example(features: dict) -> bytes:
    import tensorflow as tf

    feature = {}
    for name, values in features.items():
        if values and isinstance(values[0], float):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        elif values and isinstance(values[0], bytes):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_records(path, records: list[bytes], gzip: bool) -> str:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path), options="GZIP" if gzip else None) as writer:
        for record in records:
            writer.write(record)
    return str(path)


@pytest.mark.parametrize("gzip", [True, False], ids=["gzipped", "plain"])
def test_reads_tfrecord_examples_in_the_expected_column_order(tmp_path, gzip):
    path = _write_records(
        tmp_path / "data.tfrecord",
        [
            _example({"label": [1], "b": [20], "a": [10]}),
            _example({"a": [11], "b": [21], "label": [0]}),
        ],
        gzip,
    )
    rows = ingest.read_tfrecord_rows(path, COLUMNS)
    np.testing.assert_array_equal(rows, [[10, 20, 1], [11, 21, 0]])
    assert rows.dtype == np.int64


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            [_example({"a": [1], "b": [2], "label": [3]}), _example({"a": [1], "label": [3]})],
            r"record 2: the example has missing feature\(s\) b; expected exactly the features",
        ),
        (
            [_example({"a": [1], "b": [2], "label": [3], "c": [4]})],
            r"record 1: the example has unexpected feature\(s\) c",
        ),
        (
            [_example({"a": [1], "b": [2.5], "label": [3]})],
            r"record 1, feature 'b': expected one integer \(int64_list with one value\), "
            r"found 1 value\(s\) in a float_list \[2\.5\]",
        ),
        (
            [_example({"a": [1], "b": [b"x"], "label": [3]})],
            r"record 1, feature 'b': expected one integer .*found 1 value\(s\) in a bytes_list",
        ),
        (
            [_example({"a": [1, 2], "b": [2], "label": [3]})],
            r"record 1, feature 'a': expected one integer .*found 2 value\(s\) in a int64_list",
        ),
        (
            [_example({"a": [], "b": [2], "label": [3]})],
            r"record 1, feature 'a': expected one integer .*found 0 value\(s\)",
        ),
        # A length-delimited field that claims 5 bytes and holds 2.
        ([b"\x0a\x05ab"], r"record 1: expected a serialized tf\.Example, found 4 bytes"),
        ([], r"the file holds no records; expected at least one"),
    ],
    ids=[
        "missing",
        "unexpected",
        "float",
        "text",
        "two_values",
        "no_value",
        "not_example",
        "empty",
    ],
)
def test_malformed_tfrecords_name_the_record_and_the_problem(tmp_path, records, message):
    path = _write_records(tmp_path / "data.tfrecord.gz", records, gzip=True)
    with pytest.raises(ingest.IngestError, match=message) as error:
        ingest.read_tfrecord_rows(path, COLUMNS)
    assert str(error.value).startswith(path)


def test_a_file_that_is_not_tfrecord_or_is_truncated_is_refused(tmp_path):
    text = _write(tmp_path / "text.tfrecord", "a,b,label\n1,2,3\n")
    with pytest.raises(ingest.IngestError, match=r"text\.tfrecord, record 1: expected a TFRecord"):
        ingest.read_tfrecord_rows(text, COLUMNS)
    records = [_example({"a": [index], "b": [2], "label": [3]}) for index in range(50)]
    whole = _write_records(tmp_path / "whole.tfrecord", records, gzip=False)
    with open(whole, "rb") as handle:
        content = handle.read()
    cut = _write(tmp_path / "cut.tfrecord", content[: len(content) - 7])
    with pytest.raises(ingest.IngestError, match=r"cut\.tfrecord, record 50: expected a TFRecord"):
        ingest.read_tfrecord_rows(cut, COLUMNS)


def test_a_folder_of_csv_and_tfrecord_files_becomes_one_span(tmp_path):
    (tmp_path / "in").mkdir()
    _write(tmp_path / "in" / "1.csv", "a,b,label\n1,2,3\n")
    _write_records(
        tmp_path / "in" / "2.tfrecord.gz", [_example({"a": [4], "b": [5], "label": [6]})], gzip=True
    )
    span = ingest.add_span(str(tmp_path / "in"), str(tmp_path / "data"), COLUMNS, _write_span)
    np.testing.assert_array_equal(
        np.loadtxt(os.path.join(span.path, "train", "rows.csv"), delimiter=","),
        [[1, 2, 3], [4, 5, 6]],
    )
    assert len(ingest.read_source(str(tmp_path / "data"), 0)["files"]) == 2


def test_add_span_numbers_spans_and_records_their_source(tmp_path):
    data_dir = str(tmp_path / "data")
    source = _write(tmp_path / "data.csv", "a,b,label\n1,2,3\n4,5,6\n")
    first = ingest.add_span(source, data_dir, COLUMNS, _write_span)
    assert (first.number, first.rows, first.added) == (0, 2, True)
    assert first.path == os.path.join(data_dir, "span-0")
    np.testing.assert_array_equal(
        np.loadtxt(os.path.join(first.path, "train", "rows.csv"), delimiter=","),
        [[1, 2, 3], [4, 5, 6]],
    )
    assert ingest.read_source(data_dir, 0)["files"] == [os.path.abspath(source)]

    again = ingest.add_span(source, data_dir, COLUMNS, _write_span)
    assert (again.number, again.added) == (0, False)

    _write(tmp_path / "data.csv", "a,b,label\n7,8,9\n")
    second = ingest.add_span(source, data_dir, COLUMNS, _write_span)
    assert (second.number, second.added) == (1, True)
    assert ingest.span_numbers(data_dir) == [0, 1]


def test_a_bad_file_in_a_folder_adds_nothing(tmp_path):
    data_dir = tmp_path / "data"
    (tmp_path / "in").mkdir()
    ingest.add_span(
        _write(tmp_path / "first.csv", "a,b,label\n1,2,3\n"), str(data_dir), COLUMNS, _write_span
    )
    before = snapshot(data_dir)
    _write(tmp_path / "in" / "1.csv", "a,b,label\n1,2,3\n")
    _write(tmp_path / "in" / "2.csv", "a,b,label\n1,2\n")
    with pytest.raises(ingest.IngestError, match=r"2\.csv, line 2"):
        ingest.add_span(str(tmp_path / "in"), str(data_dir), COLUMNS, _write_span)
    assert snapshot(data_dir) == before
    assert sorted(os.listdir(data_dir)) == ["span-0"]


def test_a_failing_write_leaves_no_span_and_no_staging(tmp_path):
    data_dir = tmp_path / "data"

    def failing_write(rows, folder):
        os.makedirs(folder)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        ingest.add_span(
            _write(tmp_path / "x.csv", "a,b,label\n1,2,3\n"), str(data_dir), COLUMNS, failing_write
        )
    assert os.listdir(data_dir) == []


def test_digits_rows_become_a_span_with_the_three_splits(tmp_path):
    pixels, labels = digits.load_digits_arrays()
    path = str(tmp_path / "digits.csv")
    digits.write_csv(path, pixels[:200], labels[:200])
    span = ingest.add_span(
        path,
        str(tmp_path / "data"),
        (*digits.PIXEL_KEYS, digits.LABEL_KEY),
        lambda rows, folder: digits.write_splits(folder, arrays=(rows[:, :-1], rows[:, -1])),
    )
    counts = {
        name: len(digits.read_csv(os.path.join(span.path, name, "digits.csv"))[1])
        for name in digits.SPLIT_NAMES
    }
    assert sum(counts.values()) == 200
    assert counts["train"] > counts["eval"] > 0
    with open(os.path.join(span.path, ingest.SOURCE_FILE)) as handle:
        assert json.load(handle)["rows"] == 200
