"""AgentTrainer: trains an agent on an environment; outputs a Model in the Trainer's layout.

`metrics` (the run's figures, as KFP `system.Metrics`) and `summary` (the training curve in an
HTML page) are for the Kubeflow and Vertex consoles.
"""

# No `from __future__ import annotations`: TFX reads these annotations as types.
import json

from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Model, ModelRun
from tfx.utils import path_utils

from components import storage
from components.agent_trainer import executor
from components.artifacts import DISPLAY_NAME, HTML, Metrics
from models.rl.environments import EnvironmentSpec
from models.rl.settings import AgentSettings


@component
def AgentTrainer(  # noqa: N802 - TFX component names are classes.
    model: OutputArtifact[Model],
    model_run: OutputArtifact[ModelRun],
    metrics: OutputArtifact[Metrics],
    summary: OutputArtifact[HTML],
    environment: Parameter[str],
    settings: Parameter[str],
) -> None:
    """Trains the agent of `settings` (AgentSettings JSON: agent, episodes, seed, hyper-
    parameters) on `environment` (EnvironmentSpec JSON). The policy SavedModel goes to
    `<model uri>/Format-Serving` (what the Pusher pushes); the training curve (JSON and PNG) to
    the ModelRun artifact."""
    curve = executor.train_and_export(
        EnvironmentSpec.from_json(environment),
        AgentSettings.from_dict(json.loads(settings)),
        path_utils.serving_model_dir(model.uri),
        model_run.uri,
    )
    model_run.set_int_custom_property("episodes", curve["episodes"])
    model_run.set_int_custom_property("solved", int(curve["solved_at"] is not None))
    metrics.record("agent training", executor.metric_values(curve))
    summary.set_string_custom_property(DISPLAY_NAME, "training curve")
    picture = storage.read_bytes(storage.join(model_run.uri, executor.PLOT_FILE))
    storage.write_text(summary.uri, executor.summary_html(curve, picture))
