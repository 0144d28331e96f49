"""Validate -> rewrite -> validate: TFLite candidates of a SavedModel, measured on the test split.

A recipe (`models.settings.COMPRESSION_RECIPES`) is an optional training-time rewrite of the
Keras model (TF-MOT pruning, clustering, quantization-aware training; `models.compression`),
fine-tuned on Transform's train split and re-exported with the serving signatures of
`models.export`, then a TFLite conversion of the dense raw-feature signature (the preprocessing
inside, so a device gets the same raw values a user has) with builtin ops only. Every candidate
runs in the TFLite interpreter on the test split; its accuracy, size, gzipped size and
single-example latency are recorded next to the SavedModel's. The smallest candidate whose
accuracy is at most `accuracy_budget` below the SavedModel's is chosen; if none is, the device
model is not blessed.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import html
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime
import tensorflow as tf
import tensorflow_transform as tft
import tf2onnx

from components import storage
from components.compressor import plot
from models import compression, export, training
from models.keras_lib import keras
from models.settings import COMPRESSION_RECIPES, CompressionSettings
from models.spec import TaskSpec

CONVERSIONS = ("float", "dynamic_range", "float16", "int8", "int8_per_tensor", "int8_io")
MODEL_FILE = "model.tflite"
METADATA_FILE = "metadata.json"
REPORT_FILE = "report.json"
PLOT_FILE = "report.png"
ONNX_FILE = "model.onnx"
ONNX_OPSET = 17
# Largest difference of an ONNX probability from the SavedModel's that passes the parity check.
ONNX_TOLERANCE = 1e-5
LATENCY_EXAMPLES = 100


@dataclass(frozen=True)
class Candidate:
    """One compressed model as measured on the test split."""

    recipe: str
    size_bytes: int
    gzipped_bytes: int
    accuracy: float
    latency_ms_p50: float


@dataclass(frozen=True)
class TrainingData:
    """What the TF-MOT recipes fine-tune on: Transform's output.

    Attributes:
        transform_graph_dir: The transform graph (for the feature spec and the re-export).
        train_file_patterns: Transformed train examples (gzipped TFRecords).
        batch_size: Examples per fine-tuning step.
    """

    transform_graph_dir: str
    train_file_patterns: tuple[str, ...]
    batch_size: int


def read_examples(
    file_patterns: Sequence[str], feature_keys: Sequence[str], label_key: str
) -> tuple[np.ndarray, np.ndarray]:
    """Reads ExampleGen's gzipped tf.Examples of integer raw features.

    Returns:
        (float32 features [n, len(feature_keys)] in `feature_keys` order, int64 labels [n]).

    Raises:
        ValueError: If the patterns match no file.
    """
    files = sorted(path for pattern in file_patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"Expected TFRecord files matching {list(file_patterns)}, found none.")
    spec = {key: tf.io.FixedLenFeature([], tf.int64) for key in (*feature_keys, label_key)}
    features, labels = [], []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1024):
        parsed = tf.io.parse_example(batch, spec)
        features.append(np.stack([parsed[key].numpy() for key in feature_keys], axis=1))
        labels.append(parsed[label_key].numpy())
    return np.concatenate(features).astype(np.float32), np.concatenate(labels)


def convert(saved_model_dir: str, conversion: str, representative: np.ndarray) -> bytes:
    """Converts the dense signature of a SavedModel to TFLite, builtin ops only.

    Args:
        saved_model_dir: The exported model.
        conversion: "float" (no optimisation), "dynamic_range" (int8 weights), "float16"
            (float16 weights), "int8" (int8 weights and activations calibrated on
            `representative`, float input and output), "int8_per_tensor" (the same with one
            scale per weight tensor instead of one per output channel) or "int8_io" (as "int8"
            with int8 input and output, whose scale and zero point say how to quantize raw
            values).
        representative: Raw feature rows for calibration.

    Returns:
        The TFLite flatbuffer.

    Raises:
        ValueError: For an unknown conversion.
    """
    if conversion not in CONVERSIONS:
        raise ValueError(f"Expected a conversion in {list(CONVERSIONS)}, received {conversion!r}.")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[export.DENSE_SIGNATURE]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if conversion != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if conversion == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if conversion in ("int8", "int8_per_tensor", "int8_io"):

        def calibration_rows():
            for row in representative:
                yield {export.DENSE_INPUT: row[None].astype(np.float32)}

        converter.representative_dataset = calibration_rows
    if conversion == "int8_per_tensor":
        # TF 2.16's only switch for it (the converter quantizes per channel by default); some
        # accelerators and TFLite Micro's fully connected kernels take one scale per tensor.
        converter._experimental_disable_per_channel = True
    if conversion == "int8_io":
        # Integer-only kernels: conversion fails rather than leave a float op behind.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def rewrite_and_export(
    saved_model_dir: str,
    rewrite: str,
    settings: CompressionSettings,
    training_data: TrainingData,
    spec: TaskSpec,
    output_dir: str,
) -> None:
    """Fine-tunes the SavedModel's Keras model with one TF-MOT rewrite and exports it.

    The export has the same two signatures as the Trainer's (`models.export`), so the rewritten
    model converts and serves like the original.
    """
    transform_output = tft.TFTransformOutput(training_data.transform_graph_dir)
    dataset = training.make_dataset(
        list(training_data.train_file_patterns),
        transform_output.transformed_feature_spec(),
        label_key=spec.label_key,
        batch_size=training_data.batch_size,
        training=True,
    )
    keras.utils.set_random_seed(0)
    model = compression.rewrite(
        compression.load_model(saved_model_dir),
        rewrite,
        dataset,
        compression.FineTuning(settings.fine_tune_steps, settings.fine_tune_learning_rate),
        sparsity=settings.pruning_sparsity,
        clusters=settings.clusters,
    )
    training.save_model(model, transform_output, spec, output_dir)


def build_candidate(
    saved_model_dir: str,
    recipe: str,
    settings: CompressionSettings,
    representative: np.ndarray,
    *,
    training_data: TrainingData | None,
    spec: TaskSpec,
) -> bytes:
    """The TFLite model of one recipe (rewritten first when the recipe has a rewrite).

    Raises:
        ValueError: For an unknown recipe, or a rewrite without training data.
    """
    if recipe not in COMPRESSION_RECIPES:
        raise ValueError(f"Expected a recipe in {list(COMPRESSION_RECIPES)}, received {recipe!r}.")
    rewrite, conversion = COMPRESSION_RECIPES[recipe]
    if not rewrite:
        return convert(saved_model_dir, conversion, representative)
    if training_data is None:
        raise ValueError(
            f"Expected training data for recipe {recipe!r} ({rewrite}), received none."
        )
    with tempfile.TemporaryDirectory(prefix=f"{recipe}-") as workdir:
        rewritten = os.path.join(workdir, "saved_model")
        rewrite_and_export(saved_model_dir, rewrite, settings, training_data, spec, rewritten)
        return convert(rewritten, conversion, representative)


def _latency_ms_p50(predict_one: Callable, rows: np.ndarray) -> float:
    predict_one(rows[:1])
    timings = []
    for row in rows[:LATENCY_EXAMPLES]:
        started = time.perf_counter()
        predict_one(row[None])
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.median(timings))


def quantize_input(rows: np.ndarray, detail: dict) -> np.ndarray:
    """Raw float rows as the model's input dtype: quantized with its scale and zero point when
    the input is an integer tensor (the same rule as `models.edge_runner`)."""
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return rows.astype(dtype)
    scale, zero_point = detail["quantization"]
    limits = np.iinfo(dtype)
    quantized = np.round(rows.astype(np.float64) / scale) + zero_point
    return np.clip(quantized, limits.min, limits.max).astype(dtype)


def tflite_predictor(model: bytes) -> Callable[[np.ndarray], np.ndarray]:
    """A function from raw float rows to class ids, through the TFLite interpreter."""
    runner = tf.lite.Interpreter(model_content=model).get_signature_runner(export.DENSE_SIGNATURE)
    detail = runner.get_input_details()[export.DENSE_INPUT]

    def predict(rows: np.ndarray) -> np.ndarray:
        return runner(**{export.DENSE_INPUT: quantize_input(rows, detail)})[export.CLASS_IDS]

    return predict


def evaluate_tflite(model: bytes, features: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Accuracy of a TFLite model on the rows, and its median single-example latency (ms)."""
    predict = tflite_predictor(model)
    accuracy = float(np.mean(predict(features) == labels))
    return accuracy, _latency_ms_p50(predict, features)


def evaluate_saved_model(
    saved_model_dir: str, features: np.ndarray, labels: np.ndarray
) -> tuple[float, float]:
    """The same measures for the SavedModel's dense signature (the reference)."""
    signature = tf.saved_model.load(saved_model_dir).signatures[export.DENSE_SIGNATURE]

    def predict(rows):
        return signature(**{export.DENSE_INPUT: tf.constant(rows)})[export.CLASS_IDS].numpy()

    accuracy = float(np.mean(predict(features) == labels))
    return accuracy, _latency_ms_p50(predict, features)


def export_onnx(saved_model_dir: str) -> bytes:
    """Converts the SavedModel's dense signature to an ONNX model (tf2onnx), same input name."""
    loaded = tf.saved_model.load(saved_model_dir)
    signature = loaded.signatures[export.DENSE_SIGNATURE]
    spec = signature.structured_input_signature[1][export.DENSE_INPUT]
    # tf2onnx traces a tf.function; `loaded` must stay alive while it does (it owns the weights).
    function = tf.function(lambda inputs: signature(**{export.DENSE_INPUT: inputs}))
    proto, _ = tf2onnx.convert.from_function(
        function,
        input_signature=[tf.TensorSpec(spec.shape, spec.dtype, name=export.DENSE_INPUT)],
        opset=ONNX_OPSET,
    )
    return proto.SerializeToString()


def check_onnx(
    model: bytes, saved_model_dir: str, features: np.ndarray, labels: np.ndarray
) -> dict:
    """Runs an ONNX model in onnxruntime next to the SavedModel's dense signature.

    Returns:
        Size, accuracy and single-example latency of the ONNX model, the largest probability
        difference from the SavedModel, and `parity`: whether it is within `ONNX_TOLERANCE`
        and every class id agrees.
    """
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    output_names = [output.name for output in session.get_outputs()]

    def predict(rows):
        return dict(zip(output_names, session.run(None, {export.DENSE_INPUT: rows}), strict=True))

    outputs = predict(features)
    signature = tf.saved_model.load(saved_model_dir).signatures[export.DENSE_SIGNATURE]
    expected = signature(**{export.DENSE_INPUT: tf.constant(features)})
    difference = float(
        np.max(np.abs(outputs[export.PROBABILITIES] - expected[export.PROBABILITIES].numpy()))
    )
    agree = bool(np.array_equal(outputs[export.CLASS_IDS], expected[export.CLASS_IDS].numpy()))
    return {
        "size_bytes": len(model),
        "accuracy": round(float(np.mean(outputs[export.CLASS_IDS] == labels)), 4),
        "latency_ms_p50": round(_latency_ms_p50(predict, features), 4),
        "max_abs_difference": difference,
        "parity": agree and difference <= ONNX_TOLERANCE,
    }


def directory_bytes(directory: str) -> int:
    """Total size of the files under a folder or URI (a SavedModel's size)."""
    return storage.tree_bytes(directory)


def choose(
    candidates: Sequence[Candidate], reference_accuracy: float, accuracy_budget: float
) -> Candidate | None:
    """The smallest candidate whose accuracy drop is within the budget, or None."""
    within = [
        candidate
        for candidate in candidates
        if candidate.accuracy >= reference_accuracy - accuracy_budget - 1e-9
    ]
    return min(within, key=lambda candidate: candidate.size_bytes, default=None)


def _tensor_metadata(name: str, detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    return {
        "name": name,
        "shape": [int(size) for size in detail["shape_signature"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)},
    }


def tensor_metadata(model: bytes) -> dict:
    """Name, shape, dtype and quantization of a TFLite model's dense input and outputs.

    A quantization scale of 0 means the tensor is not quantized; otherwise a real value `x` is
    the integer `round(x / scale) + zero_point`.
    """
    runner = tf.lite.Interpreter(model_content=model).get_signature_runner(export.DENSE_SIGNATURE)
    return {
        "input": {
            "signature": export.DENSE_SIGNATURE,
            **_tensor_metadata(export.DENSE_INPUT, runner.get_input_details()[export.DENSE_INPUT]),
        },
        "outputs": [
            _tensor_metadata(name, detail)
            for name, detail in sorted(runner.get_output_details().items())
        ],
    }


def compress(
    saved_model_dir: str,
    *,
    settings: CompressionSettings,
    representative: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    output_dir: str,
    metadata: dict,
    spec: TaskSpec,
    training_data: TrainingData | None = None,
    summary_path: str | None = None,
) -> dict:
    """Builds every candidate, measures it, and writes the chosen one with its report.

    Writes `report.json` (the SavedModel reference, every candidate, the choice), `report.png`
    (size against accuracy of every candidate), the same two as a self-contained HTML page at
    `summary_path` when given, and, when a candidate is chosen, `model.tflite`
    and `metadata.json` (input and output description, the recipe, its measures and
    `metadata`) under `output_dir`. With `settings.onnx`, also `model.onnx` when it passes its
    parity check against the SavedModel (the check is in the report either way).

    Args:
        saved_model_dir: The blessed SavedModel.
        settings: Recipes, budget and the TF-MOT parameters.
        representative: Raw rows for int8 calibration (from the train split).
        test_features: Raw rows of the test split.
        test_labels: Their labels.
        output_dir: The device model artifact's folder (a local folder or a URI).
        metadata: Extra facts for `metadata.json` (labels, source model).
        spec: The task (label key for the fine-tuning data).
        training_data: Transform's output, needed by the recipes that fine-tune.
        summary_path: Where the HTML summary goes (a file), if anywhere.

    Returns:
        The report.
    """
    reference_accuracy, reference_latency = evaluate_saved_model(
        saved_model_dir, test_features, test_labels
    )
    candidates, models = [], {}
    for recipe in settings.recipes:
        models[recipe] = build_candidate(
            saved_model_dir,
            recipe,
            settings,
            representative,
            training_data=training_data,
            spec=spec,
        )
        accuracy, latency = evaluate_tflite(models[recipe], test_features, test_labels)
        candidates.append(
            Candidate(
                recipe=recipe,
                size_bytes=len(models[recipe]),
                gzipped_bytes=len(gzip.compress(models[recipe])),
                accuracy=round(accuracy, 4),
                latency_ms_p50=round(latency, 4),
            )
        )
    chosen = choose(candidates, reference_accuracy, settings.accuracy_budget)
    report = {
        "reference": {
            "format": "saved_model",
            "size_bytes": directory_bytes(saved_model_dir),
            "accuracy": round(reference_accuracy, 4),
            "latency_ms_p50": round(reference_latency, 4),
        },
        "test_examples": len(test_labels),
        "accuracy_budget": settings.accuracy_budget,
        "settings": settings.to_dict(),
        "candidates": [dataclasses.asdict(candidate) for candidate in candidates],
        "chosen": chosen.recipe if chosen else None,
    }
    if settings.onnx:
        onnx_model = export_onnx(saved_model_dir)
        report["onnx"] = check_onnx(onnx_model, saved_model_dir, test_features, test_labels)
        if report["onnx"]["parity"]:
            storage.write_bytes(storage.join(output_dir, ONNX_FILE), onnx_model)
    if chosen is not None:
        storage.write_bytes(storage.join(output_dir, MODEL_FILE), models[chosen.recipe])
        storage.write_json(
            storage.join(output_dir, METADATA_FILE),
            {
                **tensor_metadata(models[chosen.recipe]),
                **metadata,
                **dataclasses.asdict(chosen),
            },
        )
    picture = plot.size_accuracy_png(report)
    storage.write_bytes(storage.join(output_dir, PLOT_FILE), picture)
    storage.write_json(storage.join(output_dir, REPORT_FILE), report)
    if summary_path:
        storage.write_text(summary_path, summary_html(report, picture))
    return report


def metric_values(report: dict) -> dict[str, float]:
    """The report's scalars for KFP's console: the SavedModel's and each candidate's accuracy,
    size (KB) and median latency (ms), named `<recipe>_<measure>`."""
    values = {}
    rows = [("saved_model", report["reference"])] + [
        (candidate["recipe"], candidate) for candidate in report["candidates"]
    ]
    for name, measures in rows:
        values[f"{name}_accuracy"] = measures["accuracy"]
        values[f"{name}_size_kb"] = round(measures["size_bytes"] / 1024, 1)
        values[f"{name}_latency_ms_p50"] = measures["latency_ms_p50"]
    if "onnx" in report:
        values["onnx_accuracy"] = report["onnx"]["accuracy"]
        values["onnx_max_abs_difference"] = report["onnx"]["max_abs_difference"]
    return values


def summary_html(report: dict, picture: bytes) -> str:
    """The report as one self-contained HTML page: the table of candidates and the plot
    (inline), for the Kubeflow and Vertex consoles."""
    floor = report["reference"]["accuracy"] - report["accuracy_budget"]
    rows = []
    for candidate in report["candidates"]:
        verdict = (
            "chosen"
            if candidate["recipe"] == report["chosen"]
            else (
                "within the budget" if candidate["accuracy"] >= floor - 1e-9 else "too inaccurate"
            )
        )
        rows.append(
            (
                candidate["recipe"],
                f"{candidate['size_bytes'] / 1024:.1f}",
                f"{candidate['gzipped_bytes'] / 1024:.1f}",
                f"{candidate['accuracy']:.4f}",
                f"{candidate['latency_ms_p50']:.3f}",
                verdict,
            )
        )
    reference = report["reference"]
    rows.append(
        (
            "SavedModel (reference)",
            f"{reference['size_bytes'] / 1024:.1f}",
            "",
            f"{reference['accuracy']:.4f}",
            f"{reference['latency_ms_p50']:.3f}",
            "",
        )
    )
    headers = ("model", "size (KB)", "gzipped (KB)", "test accuracy", "latency p50 (ms)", "")
    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    chosen = report["chosen"] or "none (no candidate within the accuracy budget)"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Device model candidates"
        "</title><style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}</style></head><body>"
        f"<h2>Device model candidates</h2><p>Chosen: <b>{html.escape(chosen)}</b>. "
        f"{report['test_examples']} test examples; accuracy budget "
        f"{report['accuracy_budget']:g} below the SavedModel.</p>"
        "<table><tr>" + "".join(f"<th>{html.escape(item)}</th>" for item in headers) + "</tr>"
        f"{table}</table><p><img alt='size against accuracy' "
        f"src='data:image/png;base64,{base64.b64encode(picture).decode('ascii')}'></p>"
        "</body></html>\n"
    )


def skipped_summary_html(reason: str) -> str:
    """The HTML summary of a Compressor run that built no candidate, saying why."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Device model candidates"
        f"</title></head><body><h2>Device model candidates</h2><p>{html.escape(reason)}</p>"
        "</body></html>\n"
    )
