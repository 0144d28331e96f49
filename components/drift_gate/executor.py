"""Compares statistics with the schema's drift and skew comparators, and fails on either.

TFDV measures these only when asked (ExampleValidator does not): drift between the train split
of the new span and that of the previous span that passed every gate, and skew between the
train split and each other split (the data the model is judged on, standing in for serving
data). The thresholds are the schema's `drift_comparator` and `skew_comparator`:
Jensen-Shannon divergence for numeric features, L-infinity distance for categorical ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components import storage
from components.anomaly_gate.executor import (
    DataValidationError,
    Finding,
    describe,
    findings_markdown,
    markdown_table,
)

STATS_FILE = "FeatureStats.pb"
TRAIN = "train"
REPORT_FILE = "report.json"
MEASURES = {
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: (
        "Jensen-Shannon divergence"
    ),
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "L-infinity distance",
    anomalies_pb2.DriftSkewInfo.Measurement.NORMALIZED_ABSOLUTE_DIFFERENCE: (
        "normalized absolute difference"
    ),
}


@dataclass(frozen=True)
class Measurement:
    """One comparator's value for one feature."""

    feature: str
    comparison: str  # "drift" or "skew"
    split: str  # the split compared with the train split (for drift: "train")
    measure: str
    value: float
    threshold: float

    @property
    def failed(self) -> bool:
        return self.value > self.threshold


def load_statistics(split_dir: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Reads StatisticsGen's `FeatureStats.pb` of one split.

    Raises:
        FileNotFoundError: If the file is missing.
    """
    path = storage.join(split_dir, STATS_FILE)
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    statistics.ParseFromString(storage.read_bytes(path))
    return statistics


def load_schema(path: str) -> schema_pb2.Schema:
    """Reads a text-format schema file."""
    from google.protobuf import text_format

    schema = schema_pb2.Schema()
    text_format.Parse(storage.read_bytes(path).decode("utf-8"), schema)
    return schema


def _num_examples(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> int:
    return sum(dataset.num_examples for dataset in statistics.datasets)


def measure(
    train: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    *,
    previous: statistics_pb2.DatasetFeatureStatisticsList | None = None,
    others: Mapping[str, statistics_pb2.DatasetFeatureStatisticsList] | None = None,
) -> list[Measurement]:
    """Every comparator of the schema: drift of `train` from `previous`, skew of each split in
    `others` from `train`. A split without examples is not compared (the row-count checks
    report it).

    Returns:
        The measurements, drift first, then skew in split order, each in feature order.
    """
    import tensorflow_data_validation as tfdv

    measurements = []
    comparisons = []
    if previous is not None and _num_examples(previous) and _num_examples(train):
        comparisons.append(("drift", TRAIN, {"previous_statistics": previous}))
    if _num_examples(train):
        for split, statistics in sorted((others or {}).items()):
            if _num_examples(statistics):
                comparisons.append(("skew", split, {"serving_statistics": statistics}))
    for comparison, split, kwargs in comparisons:
        anomalies = tfdv.validate_statistics(train, schema, **kwargs)
        for info in anomalies.drift_skew_info:
            values = info.drift_measurements if comparison == "drift" else info.skew_measurements
            for item in values:
                measurements.append(
                    Measurement(
                        feature=".".join(info.path.step),
                        comparison=comparison,
                        split=split,
                        measure=MEASURES.get(item.type, str(item.type)),
                        value=float(item.value),
                        threshold=float(item.threshold),
                    )
                )
    return sorted(
        measurements,
        key=lambda item: (item.comparison != "drift", item.split, item.feature),
    )


def findings(measurements: list[Measurement], baseline: str) -> list[Finding]:
    """The measurements above their thresholds, in plain words.

    Args:
        measurements: As `measure` returns them.
        baseline: What the drift baseline is, e.g. "the previous span".
    """
    result = []
    for item in measurements:
        if not item.failed:
            continue
        if item.comparison == "drift":
            anomaly = f"drift from {baseline}"
        else:
            anomaly = f"skew between the train and {item.split} splits"
        result.append(
            Finding(
                split=item.split,
                feature=item.feature,
                anomaly=anomaly,
                description=f"{item.measure} {item.value:.3f}, above the schema's threshold "
                f"{item.threshold:g}",
            )
        )
    return result


def metric_values(measurements: Sequence[Measurement]) -> dict[str, float]:
    """One scalar per comparison, named `<drift|skew>_<split>_<feature>`, for KFP's console."""
    return {f"{item.comparison}_{item.split}_{item.feature}": item.value for item in measurements}


def summary_markdown(
    measurements: Sequence[Measurement], failures: Sequence[Finding], drift_measured: bool
) -> str:
    """The gate's verdict and every measurement (largest first) as Markdown."""
    context = (
        "Drift of the train split from the previous accepted span, and skew of each split "
        "from the train split"
        if drift_measured
        else "Skew of each split from the train split (no earlier span: drift not measured)"
    )
    ranked = sorted(measurements, key=lambda item: (-item.value, item.feature))
    return (
        findings_markdown("Drift and skew", not failures, failures, context + ".")
        + "\n"
        + markdown_table(
            ("comparison", "split", "feature", "measure", "value", "threshold", "verdict"),
            [
                (
                    item.comparison,
                    item.split,
                    item.feature,
                    item.measure,
                    f"{item.value:.4f}",
                    f"{item.threshold:g}",
                    "above" if item.failed else "within",
                )
                for item in ranked
            ],
        )
    )


def run_gate(
    statistics_dirs: Mapping[str, str],
    schema_path: str,
    baseline_dir: str | None,
    report_dir: str,
    accepted_dir: str,
    summary_path: str | None = None,
) -> list[Measurement]:
    """The component's work: measures drift and skew, writes `report.json` (and its Markdown
    summary), and fails on any value above its threshold; otherwise keeps the train split's
    statistics as the next run's baseline.

    Args:
        statistics_dirs: Split name -> StatisticsGen's folder for it; must hold "train".
        schema_path: The schema with the comparators.
        baseline_dir: The previous accepted span's `Split-train` folder, or None for the
            first span (drift is then not measured).
        report_dir: Where `report.json` goes.
        accepted_dir: Receives `Split-train/FeatureStats.pb` when the data passes.
        summary_path: Where the Markdown summary goes (a file), if anywhere.

    Returns:
        Every measurement (when the data passed).

    Raises:
        DataValidationError: If a feature drifted or is skewed beyond its threshold.
        ValueError: If there is no train split.
    """
    if TRAIN not in statistics_dirs:
        raise ValueError(
            f"Expected statistics of a {TRAIN!r} split, received splits {sorted(statistics_dirs)}."
        )
    train = load_statistics(statistics_dirs[TRAIN])
    measurements = measure(
        train,
        load_schema(schema_path),
        previous=load_statistics(baseline_dir) if baseline_dir else None,
        others={
            split: load_statistics(path)
            for split, path in statistics_dirs.items()
            if split != TRAIN
        },
    )
    failures = findings(measurements, "the previous span")
    storage.write_json(
        storage.join(report_dir, REPORT_FILE),
        {
            "passed": not failures,
            "drift_measured": baseline_dir is not None,
            "findings": [asdict(item) for item in failures],
            "measurements": [asdict(item) for item in measurements],
        },
    )
    if summary_path:
        storage.write_text(
            summary_path, summary_markdown(measurements, failures, baseline_dir is not None)
        )
    if failures:
        raise DataValidationError(
            f"Drift and skew: {len(failures)} feature comparison(s) above the schema's "
            f"thresholds; the run stops before training.\n{describe(failures)}"
        )
    storage.copy_file(
        storage.join(statistics_dirs[TRAIN], STATS_FILE),
        storage.join(accepted_dir, f"Split-{TRAIN}", STATS_FILE),
    )
    return measurements
