"""TFLitePusher: publishes a blessed TFLite model and its metadata as the next version.

`summary` says what was pushed where, as Markdown for the Kubeflow and Vertex consoles.
"""

# No `from __future__ import annotations`: TFX reads these annotations as types.
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import PushedModel

from components import storage
from components.artifacts import DISPLAY_NAME, DeviceBlessing, Markdown, TFLiteModel
from components.tflite_pusher import executor


@component
def TFLitePusher(  # noqa: N802 - TFX component names are classes.
    device_model: InputArtifact[TFLiteModel],
    device_blessing: InputArtifact[DeviceBlessing],
    pushed_model: OutputArtifact[PushedModel],
    summary: OutputArtifact[Markdown],
    base_directory: Parameter[str],
) -> None:
    summary.set_string_custom_property(DISPLAY_NAME, "device model push")
    if not device_blessing.get_int_custom_property("blessed"):
        pushed_model.set_int_custom_property("pushed", 0)
        storage.write_text(summary.uri, executor.summary_markdown(None, device_model.uri))
        return
    push = executor.push_tflite(device_model.uri, base_directory)
    storage.write_text(summary.uri, executor.summary_markdown(push, device_model.uri))
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", push.path)
    pushed_model.set_string_custom_property("pushed_version", push.version)
