"""The Great Expectations suite and the GxValidator's executor, on small frames."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components.anomaly_gate.executor import DataValidationError
from components.gx_validator import executor
from components.gx_validator.suite import SuiteRules, build_suite
from pipelines import catalog, validate
from tests import fixtures

COLUMNS = list(validate.COLUMNS)


def _frame(num_rows: int, seed: int = 0) -> pd.DataFrame:
    pixels, labels = fixtures.sample_arrays(num_rows, seed)
    return pd.DataFrame(np.column_stack([pixels, labels]), columns=COLUMNS)


def _suite_for(columns) -> dict:
    """The stored suite cut down to the table-level expectations and those of `columns`: GX
    spends ~20 ms per expectation and split, whatever the data."""
    suite = validate.load_suite()
    return {
        **suite,
        "expectations": [
            item
            for item in suite["expectations"]
            if item["kwargs"].get("column", columns[0]) in columns
        ],
    }


@pytest.mark.parametrize("pipeline", sorted(validate.SUITE_RULES))
def test_the_stored_suite_is_the_one_derived_from_the_schema(pipeline):
    derived = validate.derive_suite(pipeline)
    path = catalog.get_pipeline(pipeline).suite_file
    if os.environ.get("DLFORGE_UPDATE_GOLDEN"):
        with open(path, "w") as handle:
            json.dump(derived, handle, indent=1, sort_keys=True)
            handle.write("\n")
    assert validate.load_suite(path) == derived


def test_every_pipeline_that_reads_data_has_suite_rules():
    reading = [name for name, entry in catalog.PIPELINES.items() if entry.data_module]
    # A pipeline that models another's data set (generative: digits) reads that one's suite.
    own = [name for name in reading if not catalog.get_pipeline(name).data_of]
    assert sorted(own) == sorted(validate.SUITE_RULES)
    for name in set(reading) - set(own):
        data_of = catalog.get_pipeline(catalog.get_pipeline(name).data_of)
        assert catalog.get_pipeline(name).suite_file == data_of.suite_file
        assert catalog.get_pipeline(name).data_module == data_of.data_module


def test_the_suite_holds_the_domain_rules():
    suite = validate.load_suite()
    by_type = {}
    for item in suite["expectations"]:
        by_type.setdefault(item["type"], []).append(item["kwargs"])
    (columns,) = by_type["expect_table_columns_to_match_set"]
    assert columns["column_set"] == [*validate.COLUMNS[64:], *validate.COLUMNS[:64]]
    assert columns["exact_match"] is True
    ranges = {kwargs["column"]: kwargs for kwargs in by_type["expect_column_values_to_be_between"]}
    assert sorted(ranges) == sorted(validate.COLUMNS[:64])
    assert {(kwargs["min_value"], kwargs["max_value"]) for kwargs in ranges.values()} == {(0, 16)}
    assert len(by_type["expect_column_values_to_not_be_null"]) == 65
    (labels,) = by_type["expect_column_values_to_be_in_set"]
    assert labels == {"column": "label", "value_set": list(range(10))}
    (rows,) = by_type["expect_table_row_count_to_be_between"]
    assert (rows["min_value"], rows["max_value"]) == (100, 1_000_000)
    (divergence,) = by_type["expect_column_kl_divergence_to_be_less_than"]
    assert divergence["threshold"] == 0.1


def test_build_suite_refuses_what_it_cannot_express():
    schema = schema_pb2.Schema()
    schema.feature.add(name="mask", type=schema_pb2.STRUCT)
    rules = validate.SUITE_RULES["digits"]
    with pytest.raises(ValueError, match="Expected the label 'label' to be a categorical"):
        build_suite(schema, rules, "x")
    label = schema.feature.add(name="label", type=schema_pb2.INT)
    label.int_domain.is_categorical = True
    with pytest.raises(ValueError, match="feature 'mask' of type STRUCT"):
        build_suite(schema, rules, "x")
    schema.feature.add(name="weight", type=schema_pb2.FLOAT)
    with pytest.raises(ValueError, match="feature 'mask' of type STRUCT"):
        build_suite(schema, rules, "x")
    del schema.feature[0]
    with pytest.raises(ValueError, match="feature 'weight' of type FLOAT without a domain"):
        build_suite(schema, rules, "x")


def test_strings_get_a_type_check_floats_a_range_and_a_regression_label_no_divergence():
    schema = schema_pb2.Schema()
    schema.feature.add(name="text", type=schema_pb2.BYTES).presence.min_fraction = 1.0
    target = schema.feature.add(name="target", type=schema_pb2.FLOAT)
    target.float_domain.min, target.float_domain.max = 300.0, 450.0
    rules = SuiteRules(
        min_rows=1,
        max_rows=10,
        max_duplicate_fraction=0.0,
        label="target",
        max_label_divergence=None,
    )

    expectations = build_suite(schema, rules, "x")["expectations"]

    kinds = [(item["type"], item["kwargs"].get("column")) for item in expectations]
    assert ("expect_column_values_to_not_be_null", "text") in kinds
    assert ("expect_column_values_to_not_be_null", "target") not in kinds
    assert "expect_column_kl_divergence_to_be_less_than" not in {kind for kind, _ in kinds}
    by_kind = {
        (item["type"], item["kwargs"].get("column")): item["kwargs"] for item in expectations
    }
    assert by_kind[("expect_column_values_to_be_in_type_list", "text")]["type_list"] == ["str"]
    assert by_kind[("expect_column_values_to_be_between", "target")] == {
        "column": "target",
        "min_value": 300.0,
        "max_value": 450.0,
    }
    with pytest.raises(ValueError, match="min_rows <= max_rows"):
        SuiteRules(
            min_rows=10, max_rows=5, max_duplicate_fraction=0, label="l", max_label_divergence=1
        )


def test_each_corruption_fails_with_its_feature_and_reason(tmp_path):
    clean = _frame(150)
    nulls = clean.astype({"pixel_05": "float64"})
    nulls.loc[[3, 7], "pixel_05"] = np.nan
    text = clean.astype({"pixel_09": object})
    text.loc[4, "pixel_09"] = "x"
    columns = clean.drop(columns=["pixel_10"]).assign(extra=1)
    out_of_range = clean.copy()
    out_of_range.loc[0, "pixel_17"] = 99
    unknown_label = clean.copy()
    unknown_label.loc[1, "label"] = 12
    collapsed = clean.assign(label=3)
    flood = pd.concat([clean] + [clean.iloc[[0]]] * 12, ignore_index=True)
    frames = {
        "clean": clean,
        "nulls": nulls,
        "text": text,
        "columns": columns,
        "range": out_of_range,
        "vocabulary": unknown_label,
        "collapsed": collapsed,
        "flood": flood,
        "empty": pd.DataFrame(),
    }
    suite = _suite_for(["pixel_05", "pixel_09", "pixel_17", "label"])
    findings, results = executor.validate_splits(frames, suite, str(tmp_path))
    found = {}
    for item in findings:
        found.setdefault(item.split, set()).add((item.feature, item.anomaly))
    assert "clean" not in found
    assert results["clean"]["success"] is True
    assert found["nulls"] == {("pixel_05", "missing values"), ("pixel_05", "wrong type")}
    assert ("pixel_09", "wrong type") in found["text"]
    assert found["columns"] == {("<dataset>", "wrong columns")}
    assert found["range"] == {("pixel_17", "values out of range")}
    # A value outside the uniform partition also makes the divergence infinite.
    assert found["vocabulary"] == {
        ("label", "values outside the vocabulary"),
        ("label", "degenerate distribution"),
    }
    assert found["collapsed"] == {("label", "degenerate distribution")}
    assert found["flood"] == {("<dataset>", "duplicated rows")}
    assert found["empty"] == {("<dataset>", "row count out of bounds")}
    described = {(item.split, item.feature, item.anomaly): item.description for item in findings}
    assert described[("range", "pixel_17", "values out of range")] == (
        "1 value(s) outside 0..16, e.g. 99"
    )
    assert described[("vocabulary", "label", "values outside the vocabulary")] == (
        "1 value(s) not in 0..9, e.g. 12"
    )
    assert described[("nulls", "pixel_05", "missing values")].startswith("2 empty value(s)")
    assert described[("columns", "<dataset>", "wrong columns")] == (
        "missing column(s) pixel_10; unexpected column(s) extra"
    )
    assert described[("empty", "<dataset>", "row count out of bounds")] == (
        "0 rows, expected 100..1000000"
    )
    assert (
        "the most common value holds 100% of rows"
        in (described[("collapsed", "label", "degenerate distribution")])
    )
    with open(tmp_path / executor.RESULTS_FILE) as handle:
        assert json.load(handle)["range"]["success"] is False
    docs = tmp_path / executor.DOCS_DIR
    assert (docs / "index.html").exists()
    assert len(list(docs.glob("validations/**/*.html"))) == len(frames)


def _write_examples(path, rows: list[dict]) -> None:
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            feature = {}
            for name, values in row.items():
                if isinstance(values[0] if values else 0, float):
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
                else:
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )


def test_read_examples_keeps_what_each_example_holds(tmp_path):
    _write_examples(
        tmp_path / "data.gz",
        [{"a": [1], "b": [2.5]}, {"a": [], "b": [1.0, 2.0]}, {"a": [3]}],
    )
    frame = executor.read_examples(str(tmp_path))
    assert frame["a"].tolist()[0] == 1 and frame["a"].tolist()[2] == 3
    assert pd.isna(frame["a"].tolist()[1])
    assert frame["b"].tolist()[:2] == [2.5, (1.0, 2.0)]
    with pytest.raises(FileNotFoundError, match="Expected TFRecord files"):
        executor.read_examples(str(tmp_path / "missing"))


def test_run_validator_writes_its_report_and_fails_on_a_broken_split(tmp_path):
    clean = _frame(120, seed=1)
    broken = clean.copy()
    broken.loc[0, "pixel_40"] = 17
    split_dirs = {}
    for split, frame in (("train", clean), ("eval", broken)):
        split_dirs[split] = str(tmp_path / f"Split-{split}")
        os.makedirs(split_dirs[split])
        _write_examples(
            os.path.join(split_dirs[split], "data.gz"),
            [{name: [int(value)] for name, value in row.items()} for _, row in frame.iterrows()],
        )
    output = tmp_path / "out"
    with pytest.raises(DataValidationError) as error:
        executor.run_validator(split_dirs, _suite_for(["pixel_40", "label"]), str(output))
    message = str(error.value)
    assert "split 'eval', feature 'pixel_40': values out of range (1 value(s) outside" in message
    assert "split 'train'" not in message
    with open(output / executor.REPORT_FILE) as handle:
        report = json.load(handle)
    assert report["passed"] is False
    assert report["rows"] == {"train": 120, "eval": 120}
    assert (output / executor.DOCS_DIR / "index.html").exists()
