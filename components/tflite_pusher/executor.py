"""Publishes `model.tflite` and `metadata.json` as `<base>/<version>/`, with one rename."""

from __future__ import annotations

import json
import os
import shutil

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
        if not os.path.exists(os.path.join(model_dir, name))
    ]
    if missing:
        raise ValueError(
            f"Expected {MODEL_FILE} and {METADATA_FILE} in {model_dir}, missing {missing}."
        )

    with open(os.path.join(model_dir, METADATA_FILE)) as handle:
        metadata = json.load(handle)

    def fill(staging: str, version: str) -> None:
        for name in (MODEL_FILE, ONNX_FILE):
            if os.path.exists(os.path.join(model_dir, name)):
                shutil.copyfile(os.path.join(model_dir, name), os.path.join(staging, name))
        metadata["version"] = version
        with open(os.path.join(staging, METADATA_FILE), "w") as handle:
            json.dump(metadata, handle, indent=1, sort_keys=True)

    source = f"{metadata['source_model_uri']}#{metadata['recipe']}"
    return publish_version(base_directory, source, fill, record=PUSH_RECORD)
