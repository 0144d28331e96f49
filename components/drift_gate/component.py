"""DriftGate: fails the run when the data drifted from the previous span or is skewed between
its splits, beyond the schema's comparator thresholds.

Its `baseline` input is the latest `BaselineStatistics` (a Resolver finds it); the gate writes a
new one only when the data passes, so a refused span never becomes a baseline.
"""

# No `from __future__ import annotations`: TFX reads these annotations as types.
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleStatistics, Schema

from components.artifacts import BaselineStatistics, ValidationReport
from components.drift_gate import executor


@component
def DriftGate(  # noqa: N802 - TFX component names are classes.
    statistics: InputArtifact[ExampleStatistics],
    schema: InputArtifact[Schema],
    report: OutputArtifact[ValidationReport],
    accepted_statistics: OutputArtifact[BaselineStatistics],
    baseline: InputArtifact[BaselineStatistics] = None,
) -> None:
    statistics_dirs = {
        split: artifact_utils.get_split_uri([statistics], split)
        for split in artifact_utils.decode_split_names(statistics.split_names)
    }
    executor.run_gate(
        statistics_dirs,
        os.path.join(schema.uri, "schema.pbtxt"),
        os.path.join(baseline.uri, f"Split-{executor.TRAIN}") if baseline else None,
        report.uri,
        accepted_statistics.uri,
    )
