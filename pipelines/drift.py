"""`dlforge drift`: compare logged serving traffic with the training statistics using TFDV.

The server logs sampled requests as tf.Examples (`serving/request_log.py`) under
`<home>/logs/<model>/<version>/`. Rows of the dense signature (one `inputs` feature of k
values) are mapped back to the task's raw features, rounded to integers like the raw data the
schema describes; serialized raw examples are read as they are. TFDV computes statistics of
the traffic and validates them against the curated schema, in its SERVING environment (no
label), with a Jensen-Shannon divergence drift comparator on every raw feature and the training
split's statistics (the latest StatisticsGen output in the home) as the previous statistics.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass

from pipelines import catalog

SCHEMA_FILE = catalog.get_pipeline("digits").schema_file
DENSE_FEATURE = "inputs"
DEFAULT_THRESHOLD = 0.3
# TFDV's histogram-based Jensen-Shannon divergence is degenerate on a feature that is nearly
# constant in training (a sample without any non-zero value scores 1.0): such features
# carry no signal to drift from and are not compared (the schema's domain still checks them).
MAX_ZERO_FRACTION = 0.9
# Measured on the digits data: 300 clean rows stay under 0.3 on every compared feature, 60 do
# not (sampling noise), so fewer rows than this are refused rather than misreported.
MIN_ROWS = 200
_DRIFT_TYPES = ("COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", "COMPARATOR_L_INFTY_HIGH")


class DriftError(ValueError):
    """Missing or unusable logs or statistics."""


@dataclass(frozen=True)
class DriftReport:
    """What the comparison found.

    Attributes:
        rows: Logged rows compared.
        drifted: (feature, divergence) for every feature over the threshold, largest first.
        threshold: The Jensen-Shannon divergence threshold.
        training_statistics: The statistics file compared against.
        compared: Features compared (the others are nearly constant in training).
    """

    rows: int
    drifted: tuple[tuple[str, float], ...]
    threshold: float
    training_statistics: str
    compared: tuple[str, ...] = ()


def latest_training_statistics(home: str, model: str) -> str:
    """The train split's statistics of the newest StatisticsGen execution of the pipeline that
    pushes `model` (a model is named after its pipeline, e.g. `digits_cnn`).

    Raises:
        DriftError: If there are none.
    """
    pattern = os.path.join(
        home,
        "pipeline_root",
        model,
        "StatisticsGen",
        "statistics",
        "*",
        "Split-train",
        "FeatureStats.pb",
    )
    found = glob.glob(pattern)
    if not found:
        raise DriftError(f"no training statistics: expected {pattern}, found none (run first)")
    return max(found, key=lambda path: int(path.split(os.sep)[-3]))


def logged_rows(log_dir: str, model: str, raw_feature_keys: tuple[str, ...]):
    """The logged rows of `model` as a DataFrame of raw features.

    Raises:
        DriftError: If there is no log, or a record that is not a tf.Example of the expected
            features.
    """
    import numpy as np
    import pandas as pd
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(log_dir, model, "*", "*.tfrecord")))
    if not files:
        expected = os.path.join(log_dir, model, "<version>", "*.tfrecord")
        raise DriftError(
            f"no logged requests: expected {expected}, found none (serve with --request_log_dir)"
        )
    rows = []
    for path in files:
        for record in tf.data.TFRecordDataset(path):
            example = tf.train.Example.FromString(record.numpy())
            features = example.features.feature
            if DENSE_FEATURE in features:
                values = np.asarray(features[DENSE_FEATURE].float_list.value)
                if len(values) != len(raw_feature_keys):
                    raise DriftError(
                        f"{path}: expected {len(raw_feature_keys)} values per logged row, "
                        f"received {len(values)}"
                    )
                rows.append(np.round(values).astype(np.int64))
            elif set(raw_feature_keys) <= set(features):
                rows.append(
                    np.array([features[key].int64_list.value[0] for key in raw_feature_keys])
                )
            else:
                raise DriftError(
                    f"{path}: expected logged rows of {DENSE_FEATURE!r} or of the raw features, "
                    f"received features {sorted(features)[:5]}"
                )
    return pd.DataFrame(np.stack(rows), columns=list(raw_feature_keys))


def compare(
    rows,
    training_statistics_path: str,
    *,
    schema_file: str = SCHEMA_FILE,
    label_key: str = "label",
    threshold: float = DEFAULT_THRESHOLD,
) -> DriftReport:
    """Validates the statistics of `rows` against the training statistics with TFDV.

    Raises:
        DriftError: If there are fewer than MIN_ROWS rows.
    """
    if len(rows) < MIN_ROWS:
        raise DriftError(
            f"too few logged rows for a drift check: expected at least {MIN_ROWS}, found "
            f"{len(rows)}"
        )
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    schema = tfdv.load_schema_text(schema_file)
    for environment in ("TRAINING", "SERVING"):
        schema.default_environment.append(environment)
    tfdv.get_feature(schema, label_key).not_in_environment.append("SERVING")
    training = tfdv.load_stats_binary(training_statistics_path)
    zero_fractions = {
        feature.path.step[-1]: feature.num_stats.num_zeros
        / max(1, feature.num_stats.common_stats.num_non_missing)
        for feature in training.datasets[0].features
        if feature.HasField("num_stats")
    }
    compared = []
    for feature in schema.feature:
        if (
            feature.name in rows.columns
            and zero_fractions.get(feature.name, 0) <= MAX_ZERO_FRACTION
        ):
            feature.drift_comparator.jensen_shannon_divergence.threshold = threshold
            compared.append(feature.name)
    served = tfdv.generate_statistics_from_dataframe(rows)
    anomalies = tfdv.validate_statistics(
        served, schema, environment="SERVING", previous_statistics=training
    )
    drifted = []
    for name, info in anomalies.anomaly_info.items():
        for reason in info.reason:
            if anomalies_pb2.AnomalyInfo.Type.Name(reason.type) in _DRIFT_TYPES:
                numbers = re.findall(r"is ([0-9.]+(?:e-?\d+)?)", reason.description)
                drifted.append((name, float(numbers[0]) if numbers else float("nan")))
    drifted.sort(key=lambda item: -item[1])
    return DriftReport(
        rows=len(rows),
        drifted=tuple(drifted),
        threshold=threshold,
        training_statistics=training_statistics_path,
        compared=tuple(compared),
    )


def check(
    model: str, *, log_dir: str, training_statistics: str, threshold: float = DEFAULT_THRESHOLD
) -> DriftReport:
    """Compares the logged traffic of `model` (a digits model) with the training statistics.

    Raises:
        DriftError: On missing or unusable logs or statistics, or too few logged rows.
    """
    from models import tasks

    task = tasks.get_task("digits")
    rows = logged_rows(log_dir, model, task.raw_feature_keys)
    return compare(rows, training_statistics, label_key=task.label_key, threshold=threshold)


def summary_lines(model: str, report: DriftReport) -> list[str]:
    """What `dlforge drift` prints: the comparison, each drifted feature, the verdict."""
    lines = [
        f"dlforge: {report.rows} logged rows of {model} against {report.training_statistics} "
        f"({len(report.compared)} features compared, threshold {report.threshold})"
    ]
    lines.extend(
        f"  drift: {feature} (Jensen-Shannon divergence {divergence:.3f})"
        for feature, divergence in report.drifted
    )
    lines.append(f"  {'drift detected' if report.drifted else 'no drift'}")
    return lines
