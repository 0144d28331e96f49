"""Blesses a forecaster only if it beats the seasonal-naive forecast on the test split.

The seasonal-naive RMSE is computed in the same run, from the raw test windows ExampleGen wrote
(each window's `lag_52` is its forecast); the model's RMSE (and MAE, when configured) comes
from the Evaluator's TFMA metrics on the same split. The output blessing is laid out as TFX's
Evaluator lays out its own (a `BLESSED` or `NOT_BLESSED` file under the URI; the component sets
the `blessed` custom property), so the Pusher and the latest-blessed-model resolver read it.

Paths may be local folders or object-store URIs (`components.storage`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from components import storage
from components.anomaly_gate.executor import markdown_table
from models.data import co2

BLESSED_FILE = "BLESSED"
NOT_BLESSED_FILE = "NOT_BLESSED"
REPORT_FILE = "report.json"
TEST_SPLIT = "test"
# TFMA's names of the metrics of tfma.MetricConfig(class_name="RootMeanSquaredError") and
# "MeanAbsoluteError".
RMSE_METRIC = "root_mean_squared_error"
MAE_METRIC = "mean_absolute_error"
# TFMA's model name of the candidate when the Evaluator also evaluates a baseline model.
CANDIDATE_MODEL = "candidate"


@dataclass(frozen=True)
class Verdict:
    """What the gate decided, and the figures it decided on (ppm)."""

    blessed: bool
    reason: str
    evaluator_blessed: bool
    model_rmse: float
    model_mae: float | None
    seasonal_naive_rmse: float
    seasonal_naive_mae: float
    test_windows: int


def read_windows(split_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads ExampleGen's gzipped TFRecords of raw co2 windows in a split folder.

    Args:
        split_dir: The split's folder, e.g. `<examples uri>/Split-test`.

    Returns:
        (lags float64 [n, LOOKBACK], oldest first, targets float64 [n]).

    Raises:
        FileNotFoundError: If the folder holds no files.
        ValueError: If an example lacks a lag or the target.
    """
    files = sorted(tf.io.gfile.glob(storage.join(split_dir, "*")))
    if not files:
        raise FileNotFoundError(f"Expected ExampleGen's TFRecord files in {split_dir}, found none.")
    keys = [*co2.FEATURE_KEYS, co2.LABEL_KEY]
    spec = {key: tf.io.FixedLenFeature([1], tf.float32) for key in keys}
    rows = []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(512):
        try:
            features = tf.io.parse_example(batch, spec)
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(
                f"Expected examples with the float features {keys[0]}..{keys[-2]} and "
                f"{co2.LABEL_KEY} in {split_dir}, received: {error.message.splitlines()[0]}"
            ) from None
        rows.append(np.concatenate([features[key].numpy() for key in keys], axis=1))
    table = np.concatenate(rows).astype(np.float64)
    return table[:, : co2.LOOKBACK], table[:, co2.LOOKBACK]


def read_model_errors(evaluation_dir: str) -> tuple[float, float | None]:
    """The candidate model's RMSE and MAE on the overall slice of a TFMA evaluation.

    Args:
        evaluation_dir: The Evaluator's `evaluation` artifact URI (TFMA's output path).

    Returns:
        (rmse, mae); mae is None when the evaluation did not compute it.

    Raises:
        ValueError: If the evaluation has no RMSE of the overall slice.
    """
    import tensorflow_model_analysis as tfma

    found: dict[str, float] = {}
    for metrics in tfma.load_metrics(evaluation_dir):
        if metrics.slice_key.single_slice_keys:
            continue  # Only the overall slice.
        for item in metrics.metric_keys_and_values:
            key = item.key
            if key.is_diff or key.model_name not in ("", CANDIDATE_MODEL):
                continue  # Not the candidate's own value: a baseline's, or a difference.
            if key.name in (RMSE_METRIC, MAE_METRIC) and item.value.HasField("double_value"):
                found[key.name] = item.value.double_value.value
    if RMSE_METRIC not in found:
        raise ValueError(
            f"Expected the metric {RMSE_METRIC!r} of the overall slice in the evaluation at "
            f"{evaluation_dir} (tfma.MetricConfig(class_name='RootMeanSquaredError')), found "
            f"{sorted(found) or 'none'}."
        )
    return found[RMSE_METRIC], found.get(MAE_METRIC)


def decide(
    *,
    evaluator_blessed: bool,
    model_rmse: float,
    model_mae: float | None,
    lags: np.ndarray,
    targets: np.ndarray,
) -> Verdict:
    """Blesses the model only if the Evaluator did and its RMSE is below the seasonal naive's.

    Args:
        evaluator_blessed: Whether the Evaluator blessed the model.
        model_rmse: The model's RMSE on the test split (ppm).
        model_mae: The model's MAE on the test split, if known.
        lags: The test windows [n, LOOKBACK].
        targets: Their targets [n].

    Returns:
        The verdict, with its reason in words.
    """
    naive = co2.seasonal_naive_errors(lags, targets)
    beats = model_rmse < naive.rmse
    comparison = (
        f"test RMSE {model_rmse:.4f} ppm {'<' if beats else '>='} seasonal naive "
        f"{naive.rmse:.4f} ppm"
    )
    if not evaluator_blessed:
        reason = f"the Evaluator did not bless the model ({comparison})"
    elif not beats:
        reason = f"the model does not beat the seasonal-naive forecast: {comparison}"
    else:
        reason = f"the model beats the seasonal-naive forecast: {comparison}"
    return Verdict(
        blessed=evaluator_blessed and beats,
        reason=reason,
        evaluator_blessed=evaluator_blessed,
        model_rmse=float(model_rmse),
        model_mae=None if model_mae is None else float(model_mae),
        seasonal_naive_rmse=naive.rmse,
        seasonal_naive_mae=naive.mae,
        test_windows=naive.count,
    )


def run_gate(
    *,
    evaluator_blessed: bool,
    examples_dir: str,
    evaluation_dir: str,
    blessing_dir: str,
    report_dir: str,
) -> Verdict:
    """Decides, then writes the blessing file and the report.

    Args:
        evaluator_blessed: Whether the Evaluator blessed the model.
        examples_dir: ExampleGen's `examples` artifact URI; its `Split-test` folder is read.
        evaluation_dir: The Evaluator's `evaluation` artifact URI.
        blessing_dir: The output blessing's URI: receives `BLESSED` or `NOT_BLESSED`.
        report_dir: Receives `report.json` with the verdict and both sets of figures.

    Returns:
        The verdict.
    """
    lags, targets = read_windows(storage.join(examples_dir, f"Split-{TEST_SPLIT}"))
    model_rmse, model_mae = read_model_errors(evaluation_dir)
    verdict = decide(
        evaluator_blessed=evaluator_blessed,
        model_rmse=model_rmse,
        model_mae=model_mae,
        lags=lags,
        targets=targets,
    )
    marker = BLESSED_FILE if verdict.blessed else NOT_BLESSED_FILE
    storage.write_text(storage.join(blessing_dir, marker), "")
    storage.write_json(storage.join(report_dir, REPORT_FILE), asdict(verdict))
    return verdict


def metric_values(verdict: Verdict) -> dict[str, float]:
    """The figures the gate decided on (ppm; the window count; 1 or 0 for blessed), for the
    Kubeflow and Vertex consoles."""
    values = {
        "blessed": float(verdict.blessed),
        "model_rmse": verdict.model_rmse,
        "seasonal_naive_rmse": verdict.seasonal_naive_rmse,
        "seasonal_naive_mae": verdict.seasonal_naive_mae,
        "test_windows": float(verdict.test_windows),
    }
    if verdict.model_mae is not None:
        values["model_mae"] = verdict.model_mae
    return values


def summary_markdown(verdict: Verdict) -> str:
    """The verdict, its reason and both forecasts' test errors as Markdown."""
    model_mae = "not computed" if verdict.model_mae is None else f"{verdict.model_mae:.4f}"
    return (
        f"## Seasonal-naive baseline: {'blessed' if verdict.blessed else 'not blessed'}\n\n"
        f"{verdict.reason[:1].upper()}{verdict.reason[1:]}. Test windows: "
        f"{verdict.test_windows}.\n\n"
        + markdown_table(
            ("forecast", "test RMSE (ppm)", "test MAE (ppm)"),
            [
                ("model", f"{verdict.model_rmse:.4f}", model_mae),
                (
                    "seasonal naive (the value 52 weeks earlier)",
                    f"{verdict.seasonal_naive_rmse:.4f}",
                    f"{verdict.seasonal_naive_mae:.4f}",
                ),
            ],
        )
    )
