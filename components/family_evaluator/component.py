"""FamilyEvaluator: a generative or language model judged by its family's metric (executor.py).

Takes Transform's transformed examples (its train and test splits) and graph, the Trainer's
model and, when a resolver found one, the latest blessed model. Outputs the evaluation
(`metrics.json`, PNG sample grids, generated text), a standard ModelBlessing laid out like the
Evaluator's (so the Pusher and the latest-blessed-model resolver take it), and views for the
Kubeflow and Vertex consoles: `metrics` (KFP `system.Metrics`) and `summary` (`system.HTML`, the
figures, checks and grids on one page).
"""

# No `from __future__ import annotations`: TFX reads these annotations as types.
import math

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import (
    Examples,
    Model,
    ModelBlessing,
    ModelEvaluation,
    TransformGraph,
)
from tfx.utils import path_utils

from components import storage
from components.artifacts import DISPLAY_NAME, HTML, Metrics
from components.family_evaluator import executor


@component
def FamilyEvaluator(  # noqa: N802 - TFX component names are classes.
    examples: InputArtifact[Examples],
    transform_graph: InputArtifact[TransformGraph],
    model: InputArtifact[Model],
    evaluation: OutputArtifact[ModelEvaluation],
    blessing: OutputArtifact[ModelBlessing],
    metrics: OutputArtifact[Metrics],
    summary: OutputArtifact[HTML],
    family: Parameter[str],
    thresholds: Parameter[str],
    seed: Parameter[int] = 0,
    baseline_model: InputArtifact[Model] = None,
) -> None:
    document, page = executor.run_evaluation(
        family=family,
        model_dir=path_utils.serving_model_path(model.uri),
        examples_dir=examples.uri,
        transform_graph_dir=transform_graph.uri,
        thresholds=executor.Thresholds.from_json(thresholds),
        seed=seed,
        evaluation_dir=evaluation.uri,
        blessing_dir=blessing.uri,
        baseline_model_dir=(
            path_utils.serving_model_path(baseline_model.uri) if baseline_model else None
        ),
    )
    blessed = int(document["blessed"])
    for name, value in document["metrics"].items():
        evaluation.set_float_custom_property(name, value)
    blessing.set_int_custom_property("blessed", blessed)
    blessing.set_string_custom_property(
        "blessing_message", "; ".join(check["description"] for check in document["checks"])
    )
    # What TFX's Evaluator records, which LatestBlessedModelStrategy matches models by.
    blessing.set_string_custom_property("current_model", model.uri)
    blessing.set_int_custom_property("current_model_id", model.id)
    if baseline_model:
        blessing.set_string_custom_property("baseline_model", baseline_model.uri)
        blessing.set_int_custom_property("baseline_model_id", baseline_model.id)
    # A diverged model's NaN figures are in metrics.json (and not blessed); the console shows
    # numbers only.
    finite = {name: value for name, value in document["metrics"].items() if math.isfinite(value)}
    metrics.record(f"{family} on the test split", finite)
    summary.set_string_custom_property(DISPLAY_NAME, f"{family} evaluation")
    storage.write_text(summary.uri, page)
