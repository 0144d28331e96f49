"""`dlforge validate`: a run's data gates on a user's files, without a run.

The same checks as the pipeline, through the same functions its components use: the file
checks of `--data`, the curated TFDV schema (ExampleValidator + AnomalyGate), the Great
Expectations suite (GxValidator), and drift and skew with the schema's comparators (DriftGate).
The drift baseline is the train split statistics of the data that the latest blessed model of
the home was trained on, found through ML Metadata. Only a temporary folder is written (the GX
results and Data Docs, and the schema anomalies). The files are checked before TensorFlow is
imported, so a malformed one is reported at once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from components.gx_validator.suite import SuiteRules, build_suite
from models.data import digits, ingest
from pipelines import catalog, metadata

if TYPE_CHECKING:  # The executors import TensorFlow: only once the files were read.
    from components.anomaly_gate.executor import Finding

SCHEMA_FILE = catalog.get_pipeline("digits").schema_file
SUITE_FILE = catalog.get_pipeline("digits").suite_file
# The domain rules of each pipeline's data beside its schema. Digits: 100 rows per split keep
# the noise of the drift and skew statistics below the comparators' thresholds (the embedded
# data has 270 in its smallest split); digits has no exact duplicate rows, so 5% of them is a
# flood; its ten classes are balanced (KL divergence from uniform 0.0001), and 0.1 nats is about
# one class in three missing.
SUITE_RULES = {
    "digits": SuiteRules(
        min_rows=100,
        max_rows=1_000_000,
        max_duplicate_fraction=0.05,
        label=digits.LABEL_KEY,
        max_label_divergence=0.1,
    ),
    # co2: the chronological eval and test splits hold ~290 weekly windows; windows of a
    # series never repeat, so 1% repeated rows means rows copied in; the target is a
    # measurement, not a category.
    # text: ~290 passages in the eval and test splits; the chapters are unequal by nature (KL
    # divergence of the embedded labels from uniform 0.13 nats), so 0.3 nats is a collapse.
    "text": SuiteRules(
        min_rows=100,
        max_rows=1_000_000,
        max_duplicate_fraction=0.05,
        label="label",
        max_label_divergence=0.3,
    ),
    "co2": SuiteRules(
        min_rows=100,
        max_rows=1_000_000,
        max_duplicate_fraction=0.01,
        label="co2",
        max_label_divergence=None,
    ),
}
COLUMNS = digits.COLUMNS
SCHEMA_CHECK = "schema (TFDV)"
SUITE_CHECK = "expectations (Great Expectations)"
DRIFT_CHECK = "drift"
SKEW_CHECK = "skew"


def derive_suite(pipeline: str = "digits") -> dict:
    """A pipeline's suite as derived from its curated schema and its `SUITE_RULES`."""
    from components.drift_gate.executor import load_schema

    schema = load_schema(catalog.get_pipeline(pipeline).schema_file)
    return build_suite(schema, SUITE_RULES[pipeline], pipeline)


def load_suite(path: str = SUITE_FILE) -> dict:
    """The suite stored in the repository."""
    with open(path) as handle:
        return json.load(handle)


@dataclass(frozen=True)
class Baseline:
    """Train split statistics that drift is measured against, and what they are."""

    statistics: object  # DatasetFeatureStatisticsList
    description: str


@dataclass
class Check:
    """The outcome of one gate."""

    name: str
    findings: list[Finding] = field(default_factory=list)
    note: str = ""

    @property
    def passed(self) -> bool:
        return not self.findings


@dataclass
class Report:
    """Everything `dlforge validate` found."""

    source: str
    rows: dict[str, int]
    checks: list[Check]
    output_dir: str

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def training_statistics(metadata_path: str) -> Baseline | None:
    """The train split statistics of the data the latest blessed model was trained on.

    The model's lineage leads to the raw examples ExampleGen wrote; the statistics are those
    StatisticsGen computed from them.

    Returns:
        None when the store has no blessed model (or no statistics of its data).
    """
    from components.drift_gate.executor import TRAIN, load_statistics

    if not os.path.exists(metadata_path):
        return None
    store = metadata.open_store(metadata_path)
    # The Evaluator's blessings name the model they bless.
    blessings = [
        artifact
        for artifact in store.get_artifacts_by_type("ModelBlessing")
        if metadata.custom_property(artifact, "blessed") == 1
        and metadata.custom_property(artifact, "current_model_id") is not None
    ]
    if not blessings:
        return None
    blessing = max(blessings, key=lambda artifact: artifact.id)
    model_id = metadata.custom_property(blessing, "current_model_id")
    examples = {
        artifact.id: artifact
        for artifact in metadata.upstream_artifacts(store, model_id)
        if metadata.artifact_type_name(store, artifact) == "Examples"
    }
    candidates = []
    for event in store.get_events_by_artifact_ids(list(examples)):
        if event.type not in metadata.INPUT_EVENTS:
            continue
        outputs = metadata.output_artifacts(store, event.execution_id)
        for artifact in outputs.get("statistics", []):
            candidates.append((artifact, examples[event.artifact_id]))
    if not candidates:
        return None
    statistics, raw = max(candidates, key=lambda pair: pair[0].id)
    span = metadata.custom_property(raw, "span")
    return Baseline(
        statistics=load_statistics(os.path.join(statistics.uri, f"Split-{TRAIN}")),
        description=f"the data of the latest blessed model (model {model_id}, span {span})",
    )


def split_rows(rows: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The rows split as `--data` would split them into a span."""
    indices = digits.split_indices(rows[:, -1], digits.SplitFractions(), seed)
    return {split: rows[indices[split]] for split in digits.SPLIT_NAMES}


def validate_frames(
    frames: Mapping[str, object],
    baseline: Baseline | None,
    output_dir: str,
    *,
    source: str = "",
    baseline_note: str = "",
    schema_file: str = SCHEMA_FILE,
    suite: Mapping | None = None,
    data_docs: bool = True,
) -> Report:
    """Runs every gate on the splits.

    Args:
        frames: Split name -> pandas data frame of the split's rows (must hold "train").
        baseline: The drift baseline, or None (drift is then not measured).
        output_dir: Receives the schema anomalies, GX results and Data Docs.
        source: What the rows are, for the report.
        baseline_note: Why there is no baseline, for the report.
        schema_file: The curated schema with its comparators.
        suite: The GX suite; the stored one by default.
        data_docs: Whether to render GX Data Docs (about 1.5 s per split).

    Returns:
        The report; `report.passed` is False when any check failed.
    """
    import tensorflow_data_validation as tfdv

    from components.anomaly_gate.executor import ANOMALIES_FILE, read_findings
    from components.drift_gate import executor as drift
    from components.gx_validator import executor as gx

    schema = drift.load_schema(schema_file)
    options = tfdv.StatsOptions(schema=schema)
    statistics = {
        split: tfdv.generate_statistics_from_dataframe(frame, stats_options=options)
        for split, frame in frames.items()
        if len(frame)
    }
    anomaly_dirs = {}
    for split, stats in statistics.items():
        anomaly_dirs[split] = os.path.join(output_dir, "schema", split)
        os.makedirs(anomaly_dirs[split])
        anomalies = tfdv.validate_statistics(stats, schema)
        with open(os.path.join(anomaly_dirs[split], ANOMALIES_FILE), "wb") as handle:
            handle.write(anomalies.SerializeToString())
    schema_check = Check(SCHEMA_CHECK, read_findings(anomaly_dirs))
    suite_findings, _ = gx.validate_splits(
        frames,
        suite or load_suite(),
        os.path.join(output_dir, "expectations"),
        data_docs=data_docs,
    )
    suite_check = Check(SUITE_CHECK, suite_findings)
    train = statistics.get(drift.TRAIN)
    measurements = (
        drift.measure(
            train,
            schema,
            previous=baseline.statistics if baseline else None,
            others={split: stats for split, stats in statistics.items() if split != drift.TRAIN},
        )
        if train is not None
        else []
    )
    failures = drift.findings(measurements, baseline.description if baseline else "")
    drift_check = Check(
        DRIFT_CHECK,
        [item for item in failures if item.split == drift.TRAIN],
        note=f"against {baseline.description}" if baseline else baseline_note,
    )
    skew_check = Check(
        SKEW_CHECK,
        [item for item in failures if item.split != drift.TRAIN],
        note="the train split against the eval and test splits",
    )
    return Report(
        source=source,
        rows={split: len(frame) for split, frame in frames.items()},
        checks=[schema_check, suite_check, drift_check, skew_check],
        output_dir=output_dir,
    )


def validate_path(path: str, home: str, output_dir: str, *, seed: int = 0) -> Report:
    """Validates a user's files as `dlforge run --data` would, without a run.

    Args:
        path: A data file or a folder of them.
        home: The dlforge home whose latest blessed model gives the drift baseline.
        output_dir: A temporary folder for the results.
        seed: The seed of the split into train/eval/test (the run's `data_seed`).

    Raises:
        IngestError: If a file is malformed (the run would refuse it at ingestion).
    """
    import pandas as pd

    _, rows = ingest.read_files(path, COLUMNS)
    frames = {
        split: pd.DataFrame(part, columns=list(COLUMNS))
        for split, part in split_rows(rows, seed).items()
    }
    metadata_path = os.path.join(home, "metadata.sqlite")
    baseline = training_statistics(metadata_path)
    note = "" if baseline else f"not measured: no blessed model in {home}"
    return validate_frames(frames, baseline, output_dir, source=path, baseline_note=note)


def format_report(report: Report) -> str:
    """The report in plain words: each check's verdict, then per feature what failed."""
    total = sum(report.rows.values())
    splits = ", ".join(f"{split} {count}" for split, count in report.rows.items())
    lines = [f"{report.source}: {total} rows ({splits})"]
    for check in report.checks:
        verdict = "passed" if check.passed else f"FAILED ({len(check.findings)})"
        lines.append(f"  {check.name:<36} {verdict}" + (f"  {check.note}" if check.note else ""))
    by_feature: dict[str, list[tuple[str, Finding]]] = {}
    for check in report.checks:
        for finding in check.findings:
            by_feature.setdefault(finding.feature, []).append((check.name, finding))
    for feature in sorted(by_feature):
        lines.append(f"feature {feature!r}:")
        for check_name, finding in by_feature[feature]:
            lines.append(
                f"  {check_name}, split {finding.split!r}: {finding.anomaly}"
                + (f" ({finding.description})" if finding.description else "")
            )
    failed = sum(not check.passed for check in report.checks)
    lines.append(
        f"result: {'passed' if report.passed else f'FAILED ({failed} check(s))'}; "
        f"Data Docs: {os.path.join(report.output_dir, 'expectations', 'data_docs', 'index.html')}"
    )
    return "\n".join(lines)


def run(data_path: str, home: str, *, seed: int) -> int:
    """`dlforge validate`: prints the report; returns 0 when every check passed, else 1.

    Raises:
        IngestError: If a file is malformed; nothing is left behind then.
    """
    output_dir = tempfile.mkdtemp(prefix="dlforge-validate-")
    try:
        report = validate_path(data_path, home, output_dir, seed=seed)
    except BaseException:
        shutil.rmtree(output_dir, ignore_errors=True)
        raise
    print(format_report(report))
    return 0 if report.passed else 1
