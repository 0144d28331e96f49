"""Reads ExampleValidator's anomalies and turns any of them into a failed gate.

Paths may be local folders or object-store URIs (`gs://`, `s3://`): a compiled pipeline's
artifacts live where its pipeline root is, so files are read and written through tf.io.gfile.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2

from models.files import write_json_atomically

ANOMALIES_FILE = "SchemaDiff.pb"
REPORT_FILE = "report.json"


class DataValidationError(RuntimeError):
    """The data broke the schema; the run stops before training."""


@dataclass(frozen=True)
class Finding:
    """One anomaly of one feature (or of the whole data set) in one split."""

    split: str
    feature: str
    anomaly: str
    description: str


def read_findings(split_dirs: Mapping[str, str]) -> list[Finding]:
    """Reads the anomalies ExampleValidator wrote for each split.

    Args:
        split_dirs: Split name -> the folder holding that split's `SchemaDiff.pb`.

    Returns:
        Every anomaly found, in split and feature order; empty when the data is clean.

    Raises:
        FileNotFoundError: If a split's anomalies file is missing.
    """
    findings = []
    for split in sorted(split_dirs):
        path = _join(split_dirs[split], ANOMALIES_FILE)
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(
                f"Expected ExampleValidator's anomalies for split {split!r} at {path}, "
                "found no file."
            )
        anomalies = anomalies_pb2.Anomalies()
        with tf.io.gfile.GFile(path, "rb") as handle:
            anomalies.ParseFromString(handle.read())
        for feature in sorted(anomalies.anomaly_info):
            findings.extend(_findings(split, feature, anomalies.anomaly_info[feature]))
        if anomalies.HasField("dataset_anomaly_info"):
            findings.extend(_findings(split, "<dataset>", anomalies.dataset_anomaly_info))
        if anomalies.data_missing:
            findings.append(Finding(split, "<dataset>", "No data", "the split has no examples"))
    return findings


def _findings(split: str, feature: str, info) -> list[Finding]:
    if not info.reason:
        return [Finding(split, feature, info.short_description or "Anomaly", info.description)]
    return [
        Finding(
            split=split,
            feature=feature,
            anomaly=reason.short_description or anomalies_pb2.AnomalyInfo.Type.Name(reason.type),
            description=reason.description,
        )
        for reason in info.reason
    ]


def describe(findings: list[Finding]) -> str:
    """One line per finding: split, feature, anomaly and what TFDV saw."""
    return "\n".join(
        f"  split {item.split!r}, feature {item.feature!r}: {item.anomaly}"
        + (f" ({item.description})" if item.description else "")
        for item in findings
    )


def run_gate(split_dirs: Mapping[str, str], report_dir: str) -> None:
    """Writes the gate report, then fails when the data has anomalies.

    Args:
        split_dirs: Split name -> folder of ExampleValidator's anomalies for it.
        report_dir: Where `report.json` goes (the gate's output artifact).

    Raises:
        DataValidationError: If any split has an anomaly; the message names each feature and
            anomaly.
    """
    findings = read_findings(split_dirs)
    _write_report(
        report_dir, {"passed": not findings, "findings": [asdict(item) for item in findings]}
    )
    if findings:
        raise DataValidationError(
            f"Data validation failed: {len(findings)} anomal"
            f"{'y' if len(findings) == 1 else 'ies'} against the schema; the run stops "
            f"before training.\n{describe(findings)}"
        )


def _join(folder: str, name: str) -> str:
    return posixpath.join(folder, name) if "://" in folder else os.path.join(folder, name)


def _write_report(report_dir: str, report: Mapping[str, Any]) -> None:
    if "://" not in report_dir:
        os.makedirs(report_dir, exist_ok=True)
        write_json_atomically(os.path.join(report_dir, REPORT_FILE), report)
        return
    # An object store makes an object visible only once its upload is complete: no temp name.
    tf.io.gfile.makedirs(report_dir)
    with tf.io.gfile.GFile(_join(report_dir, REPORT_FILE), "w") as handle:
        handle.write(json.dumps(report, indent=1, sort_keys=True) + "\n")
