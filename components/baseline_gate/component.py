"""BaselineGate: the Evaluator's blessing, kept only if the model beats the seasonal naive.

It outputs a standard ModelBlessing, laid out like the Evaluator's (a BLESSED or NOT_BLESSED
file; the `blessed`, `current_model` and `current_model_id` custom properties, and the
baseline's when the Evaluator had one), so the Pusher and the latest-blessed-model resolver
take it in place of the Evaluator's; and a report with both sets of figures. `metrics` (the
figures, as KFP `system.Metrics`) and `summary` (the verdict and a table, Markdown) are for the
Kubeflow and Vertex consoles.
"""

# No `from __future__ import annotations`: TFX reads these annotations as types.
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Examples, ModelBlessing, ModelEvaluation

from components import storage
from components.artifacts import DISPLAY_NAME, Markdown, Metrics, ValidationReport
from components.baseline_gate import executor

# The Evaluator's custom properties that name the models a blessing is about.
MODEL_PROPERTIES = ("current_model", "current_model_id", "baseline_model", "baseline_model_id")
BLESSED_PROPERTY = "blessed"


@component
def BaselineGate(  # noqa: N802 - TFX component names are classes.
    model_blessing: InputArtifact[ModelBlessing],
    evaluation: InputArtifact[ModelEvaluation],
    examples: InputArtifact[Examples],
    blessing: OutputArtifact[ModelBlessing],
    report: OutputArtifact[ValidationReport],
    metrics: OutputArtifact[Metrics],
    summary: OutputArtifact[Markdown],
) -> None:
    # The Evaluator sets no `blessed` property when it validated nothing (no thresholds).
    evaluator_blessed = (
        model_blessing.has_custom_property(BLESSED_PROPERTY)
        and model_blessing.get_int_custom_property(BLESSED_PROPERTY) == 1
    )
    verdict = executor.run_gate(
        evaluator_blessed=evaluator_blessed,
        examples_dir=examples.uri,
        evaluation_dir=evaluation.uri,
        blessing_dir=blessing.uri,
        report_dir=report.uri,
    )
    for name in MODEL_PROPERTIES:
        if model_blessing.has_custom_property(name):
            value = model_blessing.get_custom_property(name)
            if isinstance(value, int):
                blessing.set_int_custom_property(name, value)
            else:
                blessing.set_string_custom_property(name, str(value))
    blessing.set_int_custom_property(BLESSED_PROPERTY, int(verdict.blessed))
    blessing.set_string_custom_property("blessing_message", verdict.reason)
    metrics.record("forecast against the seasonal naive", executor.metric_values(verdict))
    summary.set_string_custom_property(DISPLAY_NAME, "seasonal-naive baseline")
    storage.write_text(summary.uri, executor.summary_markdown(verdict))
