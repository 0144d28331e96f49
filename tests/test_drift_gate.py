"""The DriftGate's executor: the schema's comparators on statistics of small frames."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv

from components.anomaly_gate.executor import DataValidationError
from components.drift_gate import executor
from pipelines import validate

COLUMNS = list(validate.COLUMNS)


@pytest.fixture(scope="module")
def schema():
    return executor.load_schema(validate.SCHEMA_FILE)


@pytest.fixture(scope="module")
def splits():
    from models.data import digits

    pixels, labels = digits.load_digits_arrays()
    return validate.split_rows(np.column_stack([pixels, labels]), seed=0)


def _statistics(rows, schema):
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return tfdv.generate_statistics_from_dataframe(
        frame, stats_options=tfdv.StatsOptions(schema=schema)
    )


def _write(statistics, folder) -> str:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, executor.STATS_FILE), "wb") as handle:
        handle.write(statistics.SerializeToString())
    return str(folder)


def test_the_schema_has_comparators_for_the_label_and_the_dense_pixels(schema):
    features = {feature.name: feature for feature in schema.feature}
    assert features["label"].drift_comparator.infinity_norm.threshold == pytest.approx(0.08)
    assert features["label"].skew_comparator.infinity_norm.threshold == pytest.approx(0.12)
    dense = [name for name, item in features.items() if item.HasField("drift_comparator")]
    assert len(dense) == 45 and "pixel_20" in dense and "pixel_00" not in dense
    assert features["pixel_20"].drift_comparator.jensen_shannon_divergence.threshold == 0.1


def test_clean_splits_of_the_embedded_data_pass(schema, splits):
    train = _statistics(splits["train"], schema)
    measurements = executor.measure(
        train,
        schema,
        previous=_statistics(
            validate.split_rows(np.concatenate(list(splits.values())), 7)["train"], schema
        ),
        others={split: _statistics(splits[split], schema) for split in ("eval", "test")},
    )
    assert {item.comparison for item in measurements} == {"drift", "skew"}
    assert len(measurements) == 45 * 3
    assert executor.findings(measurements, "the previous span") == []


def test_a_shifted_pixel_and_a_collapsed_label_are_named(schema, splits):
    previous = _statistics(splits["train"], schema)
    drifted = splits["train"].copy()
    drifted[:, 20] = np.minimum(16, drifted[:, 20] + 3)
    drifted[drifted[:, -1] == 1, -1] = 7
    measurements = executor.measure(_statistics(drifted, schema), schema, previous=previous)
    failures = executor.findings(measurements, "the previous span")
    by_feature = {item.feature: item for item in failures}
    assert sorted(by_feature) == ["label", "pixel_20"]
    assert by_feature["pixel_20"].anomaly == "drift from the previous span"
    assert by_feature["pixel_20"].description.startswith("Jensen-Shannon divergence 0.")
    assert "above the schema's threshold 0.1" in by_feature["pixel_20"].description
    assert by_feature["label"].description.startswith("L-infinity distance 0.1")


def test_run_gate_keeps_passing_statistics_as_the_next_baseline(schema, splits, tmp_path):
    dirs = {
        split: _write(_statistics(rows, schema), tmp_path / "stats" / f"Split-{split}")
        for split, rows in splits.items()
    }
    executor.run_gate(
        dirs, validate.SCHEMA_FILE, None, str(tmp_path / "report"), str(tmp_path / "accepted")
    )
    with open(tmp_path / "report" / executor.REPORT_FILE) as handle:
        report = json.load(handle)
    assert report["passed"] is True and report["drift_measured"] is False
    accepted = tmp_path / "accepted" / "Split-train" / executor.STATS_FILE
    with (
        open(accepted, "rb") as handle,
        open(os.path.join(dirs["train"], executor.STATS_FILE), "rb") as original,
    ):
        assert handle.read() == original.read()

    skewed = splits["test"].copy()
    skewed[:, 36] = 16
    dirs["test"] = _write(_statistics(skewed, schema), tmp_path / "skewed" / "Split-test")
    with pytest.raises(DataValidationError) as error:
        executor.run_gate(
            dirs,
            validate.SCHEMA_FILE,
            str(accepted.parent),
            str(tmp_path / "report2"),
            str(tmp_path / "accepted2"),
        )
    assert "split 'test', feature 'pixel_36': skew between the train and test splits" in str(
        error.value
    )
    assert not (tmp_path / "accepted2").exists()
    with open(tmp_path / "report2" / executor.REPORT_FILE) as handle:
        report = json.load(handle)
    assert report["passed"] is False and report["drift_measured"] is True


def test_run_gate_needs_a_train_split(tmp_path):
    with pytest.raises(ValueError, match="Expected statistics of a 'train' split"):
        executor.run_gate({"eval": str(tmp_path)}, validate.SCHEMA_FILE, None, "r", "a")
