"""Pusher executor that publishes each model version with a single rename.

TF Serving polls `<base>/<version>/` and may load a version while it is being copied. TFX's own
Pusher copies file by file into the final folder; this one copies into a hidden staging folder
beside it (TF Serving ignores non-numeric names) and renames it into place, so a version folder
either does not exist or is complete. A model that is already pushed (same source model
artifact) is not copied again: its existing version is reported.

On an object store (`gs://`, `s3://`, ...: any base directory that is a URI) there is no atomic
folder rename, so a version is published by copying: the files are uploaded under a hidden
staging prefix, then copied object by object into `<base>/<version>/` with `saved_model.pb`
after every file it needs and the push record last. TF Serving lists `<base>/` and tries to load
each new numeric version; before `saved_model.pb` arrives that load fails ("SavedModel not found")
and TF Serving retries it (`--max_num_load_retries`, `--load_retry_interval_micros`), so it never
loads a version whose variables are still being copied. The push record marks a version as
complete for `find_pushed`.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.pusher import warmup

PUSH_RECORD = os.path.join("assets.extra", "dlforge_push.json")
# Files without which TF Serving cannot load a version: copied to an object store after the rest.
_LOADED_LAST = ("saved_model.pb", "saved_model.pbtxt")


@dataclass(frozen=True)
class Push:
    """Where a model went."""

    version: str
    path: str
    copied: bool


def existing_versions(base_directory: str) -> list[int]:
    """Numeric version folders under `base_directory` (a folder or URI), ascending."""
    if not tf.io.gfile.isdir(base_directory):
        return []
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(base_directory))
    return sorted(int(name) for name in names if name.isdigit())


def find_pushed(base_directory: str, source_uri: str, record: str = PUSH_RECORD) -> Push | None:
    """The version that already holds the model from `source_uri`, if any."""
    for version in reversed(existing_versions(base_directory)):
        record_path = _join(base_directory, str(version), record)
        if tf.io.gfile.exists(record_path):
            with tf.io.gfile.GFile(record_path) as handle:
                if json.load(handle).get("source_uri") == source_uri:
                    path = _join(base_directory, str(version))
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
    is written at `record` inside it; then the folder is renamed to the version. When
    `base_directory` is a URI (an object store), `fill` writes into a local scratch folder and
    the version is published by copying, in `publication_order` (see the module docstring).

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
    if _is_uri(base_directory):
        return _publish_by_copy(base_directory, source_uri, fill, record)
    os.makedirs(base_directory, exist_ok=True)
    version = _next_version(base_directory)
    staging = tempfile.mkdtemp(prefix=f".staging-{version}-", dir=base_directory)
    try:
        fill(staging, version)
        _write_record(staging, record, source_uri, version)
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a model server must read it.
        destination = os.path.join(base_directory, version)
        os.rename(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Push(version=version, path=destination, copied=True)


def _is_uri(path: str) -> bool:
    return "://" in path


def _join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if _is_uri(base) else os.path.join(base, *parts)


def _next_version(base_directory: str) -> str:
    versions = existing_versions(base_directory)
    return str(max(int(time.time()), versions[-1] + 1 if versions else 0))


def _write_record(folder: str, record: str, source_uri: str, version: str) -> None:
    os.makedirs(os.path.dirname(os.path.join(folder, record)), exist_ok=True)
    with open(os.path.join(folder, record), "w") as handle:
        json.dump({"source_uri": source_uri, "version": version}, handle)


def _publish_by_copy(
    base_directory: str, source_uri: str, fill: Callable[[str, str], None], record: str
) -> Push:
    """`publish_version` on an object store, where a folder cannot be renamed atomically."""
    version = _next_version(base_directory)
    staging = posixpath.join(base_directory, f".staging-{version}-{uuid.uuid4().hex[:8]}")
    destination = posixpath.join(base_directory, version)
    scratch = tempfile.mkdtemp(prefix=f"dlforge-push-{version}-")
    copying = False
    try:
        fill(scratch, version)
        _write_record(scratch, record, source_uri, version)
        files = publication_order(_relative_files(scratch), record)
        for relative in files:
            _upload(os.path.join(scratch, relative), posixpath.join(staging, relative))
        copying = True  # From here on, a failure may leave part of the version behind.
        for relative in files:
            _upload(posixpath.join(staging, relative), posixpath.join(destination, relative))
    except BaseException:
        for partial in (staging, destination) if copying else (staging,):
            if tf.io.gfile.exists(partial):
                _remove_tree(partial)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _remove_tree(staging)
    return Push(version=version, path=destination, copied=True)


def _remove_tree(uri: str) -> None:
    try:
        tf.io.gfile.rmtree(uri)
    except tf.errors.NotFoundError:
        # An object store has prefixes, not folders: some file systems (TF's ram://) report the
        # prefix missing once its objects are deleted. Only a prefix still there is an error.
        if tf.io.gfile.exists(uri):
            raise


def publication_order(files: list[str], record: str = PUSH_RECORD) -> list[str]:
    """The order a version's files are copied to an object store: every other file, then
    `saved_model.pb` (so a model server that sees it finds the variables in place), then the
    push record (which marks the version as complete).

    Args:
        files: Paths relative to the version folder, with "/" separators.
        record: Relative path of the push record.

    Returns:
        The same paths, reordered.
    """
    record = record.replace(os.sep, "/")

    def rank(relative: str) -> tuple[int, str]:
        if relative == record:
            return (2, relative)
        return (1 if relative in _LOADED_LAST else 0, relative)

    return sorted(files, key=rank)


def _relative_files(folder: str) -> list[str]:
    """Every file under a folder (local or a URI), as "/"-separated paths relative to it."""
    folder = folder.rstrip("/")
    files = []
    for directory, _, names in tf.io.gfile.walk(folder):
        prefix = directory[len(folder) :].strip("/")
        files.extend(posixpath.join(prefix, name) if prefix else name for name in names)
    return files


def _upload(source: str, destination: str) -> None:
    parent = (
        posixpath.dirname(destination) if _is_uri(destination) else os.path.dirname(destination)
    )
    tf.io.gfile.makedirs(parent)
    tf.io.gfile.copy(source, destination, overwrite=True)


def _copy_model(model_dir: str, folder: str) -> None:
    """Copies a SavedModel folder (local or on an object store) into a local folder."""
    if not _is_uri(model_dir):
        shutil.copytree(model_dir, folder, dirs_exist_ok=True)
        return
    for relative in _relative_files(model_dir):
        _upload(posixpath.join(model_dir, relative), os.path.join(folder, relative))


def _copy_model_with_warmup(model_dir: str, folder: str) -> None:
    """Copies the SavedModel and adds TF Serving's warmup requests (`warmup.py`)."""
    _copy_model(model_dir, folder)
    warmup.write_warmup_file(folder)


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
    if not tf.io.gfile.exists(_join(model_dir, "saved_model.pb")):
        raise ValueError(f"Expected a SavedModel in {model_dir}, found no saved_model.pb there.")
    return publish_version(
        base_directory,
        source_uri,
        lambda staging, _: _copy_model_with_warmup(model_dir, staging),
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
