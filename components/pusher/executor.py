"""Pusher executor that publishes each model version with a single rename.

TF Serving polls `<base>/<version>/` and may load a version while it is being copied. TFX's own
Pusher copies file by file into the final folder; this one copies into a hidden staging folder
beside it (TF Serving ignores non-numeric names) and renames it into place, so a version folder
either does not exist or is complete. A model that is already pushed (same source model
artifact) is not copied again: its existing version is reported.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

PUSH_RECORD = os.path.join("assets.extra", "dlforge_push.json")


@dataclass(frozen=True)
class Push:
    """Where a model went."""

    version: str
    path: str
    copied: bool


def existing_versions(base_directory: str) -> list[int]:
    """Numeric version folders under `base_directory`, ascending."""
    if not os.path.isdir(base_directory):
        return []
    return sorted(int(name) for name in os.listdir(base_directory) if name.isdigit())


def find_pushed(base_directory: str, source_uri: str, record: str = PUSH_RECORD) -> Push | None:
    """The version that already holds the model from `source_uri`, if any."""
    for version in reversed(existing_versions(base_directory)):
        record_path = os.path.join(base_directory, str(version), record)
        if os.path.exists(record_path):
            with open(record_path) as handle:
                if json.load(handle).get("source_uri") == source_uri:
                    path = os.path.join(base_directory, str(version))
                    return Push(version=str(version), path=path, copied=False)
    return None


def publish_version(
    base_directory: str,
    source_uri: str,
    fill: Callable[[str, str], None],
    record: str = PUSH_RECORD,
) -> Push:
    """Publishes the next version folder under `base_directory` with one rename.

    The version is the current Unix time in seconds, or one more than the newest existing
    version if that is not newer, so versions always increase. `fill` writes the
    content into a hidden staging folder beside the versions (it is given the folder and
    the version); the push record (the source URI)
    is written at `record` inside it; then the folder is renamed to the version.

    Args:
        base_directory: The model's base path, `<...>/<model_name>`.
        source_uri: URI of the pushed artifact, recorded to recognise a repeated push.
        fill: `fill(folder, version)` writes the version's files into `folder`.
        record: Path of the push record inside the version folder.

    Returns:
        The version, its folder, and whether anything was written (False when the same source
        was pushed before).
    """
    already = find_pushed(base_directory, source_uri, record)
    if already is not None:
        return already
    os.makedirs(base_directory, exist_ok=True)
    versions = existing_versions(base_directory)
    version = str(max(int(time.time()), versions[-1] + 1 if versions else 0))
    staging = tempfile.mkdtemp(prefix=f".staging-{version}-", dir=base_directory)
    try:
        fill(staging, version)
        os.makedirs(os.path.dirname(os.path.join(staging, record)), exist_ok=True)
        with open(os.path.join(staging, record), "w") as handle:
            json.dump({"source_uri": source_uri, "version": version}, handle)
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a model server must read it.
        destination = os.path.join(base_directory, version)
        os.rename(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Push(version=version, path=destination, copied=True)


def push_model(model_dir: str, base_directory: str, source_uri: str) -> Push:
    """Publishes the SavedModel in `model_dir` as the next version in TF Serving's layout.

    Args:
        model_dir: The SavedModel folder to publish.
        base_directory: TF Serving's model base path, `<...>/<model_name>`.
        source_uri: URI of the model artifact, recorded to recognise a repeated push.

    Returns:
        The version, its folder, and whether anything was copied.

    Raises:
        ValueError: If `model_dir` holds no `saved_model.pb`.
    """
    if not os.path.exists(os.path.join(model_dir, "saved_model.pb")):
        raise ValueError(f"Expected a SavedModel in {model_dir}, found no saved_model.pb there.")
    return publish_version(
        base_directory,
        source_uri,
        lambda staging, _: shutil.copytree(model_dir, staging, dirs_exist_ok=True),
    )


class Executor(tfx_pusher_executor.Executor):
    """TFX Pusher executor for filesystem destinations with atomic, idempotent pushes."""

    def Do(  # noqa: N802 - TFX's executor interface.
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed_model = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY]
        )
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed_model)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination
        )
        if destination.WhichOneof("destination") != "filesystem":
            raise ValueError(
                "Expected a filesystem push destination, received "
                f"{destination.WhichOneof('destination')!r}."
            )
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        model_dir = self.GetModelPath(input_dict)
        push = push_model(model_dir, destination.filesystem.base_directory, model.uri)
        io_utils.copy_dir(model_dir, pushed_model.uri)
        self._MarkPushed(pushed_model, pushed_destination=push.path, pushed_version=push.version)
