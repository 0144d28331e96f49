"""PolicyTFLite: a blessed policy's TFLite model and its DeviceBlessing, for the TFLitePusher.

`metrics` (size and action agreement, as KFP `system.Metrics`) and `summary` (Markdown) are for
the Kubeflow and Vertex consoles.
"""

# No `from __future__ import annotations`: TFX reads these annotations as types.
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Model, ModelBlessing
from tfx.utils import path_utils

from components import storage
from components.artifacts import DISPLAY_NAME, DeviceBlessing, Markdown, Metrics, TFLiteModel
from components.policy_tflite import executor
from models.rl.environments import EnvironmentSpec


@component
def PolicyTFLite(  # noqa: N802 - TFX component names are classes.
    model: InputArtifact[Model],
    model_blessing: InputArtifact[ModelBlessing],
    device_model: OutputArtifact[TFLiteModel],
    device_blessing: OutputArtifact[DeviceBlessing],
    metrics: OutputArtifact[Metrics],
    summary: OutputArtifact[Markdown],
    environment: Parameter[str],
    episodes: Parameter[int],
    seed: Parameter[int],
) -> None:
    """Only for a blessed policy: converts it and blesses the TFLite model when its actions
    equal the SavedModel's on every state of `episodes` seeded episodes."""
    summary.set_string_custom_property(DISPLAY_NAME, "policy device model")
    if not model_blessing.get_int_custom_property("blessed"):
        device_blessing.set_int_custom_property("blessed", 0)
        metrics.record("policy device model", {})
        storage.write_text(summary.uri, executor.summary_markdown(None))
        return
    report = executor.convert_policy(
        path_utils.serving_model_path(model.uri),
        EnvironmentSpec.from_json(environment),
        device_model.uri,
        episodes=episodes,
        seed=seed,
        source_model_uri=model.uri,
    )
    device_blessing.set_int_custom_property("blessed", int(report["parity"]))
    metrics.record("policy device model", executor.metric_values(report))
    storage.write_text(summary.uri, executor.summary_markdown(report))
