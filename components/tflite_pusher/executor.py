"""Publishes `model.tflite` and `metadata.json` as `<base>/<version>/`, with one rename.

The device model artifact may be a local folder or on an object store, and so may the push
destination: files are read through `tf.io.gfile`, and the version is published by
`components.pusher.executor.publish_version` (a rename locally; ordered copies from a hidden
staging prefix on an object store, the push record last).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from components import storage
from components.anomaly_gate.executor import markdown_table
from components.compressor.executor import METADATA_FILE, MODEL_FILE, ONNX_FILE
from components.pusher.executor import Push, publish_version

PUSH_RECORD = "push.json"


def push_tflite(model_dir: str, base_directory: str) -> Push:
    """Publishes the device model in `model_dir` as the next version under `base_directory`.

    `metadata.json` gains the version, so a device can tell which model it runs; `model.onnx`
    (the SavedModel in ONNX, when the Compressor wrote one) goes along. A device model
    made from the same SavedModel with the same recipe as an earlier push is not pushed again.

    Raises:
        ValueError: If `model_dir` holds no `model.tflite` or no `metadata.json`.
    """
    missing = [
        name
        for name in (MODEL_FILE, METADATA_FILE)
        if not tf.io.gfile.exists(storage.join(model_dir, name))
    ]
    if missing:
        raise ValueError(
            f"Expected {MODEL_FILE} and {METADATA_FILE} in {model_dir}, missing {missing}."
        )

    metadata = storage.read_json(storage.join(model_dir, METADATA_FILE))

    def fill(staging: str, version: str) -> None:
        # `staging` is a local folder: the staging folder itself, or a scratch folder that
        # publish_version uploads to an object store.
        for name in (MODEL_FILE, ONNX_FILE):
            if tf.io.gfile.exists(storage.join(model_dir, name)):
                tf.io.gfile.copy(storage.join(model_dir, name), os.path.join(staging, name))
        metadata["version"] = version
        with open(os.path.join(staging, METADATA_FILE), "w") as handle:
            json.dump(metadata, handle, indent=1, sort_keys=True)

    source = f"{metadata['source_model_uri']}#{metadata['recipe']}"
    return publish_version(base_directory, source, fill, record=PUSH_RECORD)


def summary_markdown(push: Push | None, model_dir: str) -> str:
    """What the TFLitePusher did, as Markdown for the Kubeflow and Vertex consoles.

    Args:
        push: The push, or None when no device model was blessed.
        model_dir: The device model artifact's folder.
    """
    if push is None:
        return "## Device model: not pushed\n\nThe Compressor blessed no device model.\n"
    metadata = storage.read_json(storage.join(model_dir, METADATA_FILE))
    files = [
        name
        for name in (MODEL_FILE, ONNX_FILE)
        if tf.io.gfile.exists(storage.join(push.path, name))
    ]
    state = "pushed" if push.copied else "already pushed (this model, this recipe)"
    return f"## Device model: {state}\n\n" + markdown_table(
        ("version", "destination", "recipe", "size (KB)", "test accuracy", "files"),
        [
            (
                push.version,
                push.path,
                metadata["recipe"],
                f"{metadata['size_bytes'] / 1024:.1f}",
                f"{metadata['accuracy']:.4f}",
                ", ".join([*files, METADATA_FILE]),
            )
        ],
    )
