"""DriftGate: fails the run when the data drifted from the previous span or is skewed between
its splits, beyond the schema's comparator thresholds.

Its `baseline` input is the latest `BaselineStatistics` (a Resolver finds it); the gate writes a
new one only when the data passes, so a refused span never becomes a baseline. `metrics` (every
distance, as KFP `system.Metrics`) and `summary` (a Markdown table) are for the Kubeflow and
Vertex consoles.
"""

# No `from __future__ import annotations`: TFX reads these annotations as types.
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleStatistics, Schema

from components import storage
from components.artifacts import (
    DISPLAY_NAME,
    BaselineStatistics,
    Markdown,
    Metrics,
    ValidationReport,
)
from components.drift_gate import executor


@component
def DriftGate(  # noqa: N802 - TFX component names are classes.
    statistics: InputArtifact[ExampleStatistics],
    schema: InputArtifact[Schema],
    report: OutputArtifact[ValidationReport],
    accepted_statistics: OutputArtifact[BaselineStatistics],
    metrics: OutputArtifact[Metrics],
    summary: OutputArtifact[Markdown],
    baseline: InputArtifact[BaselineStatistics] = None,
) -> None:
    statistics_dirs = {
        split: artifact_utils.get_split_uri([statistics], split)
        for split in artifact_utils.decode_split_names(statistics.split_names)
    }
    summary.set_string_custom_property(DISPLAY_NAME, "drift and skew")
    measurements = executor.run_gate(
        statistics_dirs,
        storage.join(schema.uri, "schema.pbtxt"),
        storage.join(baseline.uri, f"Split-{executor.TRAIN}") if baseline else None,
        report.uri,
        accepted_statistics.uri,
        summary.uri,
    )
    metrics.record("drift and skew distances", executor.metric_values(measurements))
