"""`dlforge serve` and `dlforge predict`: flag values in, a running server or printed lines out.

`pipelines/cli.py` parses the flags and calls these functions; they raise `UsageError`-like
`ValueError`s (ConfigError, ClientError, InputError) for the CLI to print in one line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
from collections.abc import Sequence

import numpy as np

from serving import config as config_lib
from serving.client import ClientError, PredictionClient

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
DENSE_SIGNATURE = "serving_dense"


class InputError(ValueError):
    """An input file `dlforge predict` cannot send."""


def server_options(
    *,
    model_name: str,
    model_base_path: str | None,
    model_config_file: str | None,
    host: str,
    port: int,
    rest_api_port: int,
    poll_wait_seconds: float,
    enable_batching: bool,
    batching_parameters_file: str | None,
    rest_api_timeout_in_ms: int,
    max_body_bytes: int,
    rest_api_num_threads: int = 0,
    traffic_split_file: str | None = None,
    request_log_dir: str | None = None,
    request_log_sampling_rate: float = 0.1,
) -> config_lib.ServerOptions:
    """ServerOptions from tensorflow_model_server's flags (REST is off when its port is 0).

    Raises:
        ConfigError: On conflicting or missing flags or a bad config file.
    """
    if model_config_file and model_base_path:
        raise config_lib.ConfigError(
            "Expected --model_config_file or --model_base_path, received both."
        )
    if model_config_file:
        models = config_lib.parse_model_config(
            config_lib.read_text(model_config_file, "--model_config_file"), model_config_file
        )
    elif model_base_path:
        models = (config_lib.single_model(model_name, model_base_path),)
    else:
        raise config_lib.ConfigError(
            "Expected --model_base_path or --model_config_file, received neither."
        )
    if traffic_split_file:
        models = config_lib.parse_traffic_split(
            config_lib.read_text(traffic_split_file, "--traffic_split_file"),
            models,
            traffic_split_file,
        )
    batching = None
    if batching_parameters_file and not enable_batching:
        raise config_lib.ConfigError("--batching_parameters_file needs --enable_batching.")
    if enable_batching:
        batching = (
            config_lib.parse_batching_parameters(
                config_lib.read_text(batching_parameters_file, "--batching_parameters_file"),
                batching_parameters_file,
            )
            if batching_parameters_file
            else config_lib.BatchingParameters()
        )
    return config_lib.ServerOptions(
        models=models,
        host=host,
        grpc_port=port,
        rest_api_port=rest_api_port or None,
        poll_wait_seconds=poll_wait_seconds,
        batching=batching,
        rest_api_timeout_ms=rest_api_timeout_in_ms,
        rest_api_num_threads=rest_api_num_threads,
        max_body_bytes=max_body_bytes,
        request_log_dir=os.path.abspath(request_log_dir) if request_log_dir else None,
        request_log_sampling_rate=request_log_sampling_rate,
    )


def serve(options: config_lib.ServerOptions) -> int:
    """Runs the server until SIGINT or SIGTERM; prints where it listens and what it serves.

    Raises:
        ConfigError: When a port cannot be bound.
    """
    from serving.manager import State
    from serving.server import ModelServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop.set())
    server = ModelServer(options)
    try:
        server.start()
    except OSError as error:
        raise config_lib.ConfigError(f"cannot start the server: {error}") from None
    try:
        for model in options.models:
            states = server.core.manager.version_states(model.name)
            available = sorted(v for v, s in states.items() if s.state == State.AVAILABLE)
            print(f"dlforge: serving {model.name} from {model.base_path}, versions {available}")
        print(f"dlforge: gRPC at {options.host}:{server.grpc_port}", flush=True)
        if server.rest_port is not None:
            print(f"dlforge: REST at http://{options.host}:{server.rest_port}", flush=True)
        stop.wait()
        print("dlforge: shutting down", flush=True)
    finally:
        server.stop()
    return 0


def load_input(path: str, image_side: int | None = None) -> np.ndarray:
    """Rows to send, from a .json (rows, or a body with `instances`/`inputs`), .npy or image.

    An image becomes one row of `image_side`**2 pixel values on the digits scale (0..16, ink
    high), as the dense signature of an image model takes them.

    Raises:
        InputError: Naming the file, what was expected and what was found.
    """
    extension = os.path.splitext(path)[1].lower()
    try:
        if extension == ".npy":
            rows = np.load(path, allow_pickle=False)
        elif extension == ".json":
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
            if isinstance(document, dict):
                document = document.get("instances", document.get("inputs"))
            rows = np.asarray(document, dtype=np.float32)
        elif extension in IMAGE_EXTENSIONS:
            rows = _image_row(path, image_side)
        else:
            raise InputError(
                f"{path}: expected a .json, .npy or image ({', '.join(IMAGE_EXTENSIONS)}) file, "
                f"received {extension or 'no extension'}"
            )
    except (OSError, ValueError, TypeError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"{path}: cannot read it as {extension} rows: {error}") from None
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.ndim != 2 or not np.issubdtype(rows.dtype, np.number):
        raise InputError(
            f"{path}: expected numeric rows (a 2-D array), received shape {rows.shape} of "
            f"{rows.dtype}"
        )
    return rows.astype(np.float32)


def _image_row(path: str, image_side: int | None) -> np.ndarray:
    from PIL import Image

    from models.data.digits import PIXEL_MAX

    if image_side is None:
        raise InputError(f"{path}: the model's dense input is not a square image; send numbers")
    with Image.open(path) as image:
        gray = np.asarray(image.convert("L").resize((image_side, image_side)), np.float32)
    ink = 255.0 - gray if gray.mean() > 127 else gray  # Dark ink on light paper is inverted.
    return (ink / 255.0 * PIXEL_MAX).reshape(1, -1)


def _image_side(client: PredictionClient, model: str, signature_name: str) -> int | None:
    signature = client.metadata(model)["metadata"]["signature_def"]["signature_def"].get(
        signature_name, {}
    )
    for info in signature.get("inputs", {}).values():
        dims = [int(dim["size"]) for dim in info.get("tensor_shape", {}).get("dim", [])]
        if len(dims) == 2 and dims[1] > 0 and math.isqrt(dims[1]) ** 2 == dims[1]:
            return math.isqrt(dims[1])
    return None


def predict(
    *,
    server: str,
    model: str,
    input_path: str,
    use_grpc: bool,
    signature_name: str,
    labels_path: str | None,
) -> list[str]:
    """Sends the rows of a file to a server and returns one printable line per row.

    Raises:
        InputError: On an unreadable input or labels file.
        ClientError: On the server's refusal (its status and message).
        ValueError: On a malformed server address.
    """
    labels = _read_labels(labels_path) if labels_path else None
    with PredictionClient(server, protocol="grpc" if use_grpc else "rest") as client:
        side = None
        if os.path.splitext(input_path)[1].lower() in IMAGE_EXTENSIONS:
            side = _image_side(client, model, signature_name)
        rows = load_input(input_path, side)
        prediction = client.predict(model, rows, signature_name=signature_name)
    outputs = prediction.outputs
    if "class_ids" not in outputs:
        raise ClientError(
            "output", f"expected a classifier with a 'class_ids' output, received {sorted(outputs)}"
        )
    lines = []
    if prediction.version is not None:
        lines.append(f"model {model} version {prediction.version}")
    probabilities = outputs.get("probabilities")
    for row, class_id in enumerate(np.asarray(outputs["class_ids"]).reshape(-1)):
        class_id = int(class_id)
        name = labels[class_id] if labels and class_id < len(labels) else str(class_id)
        shown = (
            f" (probability {float(probabilities[row][class_id]):.3f})"
            if probabilities is not None
            else ""
        )
        lines.append(f"{row}: {name}{shown}")
    return lines


def _read_labels(path: str) -> Sequence[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise InputError(f"--labels: cannot read {path}: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(document, dict):
        document = document.get("labels")
    if not isinstance(document, list):
        raise InputError(f"{path}: expected a JSON list of label names or one per line")
    return [str(label) for label in document]
