"""TFLitePusher: publishes a blessed TFLite model and its metadata as the next version."""

# No `from __future__ import annotations`: TFX reads these annotations as types.
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import PushedModel

from components.artifacts import DeviceBlessing, TFLiteModel
from components.tflite_pusher import executor


@component
def TFLitePusher(  # noqa: N802 - TFX component names are classes.
    device_model: InputArtifact[TFLiteModel],
    device_blessing: InputArtifact[DeviceBlessing],
    pushed_model: OutputArtifact[PushedModel],
    base_directory: Parameter[str],
) -> None:
    if not device_blessing.get_int_custom_property("blessed"):
        pushed_model.set_int_custom_property("pushed", 0)
        return
    push = executor.push_tflite(device_model.uri, base_directory)
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", push.path)
    pushed_model.set_string_custom_property("pushed_version", push.version)
