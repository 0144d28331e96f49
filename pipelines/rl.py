"""The reinforcement-learning pipelines (cartpole, frozenlake): wiring of TFX components only.

AgentTrainer -> AgentEvaluator -> Pusher (the SavedModel policy into TF Serving's layout)
-> PolicyTFLite -> TFLitePusher, the same push stages a supervised model goes through.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.agent_evaluator.component import AgentEvaluator
from components.agent_trainer.component import AgentTrainer
from components.policy_tflite.component import PolicyTFLite
from components.pusher import executor as pusher_executor
from components.tflite_pusher.component import TFLitePusher
from models.rl.environments import get_environment
from models.rl.settings import AgentSettings
from pipelines.config import PipelineConfig

# Episodes whose visited states check the TFLite policy's actions against the SavedModel's.
TFLITE_CHECK_EPISODES = 5


def _absolute(path: str) -> str:
    """A local path made absolute; a URI (gs://, s3://) is kept, abspath would mangle it."""
    return path if "://" in path else os.path.abspath(path)


def agent_settings(config: PipelineConfig) -> AgentSettings:
    """The config's agent settings, naming the agent (`trainer.family` when they name none).

    Raises:
        ValueError: If `agent.agent` and `trainer.family` name different agents.
    """
    settings = config.agent
    if settings.agent and settings.agent != config.trainer.family:
        raise ValueError(
            f"Expected [agent] agent to match the model family {config.trainer.family!r} (or "
            f"be empty), received {settings.agent!r}."
        )
    return dataclasses.replace(settings, agent=config.trainer.family)


def create_pipeline(
    config: PipelineConfig,
    *,
    pipeline_name: str | None = None,
    pipeline_root: str | None = None,
    local_metadata: bool = True,
    trainer_job: Mapping[str, Any] | None = None,
) -> tfx.dsl.Pipeline:
    """Builds an RL pipeline: train the agent -> evaluate it on seeded episodes -> push the
    policy SavedModel; convert the blessed policy to TFLite -> push it.

    Args:
        config: The run's configuration (`config.pipeline` names the environment,
            `config.agent` the budget, seeds, evaluation and hyper-parameters).
        pipeline_name: Defaults to `config.pipeline_name`; Kubeflow needs [a-z0-9-] names.
        pipeline_root: Defaults to `config.pipeline_root`.
        local_metadata: Whether ML Metadata is SQLite at `config.metadata_path`; False for
            orchestrators that bring their own.
        trainer_job: Must be None: an agent trains inside its pipeline step (it is not a
            Vertex AI custom training job).

    Returns:
        The TFX pipeline, with caching on.

    Raises:
        ValueError: For a `trainer_job`, or an `[agent]` agent that is not the model family.
    """
    if trainer_job is not None:
        raise ValueError(
            "Expected no trainer_job for an RL pipeline (the agent trains in its step), "
            f"received {sorted(trainer_job)}."
        )
    environment = get_environment(config.pipeline).to_json()
    settings = json.dumps(agent_settings(config).to_dict(), sort_keys=True)
    trainer = AgentTrainer(environment=environment, settings=settings)
    evaluator = AgentEvaluator(
        model=trainer.outputs["model"], environment=environment, settings=settings
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=_absolute(config.serving_dir)
            )
        ),
        custom_executor_spec=executor_spec.ExecutorClassSpec(pusher_executor.Executor),
    )
    policy_tflite = PolicyTFLite(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        environment=environment,
        episodes=TFLITE_CHECK_EPISODES,
        seed=config.agent.eval_seed,
    )
    tflite_pusher = TFLitePusher(
        device_model=policy_tflite.outputs["device_model"],
        device_blessing=policy_tflite.outputs["device_blessing"],
        base_directory=_absolute(config.tflite_dir),
    )
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name or config.pipeline_name,
        pipeline_root=_absolute(pipeline_root or config.pipeline_root),
        components=[trainer, evaluator, pusher, policy_tflite, tflite_pusher],
        enable_cache=True,
        metadata_connection_config=(
            tfx.orchestration.metadata.sqlite_metadata_connection_config(
                os.path.abspath(config.metadata_path)
            )
            if local_metadata
            else None
        ),
        beam_pipeline_args=list(config.beam_args),
    )
