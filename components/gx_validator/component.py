"""GxValidator: validates each split of the examples with a Great Expectations suite.

The suite arrives as a JSON parameter (like the Evaluator's eval_config), so a compiled pipeline
carries it and a changed suite invalidates the cache. The output holds `results.json`, GX Data
Docs under `data_docs/` and `report.json`, and `summary` a Markdown table for the Kubeflow
and Vertex consoles; the component fails when any expectation fails.
"""

# No `from __future__ import annotations`: TFX reads these annotations as types.
import json

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples

from components.artifacts import DISPLAY_NAME, Markdown, ValidationReport
from components.gx_validator import executor


@component
def GxValidator(  # noqa: N802 - TFX component names are classes.
    examples: InputArtifact[Examples],
    report: OutputArtifact[ValidationReport],
    summary: OutputArtifact[Markdown],
    suite: Parameter[str],
) -> None:
    split_dirs = {
        split: artifact_utils.get_split_uri([examples], split)
        for split in artifact_utils.decode_split_names(examples.split_names)
    }
    summary.set_string_custom_property(DISPLAY_NAME, "Great Expectations")
    executor.run_validator(split_dirs, json.loads(suite), report.uri, summary.uri)
