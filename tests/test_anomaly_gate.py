"""Tests of the anomaly gate: reading ExampleValidator's anomalies and failing the run on them.

Each test writes real tensorflow_metadata `Anomalies` protos to `<split_dir>/SchemaDiff.pb`, as
ExampleValidator does.
"""

import json

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.anomaly_gate import executor

AnomalyInfo = anomalies_pb2.AnomalyInfo


def _write_anomalies(split_dir, anomalies: anomalies_pb2.Anomalies) -> str:
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "SchemaDiff.pb").write_bytes(anomalies.SerializeToString())
    return str(split_dir)


def _clean_splits(tmp_path) -> dict[str, str]:
    return {
        name: _write_anomalies(tmp_path / "anomalies" / f"Split-{name}", anomalies_pb2.Anomalies())
        for name in ("train", "eval")
    }


def _big_int_anomaly() -> AnomalyInfo:
    return AnomalyInfo(
        severity=AnomalyInfo.ERROR,
        short_description="Out-of-range values",
        reason=[
            AnomalyInfo.Reason(
                type=AnomalyInfo.INT_TYPE_BIG_INT,
                short_description="Out-of-range values",
                description="Unexpectedly large value: 99.",
            )
        ],
    )


def _splits_with_eval_anomaly(tmp_path) -> dict[str, str]:
    splits = _clean_splits(tmp_path)
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["pixel_03"].CopyFrom(_big_int_anomaly())
    splits["eval"] = _write_anomalies(tmp_path / "anomalies" / "Split-eval", anomalies)
    return splits


def _read_report(report_dir) -> dict:
    return json.loads((report_dir / "report.json").read_text())


def test_read_findings_of_clean_splits_is_empty(tmp_path):
    assert executor.read_findings(_clean_splits(tmp_path)) == []


def test_run_gate_on_clean_splits_passes_and_reports_passed(tmp_path):
    report_dir = tmp_path / "report"

    executor.run_gate(_clean_splits(tmp_path), str(report_dir))

    assert _read_report(report_dir) == {"passed": True, "findings": []}


def test_read_findings_returns_the_anomaly_of_one_split(tmp_path):
    findings = executor.read_findings(_splits_with_eval_anomaly(tmp_path))

    assert findings == [
        executor.Finding(
            split="eval",
            feature="pixel_03",
            anomaly="Out-of-range values",
            description="Unexpectedly large value: 99.",
        )
    ]


def test_run_gate_with_an_anomaly_raises_naming_split_feature_and_anomaly(tmp_path):
    with pytest.raises(executor.DataValidationError) as raised:
        executor.run_gate(_splits_with_eval_anomaly(tmp_path), str(tmp_path / "report"))

    message = str(raised.value)
    assert "'eval'" in message
    assert "'pixel_03'" in message
    assert "Out-of-range values" in message


def test_run_gate_with_an_anomaly_reports_the_finding_and_passed_false(tmp_path):
    report_dir = tmp_path / "report"

    with pytest.raises(executor.DataValidationError):
        executor.run_gate(_splits_with_eval_anomaly(tmp_path), str(report_dir))

    assert _read_report(report_dir) == {
        "passed": False,
        "findings": [
            {
                "split": "eval",
                "feature": "pixel_03",
                "anomaly": "Out-of-range values",
                "description": "Unexpectedly large value: 99.",
            }
        ],
    }


def test_read_findings_reports_a_dataset_anomaly_as_feature_dataset(tmp_path):
    anomalies = anomalies_pb2.Anomalies()
    anomalies.dataset_anomaly_info.CopyFrom(
        AnomalyInfo(
            reason=[
                AnomalyInfo.Reason(
                    type=AnomalyInfo.DATASET_LOW_NUM_EXAMPLES,
                    short_description="Low num examples in dataset.",
                    description="The dataset has 3 examples.",
                )
            ]
        )
    )
    splits = {"train": _write_anomalies(tmp_path / "Split-train", anomalies)}

    findings = executor.read_findings(splits)

    assert [(item.split, item.feature, item.anomaly) for item in findings] == [
        ("train", "<dataset>", "Low num examples in dataset.")
    ]


def test_read_findings_names_the_reason_type_when_it_has_no_short_description(tmp_path):
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["label"].reason.add(type=AnomalyInfo.INT_TYPE_BIG_INT)
    splits = {"train": _write_anomalies(tmp_path / "Split-train", anomalies)}

    assert [item.anomaly for item in executor.read_findings(splits)] == ["INT_TYPE_BIG_INT"]


def test_read_findings_lists_one_finding_per_reason_in_split_and_feature_order(tmp_path):
    second_split = anomalies_pb2.Anomalies()
    second_split.anomaly_info["pixel_10"].CopyFrom(_big_int_anomaly())
    first_split = anomalies_pb2.Anomalies()
    first_split.anomaly_info["pixel_20"].CopyFrom(_big_int_anomaly())
    first_split.anomaly_info["pixel_05"].reason.add(short_description="Missing values")
    first_split.anomaly_info["pixel_05"].reason.add(short_description="Wrong type")
    splits = {
        "train": _write_anomalies(tmp_path / "Split-train", second_split),
        "eval": _write_anomalies(tmp_path / "Split-eval", first_split),
    }

    findings = executor.read_findings(splits)

    assert [(item.split, item.feature, item.anomaly) for item in findings] == [
        ("eval", "pixel_05", "Missing values"),
        ("eval", "pixel_05", "Wrong type"),
        ("eval", "pixel_20", "Out-of-range values"),
        ("train", "pixel_10", "Out-of-range values"),
    ]


def test_read_findings_without_anomalies_file_raises_naming_the_split_and_path(tmp_path):
    empty_dir = tmp_path / "validator-output"
    empty_dir.mkdir()

    with pytest.raises(FileNotFoundError) as raised:
        executor.read_findings({"train": str(empty_dir)})

    assert "split 'train'" in str(raised.value)
    assert str(empty_dir / "SchemaDiff.pb") in str(raised.value)


# A compiled pipeline keeps its artifacts on an object store. TensorFlow's in-memory `ram://`
# file system is such a store here: reached only through tf.io.gfile, with no os-level folders.
def _write_anomalies_at(uri: str, anomalies: anomalies_pb2.Anomalies) -> str:
    tf.io.gfile.makedirs(uri)
    with tf.io.gfile.GFile(f"{uri}/SchemaDiff.pb", "wb") as handle:
        handle.write(anomalies.SerializeToString())
    return uri


@pytest.fixture
def store_uri(request) -> str:
    uri = f"ram://anomaly_gate/{request.node.name}"
    yield uri
    for directory, _, names in tf.io.gfile.walk(uri):
        for name in names:
            tf.io.gfile.remove(f"{directory}/{name}")


def test_run_gate_reads_and_reports_on_an_object_store(store_uri):
    splits = {
        name: _write_anomalies_at(f"{store_uri}/anomalies/Split-{name}", anomalies_pb2.Anomalies())
        for name in ("train", "eval")
    }

    executor.run_gate(splits, f"{store_uri}/report")

    with tf.io.gfile.GFile(f"{store_uri}/report/report.json") as handle:
        assert json.load(handle) == {"passed": True, "findings": []}


def test_run_gate_on_an_object_store_fails_on_an_anomaly_after_writing_the_report(store_uri):
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["pixel_17"].CopyFrom(_big_int_anomaly())
    splits = {"train": _write_anomalies_at(f"{store_uri}/anomalies/Split-train", anomalies)}

    with pytest.raises(executor.DataValidationError, match="'pixel_17': Out-of-range values"):
        executor.run_gate(splits, f"{store_uri}/report")

    with tf.io.gfile.GFile(f"{store_uri}/report/report.json") as handle:
        report = json.load(handle)
    assert report["passed"] is False
    assert [item["feature"] for item in report["findings"]] == ["pixel_17"]


def test_read_findings_names_a_missing_anomalies_file_on_an_object_store(store_uri):
    tf.io.gfile.makedirs(f"{store_uri}/Split-train")

    with pytest.raises(FileNotFoundError, match=f"{store_uri}/Split-train/SchemaDiff.pb"):
        executor.read_findings({"train": f"{store_uri}/Split-train"})
