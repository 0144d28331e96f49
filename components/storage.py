"""Artifact files on any file system TensorFlow knows: local folders and object stores.

A compiled pipeline's artifacts live under its pipeline root (`gs://`, `s3://`, a mounted
volume), so the custom components read and write through `tf.io.gfile`, never `open`/`os`.
A file is written under a hidden temporary name beside it and renamed into place, so a reader
never sees half of it: a local rename is atomic; on an object store the rename is a copy then a
delete, and the copy publishes the whole object at once.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from typing import Any

import tensorflow as tf


def is_uri(path: str) -> bool:
    """Whether `path` names a file system by scheme (`gs://...`), not a local path."""
    return "://" in path


def join(base: str, *parts: str) -> str:
    """`base/part/...`, with "/" on every file system that is given by a URI."""
    return posixpath.join(base, *parts) if is_uri(base) else os.path.join(base, *parts)


def dirname(path: str) -> str:
    """The folder of `path` (a local path or a URI)."""
    return posixpath.dirname(path) if is_uri(path) else os.path.dirname(os.path.abspath(path))


def read_bytes(path: str) -> bytes:
    """The content of a file.

    Raises:
        FileNotFoundError: If there is no file at `path`.
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Expected a file at {path}, found none.")
    with tf.io.gfile.GFile(path, "rb") as handle:
        return handle.read()


def read_json(path: str) -> Any:
    """The JSON document in a file (see `read_bytes`)."""
    return json.loads(read_bytes(path).decode("utf-8"))


def write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path` under a temporary name, then renames it into place.

    The folder is created when missing. An existing file at `path` is replaced.
    """
    folder = dirname(path)
    tf.io.gfile.makedirs(folder)
    temporary = join(folder, f".{posixpath.basename(path)}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tf.io.gfile.GFile(temporary, "wb") as handle:
            handle.write(data)
        tf.io.gfile.rename(temporary, path, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
        raise


def write_text(path: str, text: str) -> None:
    """Writes UTF-8 text to `path` (see `write_bytes`)."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str, document: Any) -> None:
    """Writes `document` as indented JSON with sorted keys (see `write_bytes`)."""
    write_text(path, json.dumps(document, indent=1, sort_keys=True) + "\n")


def copy_file(source: str, destination: str) -> None:
    """Copies one file between any two file systems, replacing the destination (under a
    temporary name first, like `write_bytes`)."""
    folder = dirname(destination)
    tf.io.gfile.makedirs(folder)
    temporary = join(folder, f".{posixpath.basename(destination)}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        tf.io.gfile.copy(source, temporary, overwrite=True)
        tf.io.gfile.rename(temporary, destination, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
        raise


def upload_tree(local_dir: str, destination: str) -> None:
    """Copies every file under a local folder to the same relative path under `destination`.

    For libraries that can only write local files (GX Data Docs): they write into a local
    temporary folder, which is then copied to the artifact's URI.
    """
    for directory, _, names in os.walk(local_dir):
        relative = os.path.relpath(directory, local_dir)
        parts = [] if relative == os.curdir else relative.split(os.sep)
        for name in names:
            with open(os.path.join(directory, name), "rb") as handle:
                write_bytes(join(destination, *parts, name), handle.read())


def copy_tree(source: str, destination: str) -> int:
    """Copies every file under `source` to the same relative path under `destination`, between
    any two file systems. Returns the number of files copied."""
    copied = 0
    for directory, _, names in tf.io.gfile.walk(source):
        relative = posixpath.relpath(directory.replace(os.sep, "/"), source.replace(os.sep, "/"))
        parts = [] if relative == posixpath.curdir else relative.split("/")
        for name in names:
            copy_file(join(directory, name), join(destination, *parts, name))
            copied += 1
    return copied


def tree_bytes(folder: str) -> int:
    """Total size of the files under a folder (local or a URI), e.g. a SavedModel's size."""
    return sum(
        tf.io.gfile.stat(join(directory, name)).length
        for directory, _, names in tf.io.gfile.walk(folder)
        for name in names
    )
