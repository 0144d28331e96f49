"""Benchmark of the device-model recipes on the digits CNN: size, accuracy and latency.

Run with `.venv/bin/python benchmarks/compress.py [--home DIR]`. It runs the digits pipeline
without tuning (the default CNN, 600 steps) in a fresh home, or takes the latest Trainer and
Transform outputs of `--home`, then builds every candidate from that one model side by side in
this process: the float SavedModel (its dense signature in TensorFlow), float TFLite,
dynamic-range, float16, int8 (per channel and per tensor) and int8-I/O post-training
quantization, QAT int8, pruning to 50% and 80% (+ int8, and 80% as float and per-tensor int8
TFLite too), clustering (16 centroids) + int8, and the ONNX
export in onnxruntime. Each is measured on the test split: accuracy, size, gzipped size and the
median latency of single examples. It prints one table, then the targets as ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import gzip
import os
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TARGETS = {
    "int8_size_ratio": 0.30,
    "qat_accuracy_drop": 0.01,
    "pruned_gzip_ratio": 1 / 3,
    "latency_ratio": 0.5,
}


@dataclasses.dataclass
class Row:
    name: str
    accuracy: float
    size_bytes: int
    gzipped_bytes: int
    latency_ms: float


def _latest(root: str, component: str, output: str) -> str:
    folders = glob.glob(os.path.join(root, component, output, "*"))
    if not folders:
        raise SystemExit(f"expected {component} outputs under {root}, found none: run first")
    return max(folders, key=lambda folder: int(os.path.basename(folder)))


def _gzipped_folder_bytes(folder: str) -> int:
    content = b"".join(
        open(os.path.join(root, name), "rb").read()  # noqa: SIM115 - small files, read once
        for root, _, names in sorted(os.walk(folder))
        for name in sorted(names)
    )
    return len(gzip.compress(content))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="dlforge home with a digits_cnn run (default: run one)")
    args = parser.parse_args()

    from pipelines import console
    from pipelines.config import PipelineConfig

    console.configure_logs(verbose=False)
    config = PipelineConfig(home=args.home or tempfile.mkdtemp(prefix="dlforge-compress-"))
    if not glob.glob(os.path.join(config.pipeline_root, "Trainer", "model", "*")):
        from pipelines.local_run import run_pipeline

        config = dataclasses.replace(config, tune=False)
        print(f"running {config.pipeline_name} (no tuning) in {config.home}", file=sys.stderr)
        with console.progress_only(verbose=False):
            summary = run_pipeline(config, progress=lambda line: print(line, file=sys.stderr))
        if summary.status != "complete":
            raise SystemExit(f"the pipeline run failed: {summary.error}")

    from tfx.utils import path_utils

    from components.compressor import executor
    from models import tasks
    from models.settings import CompressionSettings

    spec = tasks.get_task("digits")
    root = config.pipeline_root
    saved_model = path_utils.serving_model_path(_latest(root, "Trainer", "model"))
    examples = _latest(root, "CsvExampleGen", "examples")
    transformed = _latest(root, "Transform", "transformed_examples")
    train, _ = executor.read_examples(
        [os.path.join(examples, "Split-train", "*")], spec.raw_feature_keys, spec.label_key
    )
    features, labels = executor.read_examples(
        [os.path.join(examples, "Split-test", "*")], spec.raw_feature_keys, spec.label_key
    )
    representative = train[: config.compression.representative_examples]
    training_data = executor.TrainingData(
        transform_graph_dir=_latest(root, "Transform", "transform_graph"),
        train_file_patterns=(os.path.join(transformed, "Split-train", "*"),),
        batch_size=config.trainer.batch_size,
    )

    rows = []
    accuracy, latency = executor.evaluate_saved_model(saved_model, features, labels)
    rows.append(
        Row(
            "float SavedModel (TensorFlow)",
            accuracy,
            executor.directory_bytes(saved_model),
            _gzipped_folder_bytes(saved_model),
            latency,
        )
    )

    def measure(name: str, model: bytes) -> None:
        accuracy, latency = executor.evaluate_tflite(model, features, labels)
        rows.append(Row(name, accuracy, len(model), len(gzip.compress(model)), latency))
        print(f"  measured {name}", file=sys.stderr)

    for conversion in executor.CONVERSIONS:
        measure(f"{conversion} TFLite", executor.convert(saved_model, conversion, representative))
    with tempfile.TemporaryDirectory() as workdir:
        for name, rewrite, settings, conversions in (
            ("QAT", "qat", CompressionSettings(), ("int8",)),
            ("pruned 50%", "prune", CompressionSettings(pruning_sparsity=0.5), ("int8",)),
            (
                "pruned 80%",
                "prune",
                CompressionSettings(pruning_sparsity=0.8),
                ("float", "int8", "int8_per_tensor"),
            ),
            ("clustered 16", "cluster", CompressionSettings(clusters=16), ("int8",)),
        ):
            rewritten = os.path.join(workdir, name.replace(" ", "_").replace("%", ""))
            executor.rewrite_and_export(
                saved_model, rewrite, settings, training_data, spec, rewritten
            )
            for conversion in conversions:
                model = executor.convert(rewritten, conversion, representative)
                measure(f"{name} + {conversion} TFLite", model)
    onnx_model = executor.export_onnx(saved_model)
    onnx = executor.check_onnx(onnx_model, saved_model, features, labels)
    rows.append(
        Row(
            "float ONNX (onnxruntime)",
            onnx["accuracy"],
            len(onnx_model),
            len(gzip.compress(onnx_model)),
            onnx["latency_ms_p50"],
        )
    )

    print(f"digits CNN, {len(labels)} test examples; latency: median of single examples")
    header = ("model", "accuracy", "size KB", "gzip KB", "p50 ms")
    width = max(len(row.name) for row in rows)
    print(f"{header[0]:<{width}}  {header[1]:>8}  {header[2]:>8}  {header[3]:>8}  {header[4]:>7}")
    for row in rows:
        print(
            f"{row.name:<{width}}  {row.accuracy:>8.4f}  {row.size_bytes / 1024:>8.1f}  "
            f"{row.gzipped_bytes / 1024:>8.1f}  {row.latency_ms:>7.3f}"
        )
    print(f"ONNX parity: max |probability difference| {onnx['max_abs_difference']:.2e}")

    by_name = {row.name: row for row in rows}
    reference = by_name["float SavedModel (TensorFlow)"]
    float_tflite = by_name["float TFLite"]
    int8 = by_name["int8 TFLite"]
    int8_per_tensor = by_name["int8_per_tensor TFLite"]
    pruned_int8 = by_name["pruned 80% + int8 TFLite"]
    pruned_float = by_name["pruned 80% + float TFLite"]
    targets = [
        _target(
            "int8 size / float TFLite size",
            int8.size_bytes / float_tflite.size_bytes,
            TARGETS["int8_size_ratio"],
        ),
        _target(
            "int8 per-tensor size / float TFLite size",
            int8_per_tensor.size_bytes / float_tflite.size_bytes,
            TARGETS["int8_size_ratio"],
        ),
        _target(
            "int8 per-tensor accuracy drop vs SavedModel",
            reference.accuracy - int8_per_tensor.accuracy,
            TARGETS["qat_accuracy_drop"],
        ),
        _target(
            "QAT int8 accuracy drop vs SavedModel",
            reference.accuracy - by_name["QAT + int8 TFLite"].accuracy,
            TARGETS["qat_accuracy_drop"],
        ),
        _target(
            "80%-pruned int8 gzip / int8 gzip",
            pruned_int8.gzipped_bytes / int8.gzipped_bytes,
            TARGETS["pruned_gzip_ratio"],
        ),
        _target(
            "80%-pruned per-tensor int8 gzip / same dense",
            by_name["pruned 80% + int8_per_tensor TFLite"].gzipped_bytes
            / int8_per_tensor.gzipped_bytes,
            TARGETS["pruned_gzip_ratio"],
        ),
        _target(
            "80%-pruned float gzip / float gzip",
            pruned_float.gzipped_bytes / float_tflite.gzipped_bytes,
            TARGETS["pruned_gzip_ratio"],
        ),
        _target(
            "float TFLite p50 / SavedModel p50",
            float_tflite.latency_ms / reference.latency_ms,
            TARGETS["latency_ratio"],
        ),
    ]
    width = max(len(row[0]) for row in targets)
    print(f"{'target (ratio)':<{width}}  {'value':>8}  {'target':>8}  met")
    for name, value, target, met in targets:
        print(f"{name:<{width}}  {value:>8.4f}  {target:>8}  {met}")
    return 0


def _target(name: str, value: float, target: float) -> tuple[str, float, str, str]:
    return name, value, f"<= {target:.3g}", "yes" if value <= target else "NO"


if __name__ == "__main__":
    sys.exit(main())
