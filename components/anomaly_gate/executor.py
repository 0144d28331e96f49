"""Reads ExampleValidator's anomalies and turns any of them into a failed gate.

Paths may be local folders or object-store URIs (`gs://`, `s3://`): a compiled pipeline's
artifacts live where its pipeline root is, so files are read and written through tf.io.gfile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components import storage

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
        path = storage.join(split_dirs[split], ANOMALIES_FILE)
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


def markdown_cell(text: str) -> str:
    """Text for one cell of a Markdown table: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-flavoured Markdown table (the dialect KFP's console renders)."""
    lines = [
        "| " + " | ".join(markdown_cell(header) for header in headers) + " |",
        "|" + "---|" * len(headers),
    ]
    lines.extend("| " + " | ".join(markdown_cell(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


def findings_markdown(title: str, passed: bool, findings: Sequence[Finding], intro: str) -> str:
    """A gate's verdict as Markdown: a heading, one line of context and a table of findings."""
    verdict = "passed" if passed else f"failed: {len(findings)} finding(s)"
    text = f"## {title}: {verdict}\n\n{intro}\n"
    if findings:
        text += "\n" + markdown_table(
            ("split", "feature", "check", "what was found"),
            [(item.split, item.feature, item.anomaly, item.description) for item in findings],
        )
    return text


def run_gate(
    split_dirs: Mapping[str, str], report_dir: str, summary_path: str | None = None
) -> None:
    """Writes the gate report (and its Markdown summary), then fails when the data has
    anomalies.

    Args:
        split_dirs: Split name -> folder of ExampleValidator's anomalies for it.
        report_dir: Where `report.json` goes (the gate's output artifact).
        summary_path: Where the Markdown summary goes (a file), if anywhere.

    Raises:
        DataValidationError: If any split has an anomaly; the message names each feature and
            anomaly.
    """
    findings = read_findings(split_dirs)
    storage.write_json(
        storage.join(report_dir, REPORT_FILE),
        {"passed": not findings, "findings": [asdict(item) for item in findings]},
    )
    if summary_path:
        storage.write_text(
            summary_path,
            findings_markdown(
                "Schema anomalies (TFDV ExampleValidator)",
                not findings,
                findings,
                f"Splits checked against the schema: {', '.join(sorted(split_dirs))}.",
            ),
        )
    if findings:
        raise DataValidationError(
            f"Data validation failed: {len(findings)} anomal"
            f"{'y' if len(findings) == 1 else 'ies'} against the schema; the run stops "
            f"before training.\n{describe(findings)}"
        )
