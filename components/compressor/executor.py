"""Validate -> rewrite -> validate: TFLite candidates of a SavedModel, measured on the test split.

Each recipe converts the SavedModel's dense raw-feature signature (the transform graph inside,
so a device gets the same raw values a user has) to a TFLite model with builtin ops only. Every
candidate runs in the TFLite interpreter on the test split; its accuracy, size, gzipped size and
single-example latency are recorded next to the SavedModel's. The smallest candidate whose
accuracy is at most `accuracy_budget` below the SavedModel's is chosen; if none is, the device
model is not blessed.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from models import export
from models.files import write_json_atomically
from models.settings import COMPRESSION_RECIPES

RECIPES = COMPRESSION_RECIPES
MODEL_FILE = "model.tflite"
METADATA_FILE = "metadata.json"
REPORT_FILE = "report.json"
LATENCY_EXAMPLES = 100


@dataclass(frozen=True)
class Candidate:
    """One compressed model as measured on the test split."""

    recipe: str
    size_bytes: int
    gzipped_bytes: int
    accuracy: float
    latency_ms_p50: float


def read_examples(
    file_patterns: Sequence[str], feature_keys: Sequence[str], label_key: str
) -> tuple[np.ndarray, np.ndarray]:
    """Reads ExampleGen's gzipped tf.Examples of integer raw features.

    Returns:
        (float32 features [n, len(feature_keys)] in `feature_keys` order, int64 labels [n]).

    Raises:
        ValueError: If the patterns match no file.
    """
    files = sorted(path for pattern in file_patterns for path in glob.glob(pattern))
    if not files:
        raise ValueError(f"Expected TFRecord files matching {list(file_patterns)}, found none.")
    spec = {key: tf.io.FixedLenFeature([], tf.int64) for key in (*feature_keys, label_key)}
    features, labels = [], []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1024):
        parsed = tf.io.parse_example(batch, spec)
        features.append(np.stack([parsed[key].numpy() for key in feature_keys], axis=1))
        labels.append(parsed[label_key].numpy())
    return np.concatenate(features).astype(np.float32), np.concatenate(labels)


def convert(saved_model_dir: str, recipe: str, representative: np.ndarray) -> bytes:
    """Converts the dense signature of a SavedModel to TFLite with one recipe.

    Args:
        saved_model_dir: The exported model.
        recipe: "float" (no optimisation), "dynamic_range" (int8 weights), "float16"
            (float16 weights) or "int8" (int8 weights and activations, calibrated on
            `representative`, float input and output).
        representative: Raw feature rows for calibration.

    Returns:
        The TFLite flatbuffer.

    Raises:
        ValueError: For an unknown recipe.
    """
    if recipe not in RECIPES:
        raise ValueError(f"Expected a recipe in {list(RECIPES)}, received {recipe!r}.")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[export.DENSE_SIGNATURE]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if recipe != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if recipe == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if recipe == "int8":

        def calibration_rows():
            for row in representative:
                yield {export.DENSE_INPUT: row[None].astype(np.float32)}

        converter.representative_dataset = calibration_rows
    return converter.convert()


def _latency_ms_p50(predict_one, rows: np.ndarray) -> float:
    predict_one(rows[:1])
    timings = []
    for row in rows[:LATENCY_EXAMPLES]:
        started = time.perf_counter()
        predict_one(row[None])
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.median(timings))


def evaluate_tflite(model: bytes, features: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Accuracy of a TFLite model on the rows, and its median single-example latency (ms)."""
    interpreter = tf.lite.Interpreter(model_content=model)
    runner = interpreter.get_signature_runner(export.DENSE_SIGNATURE)

    def predict(rows):
        return runner(**{export.DENSE_INPUT: rows})[export.CLASS_IDS]

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


def input_metadata(model: bytes) -> dict:
    """Name, shape, dtype and quantization of a TFLite model's dense input."""
    interpreter = tf.lite.Interpreter(model_content=model)
    details = interpreter.get_signature_runner(export.DENSE_SIGNATURE).get_input_details()
    detail = details[export.DENSE_INPUT]
    scale, zero_point = detail["quantization"]
    return {
        "signature": export.DENSE_SIGNATURE,
        "name": export.DENSE_INPUT,
        "shape": [int(size) for size in detail["shape_signature"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)},
    }


def compress(
    saved_model_dir: str,
    *,
    representative: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    recipes: Sequence[str],
    accuracy_budget: float,
    output_dir: str,
    metadata: dict,
) -> dict:
    """Builds every candidate, measures it, and writes the chosen one with its report.

    Writes `report.json` (the SavedModel reference, every candidate, the choice) and, when a
    candidate is chosen, `model.tflite` and `metadata.json` (input description, the recipe,
    its measures and `metadata`) under `output_dir`.

    Args:
        saved_model_dir: The blessed SavedModel.
        representative: Raw rows for int8 calibration (from the train split).
        test_features: Raw rows of the test split.
        test_labels: Their labels.
        recipes: Recipes to try, from `RECIPES`.
        accuracy_budget: Largest accuracy drop (absolute) that is accepted.
        output_dir: The device model artifact's folder.
        metadata: Extra facts for `metadata.json` (labels, source model).

    Returns:
        The report.
    """
    reference_accuracy, reference_latency = evaluate_saved_model(
        saved_model_dir, test_features, test_labels
    )
    candidates, models = [], {}
    for recipe in recipes:
        models[recipe] = convert(saved_model_dir, recipe, representative)
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
    chosen = choose(candidates, reference_accuracy, accuracy_budget)
    report = {
        "reference": {
            "format": "saved_model",
            "accuracy": round(reference_accuracy, 4),
            "latency_ms_p50": round(reference_latency, 4),
        },
        "test_examples": len(test_labels),
        "accuracy_budget": accuracy_budget,
        "candidates": [dataclasses.asdict(candidate) for candidate in candidates],
        "chosen": chosen.recipe if chosen else None,
    }
    os.makedirs(output_dir, exist_ok=True)
    if chosen is not None:
        with open(os.path.join(output_dir, MODEL_FILE), "wb") as handle:
            handle.write(models[chosen.recipe])
        write_json_atomically(
            os.path.join(output_dir, METADATA_FILE),
            {
                "input": input_metadata(models[chosen.recipe]),
                "outputs": [export.PROBABILITIES, export.CLASS_IDS],
                **metadata,
                **dataclasses.asdict(chosen),
            },
        )
    write_json_atomically(os.path.join(output_dir, REPORT_FILE), report)
    return report
