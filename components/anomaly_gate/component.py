"""AnomalyGate: passes clean data through, fails the run on any ExampleValidator anomaly.

ExampleValidator records anomalies but never fails a run; downstream stages that must not see
bad data depend on this gate. `summary` is the verdict as Markdown, for the Kubeflow and Vertex
consoles.
"""

# No `from __future__ import annotations`: TFX reads these annotations as types.
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies

from components.anomaly_gate import executor
from components.artifacts import DISPLAY_NAME, Markdown, ValidationReport


@component
def AnomalyGate(  # noqa: N802 - TFX component names are classes.
    anomalies: InputArtifact[ExampleAnomalies],
    report: OutputArtifact[ValidationReport],
    summary: OutputArtifact[Markdown],
) -> None:
    split_dirs = {
        split: artifact_utils.get_split_uri([anomalies], split)
        for split in artifact_utils.decode_split_names(anomalies.split_names)
    }
    summary.set_string_custom_property(DISPLAY_NAME, "schema anomalies")
    executor.run_gate(split_dirs, report.uri, summary.uri)
