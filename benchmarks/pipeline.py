"""Benchmark of the digits pipeline: cold and warm wall time, tuned accuracy, input throughput.

Run with `make bench` (or `.venv/bin/python benchmarks/pipeline.py [--home DIR]`). It runs, in a
fresh home: a cold run of the tuned CNN pipeline, an unchanged warm re-run (cache), a cold run of
the tuned MLP pipeline, then measures the Trainer's input throughput (examples/s of the tuned CNN
fed by `models.training.make_dataset` from Transform's TFRecords) against the same model fed from
an in-memory numpy array, side by side in this one process. It prints one table.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TARGETS = {
    "cnn_accuracy": 0.98,
    "cold_seconds": 300.0,
    "warm_ratio": 0.25,
    "throughput_ratio": 0.8,
}


def _run(config, label):
    from pipelines import console
    from pipelines.local_run import run_pipeline

    print(f"[{label}] running {config.pipeline_name} in {config.home}", file=sys.stderr)
    with console.progress_only(verbose=False):
        summary = run_pipeline(config, progress=lambda line: print(line, file=sys.stderr))
    if summary.status != "complete":
        raise SystemExit(f"[{label}] run failed: {summary.error}")
    return summary


def _throughput(config, steps: int, repeats: int) -> tuple[float, float]:
    """Examples/s of one model trained from TFRecords and from a numpy array, interleaved."""
    import numpy as np
    import tensorflow_transform as tft

    from models import registry, tasks, training

    spec = tasks.get_task("digits")
    root = config.pipeline_root
    transform_dir = sorted(glob.glob(os.path.join(root, "Transform", "transform_graph", "*")))[-1]
    examples_dir = sorted(glob.glob(os.path.join(root, "Transform", "transformed_examples", "*")))[
        -1
    ]
    feature_spec = tft.TFTransformOutput(transform_dir).transformed_feature_spec()
    pattern = os.path.join(examples_dir, "Split-train", "*")
    batch_size = config.trainer.batch_size
    from_records = training.make_dataset(
        [pattern], feature_spec, label_key=spec.label_key, batch_size=batch_size, training=True
    )
    features, labels = [], []
    for batch_features, batch_labels in training.make_dataset(
        [pattern], feature_spec, label_key=spec.label_key, batch_size=batch_size, training=False
    ):
        features.append(batch_features[spec.feature_key].numpy())
        labels.append(batch_labels.numpy())
    array_x, array_y = np.concatenate(features), np.concatenate(labels)

    model = registry.get_family(config.trainer.family).build_model(
        registry.make_hyperparameters(config.trainer.family), spec
    )
    steps_per_epoch = len(array_y) // batch_size

    def fit_records():
        model.fit(from_records, steps_per_epoch=steps, epochs=1, verbose=0)
        return steps * batch_size

    def fit_array():
        epochs = max(1, steps // steps_per_epoch)
        model.fit(
            {spec.feature_key: array_x}, array_y, batch_size=batch_size, epochs=epochs, verbose=0
        )
        return epochs * steps_per_epoch * batch_size

    fit_records(), fit_array()  # trace and warm both paths
    rates = {"records": [], "array": []}
    for _ in range(repeats):
        for name, fit in (("records", fit_records), ("array", fit_array)):
            started = time.perf_counter()
            examples = fit()
            rates[name].append(examples / (time.perf_counter() - started))
    return float(np.median(rates["records"])), float(np.median(rates["array"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="dlforge home to use (default: a new temporary folder)")
    parser.add_argument("--throughput-steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from models.settings import TrainerSettings
    from pipelines import console
    from pipelines.config import PipelineConfig

    console.configure_logs(verbose=False)
    home = args.home or tempfile.mkdtemp(prefix="dlforge-bench-")
    cnn = PipelineConfig(home=home, trainer=TrainerSettings(family="cnn"))
    mlp = PipelineConfig(home=home, trainer=TrainerSettings(family="mlp"))

    from pipelines.local_run import prepare_data

    prepare_data(cnn)  # written once, outside the timed runs
    cold = _run(cnn, "cold cnn")
    warm = _run(cnn, "warm cnn")
    mlp_run = _run(mlp, "cold mlp")
    records_rate, array_rate = _throughput(cnn, args.throughput_steps, args.repeats)

    rows = [("stage (cold, tuned CNN)", "seconds", "", "")]
    rows += [
        (f"  {stage}", f"{seconds:.1f}", "", "") for stage, seconds in cold.stage_seconds.items()
    ]
    warm_ratio = warm.total_seconds / cold.total_seconds
    throughput_ratio = records_rate / array_rate
    rows += [
        ("measure", "value", "target", "met"),
        _row("cold pipeline wall time (s)", cold.total_seconds, TARGETS["cold_seconds"], "<="),
        ("warm re-run wall time (s)", f"{warm.total_seconds:.1f}", "", ""),
        _row("warm / cold wall time", warm_ratio, TARGETS["warm_ratio"], "<="),
        _row(
            "tuned CNN test accuracy", cold.metrics["test_accuracy"], TARGETS["cnn_accuracy"], ">="
        ),
        ("tuned MLP test accuracy", f"{mlp_run.metrics['test_accuracy']:.4f}", "", ""),
        ("MLP cold pipeline wall time (s)", f"{mlp_run.total_seconds:.1f}", "", ""),
        ("Trainer input, TFRecords (examples/s)", f"{records_rate:,.0f}", "", ""),
        ("same model, numpy array (examples/s)", f"{array_rate:,.0f}", "", ""),
        _row("TFRecords / numpy throughput", throughput_ratio, TARGETS["throughput_ratio"], ">="),
    ]
    width = max(len(row[0]) for row in rows)
    for row in rows:
        print(f"{row[0]:<{width}}  {row[1]:>10}  {row[2]:>8}  {row[3]}")
    return 0


def _row(name: str, value: float, target: float, direction: str) -> tuple[str, str, str, str]:
    met = value <= target if direction == "<=" else value >= target
    return (name, f"{value:.4g}", f"{direction} {target:g}", "yes" if met else "NO")


if __name__ == "__main__":
    sys.exit(main())
