"""AgentEvaluator: mean and std of return over seeded episodes; a ModelBlessing like TFX's.

`metrics` (the returns, as KFP `system.Metrics`) and `summary` (Markdown) are for the Kubeflow
and Vertex consoles.
"""

# No `from __future__ import annotations`: TFX reads these annotations as types.
import json

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Model, ModelBlessing, ModelEvaluation
from tfx.utils import path_utils

from components import storage
from components.agent_evaluator import executor
from components.artifacts import DISPLAY_NAME, Markdown, Metrics
from models.rl import training
from models.rl.environments import EnvironmentSpec
from models.rl.settings import AgentSettings


@component
def AgentEvaluator(  # noqa: N802 - TFX component names are classes.
    model: InputArtifact[Model],
    evaluation: OutputArtifact[ModelEvaluation],
    blessing: OutputArtifact[ModelBlessing],
    metrics: OutputArtifact[Metrics],
    summary: OutputArtifact[Markdown],
    environment: Parameter[str],
    settings: Parameter[str],
) -> None:
    """Plays the settings' evaluation episodes with the exported policy; blessed when the mean
    return reaches the reward threshold (the settings' or the environment's own)."""
    spec = EnvironmentSpec.from_json(environment)
    agent_settings = AgentSettings.from_dict(json.loads(settings))
    report = executor.evaluate_policy(
        path_utils.serving_model_path(model.uri),
        spec,
        episodes=training.evaluation_episodes(agent_settings, spec),
        seed=agent_settings.eval_seed,
        reward_threshold=training.reward_threshold(agent_settings, spec),
    )
    executor.write_outputs(report, evaluation.uri, blessing.uri)
    metrics.record("policy evaluation", executor.metric_values(report))
    summary.set_string_custom_property(DISPLAY_NAME, "policy evaluation")
    storage.write_text(summary.uri, executor.summary_markdown(report))
    blessed = int(report["blessed"])
    evaluation.set_float_custom_property("mean_return", report["mean_return"])
    evaluation.set_float_custom_property("std_return", report["std_return"])
    blessing.set_int_custom_property("blessed", blessed)
    # What TFX's Evaluator records, which LatestBlessedModelStrategy matches models by.
    blessing.set_string_custom_property("current_model", model.uri)
    blessing.set_int_custom_property("current_model_id", model.id)
