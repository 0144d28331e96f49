"""What the run report shows, gathered from ML Metadata and the artifacts of one run.

`collect` reads; `pipelines.report_html` renders. Each section is read from the artifact that
holds it, so a run that stopped early has the sections of the stages it reached.
"""

from __future__ import annotations

import base64
import glob
import json
import os
from dataclasses import dataclass, field

from pipelines import lineage, metadata

SAMPLE_PREDICTIONS = 24


@dataclass(frozen=True)
class StageView:
    """One stage of the run as a node of the pipeline graph."""

    node_id: str
    state: str
    seconds: float
    upstream: tuple[str, ...]


@dataclass(frozen=True)
class FeatureView:
    """A numeric feature's statistics in one split."""

    name: str
    count: int
    missing: int
    minimum: float
    maximum: float
    mean: float
    std_dev: float


@dataclass
class RunReport:
    """Everything the HTML report shows; a section is empty when its stage did not run."""

    run_id: str
    summary: dict
    stages: list[StageView]
    statistics: dict[str, list[FeatureView]] = field(default_factory=dict)
    label_counts: dict[str, dict[str, float]] = field(default_factory=dict)
    anomalies: dict[str, list[str]] = field(default_factory=dict)
    gate_reports: dict[str, dict] = field(default_factory=dict)
    tuner_trials: list[dict] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=dict)
    history_axis: str = "epoch"
    baseline_gate: dict = field(default_factory=dict)
    confusion: list[list[float]] = field(default_factory=list)
    baseline_diff: dict[str, float] = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)
    image_shape: tuple[int, ...] = ()
    compression: dict = field(default_factory=dict)
    compression_plots: list[str] = field(default_factory=list)
    pushes: list[dict] = field(default_factory=list)
    family_evaluation: dict = field(default_factory=dict)
    family_grids: dict[str, str] = field(default_factory=dict)


def collect(home: str, run_id: str | None = None, *, label_key: str = "label") -> RunReport:
    """Reads one run (the latest by default) of the home into a RunReport.

    Raises:
        LookupError: If the home has no ML Metadata store, no runs, or no run `run_id`.
    """
    path = os.path.join(home, "metadata.sqlite")
    if not os.path.exists(path):
        raise LookupError(f"no runs yet: expected ML Metadata at {path}, found no file")
    store = metadata.open_store(path)
    run = metadata.find_run(store, run_id)
    summary_path = os.path.join(home, "runs", run.run_id, "summary.json")
    summary = {}
    if os.path.exists(summary_path):
        with open(summary_path) as handle:
            summary = json.load(handle)
    report = RunReport(run_id=run.run_id, summary=summary, stages=_stages(store, run))
    outputs = {
        stage.node_id: metadata.output_artifacts(store, stage.execution_id)
        for stage in run.stages
        if stage.state in ("complete", "cached")
    }
    readers = {
        "StatisticsGen": lambda artifacts: _read_statistics(report, artifacts, label_key),
        "ExampleValidator": lambda artifacts: _read_anomalies(report, artifacts),
        "Tuner": lambda artifacts: _read_tuner(report, artifacts),
        "Trainer": lambda artifacts: _read_history(report, artifacts),
        "AgentTrainer": lambda artifacts: _read_agent_curve(report, artifacts),
        "Compressor": lambda artifacts: _read_compression(report, artifacts),
        "PolicyTFLite": lambda artifacts: _read_compression(report, artifacts),
        "BaselineGate": lambda artifacts: _read_baseline_gate(report, artifacts),
        "FamilyEvaluator": lambda artifacts: _read_family_evaluation(report, artifacts),
    }
    for node_id, artifacts in outputs.items():
        if node_id in readers:
            readers[node_id](artifacts)
        _read_gate_reports(report, node_id, artifacts)
    report.pushes = _pushes(store, run)
    if "Evaluator" in outputs:
        _read_evaluation(report, outputs["Evaluator"])
    if "Trainer" in outputs and "CsvExampleGen" in outputs:
        _read_samples(report, store, run, outputs)
    return report


def _stages(store, run: metadata.Run) -> list[StageView]:
    producers = {}
    for stage in run.stages:
        for artifacts in metadata.output_artifacts(store, stage.execution_id).values():
            producers.update({artifact.id: stage.node_id for artifact in artifacts})
    views = []
    for stage in run.stages:
        inputs = metadata.input_artifacts(store, stage.execution_id).values()
        upstream = {producers[a.id] for items in inputs for a in items if a.id in producers}
        upstream.discard(stage.node_id)
        views.append(
            StageView(stage.node_id, stage.state, round(stage.seconds, 1), tuple(sorted(upstream)))
        )
    return views


def _single(artifacts: dict, key: str):
    items = artifacts.get(key, [])
    return items[0] if items else None


def _split_protos(uri: str, file_name: str, proto_class):
    """(split name, parsed proto) for each `Split-<name>/<file_name>` under an artifact."""
    for path in sorted(glob.glob(os.path.join(uri, "Split-*", file_name))):
        proto = proto_class()
        with open(path, "rb") as handle:
            proto.ParseFromString(handle.read())
        yield os.path.basename(os.path.dirname(path))[len("Split-") :], proto


def _read_statistics(report: RunReport, artifacts: dict, label_key: str) -> None:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    statistics = _single(artifacts, "statistics")
    if statistics is None:
        return
    for split, proto in _split_protos(
        statistics.uri, "FeatureStats.pb", statistics_pb2.DatasetFeatureStatisticsList
    ):
        features = []
        for dataset in proto.datasets:
            for feature in dataset.features:
                name = ".".join(feature.path.step) or feature.name
                if name == label_key:
                    report.label_counts[split] = _label_counts(feature)
                if not feature.HasField("num_stats"):
                    continue
                numbers = feature.num_stats
                features.append(
                    FeatureView(
                        name=name,
                        count=int(numbers.common_stats.num_non_missing),
                        missing=int(numbers.common_stats.num_missing),
                        minimum=numbers.min,
                        maximum=numbers.max,
                        mean=numbers.mean,
                        std_dev=numbers.std_dev,
                    )
                )
        report.statistics[split] = features


def _label_counts(feature) -> dict[str, float]:
    """Examples per label value, from TFDV's statistics of the label feature.

    A label the schema declares categorical has a rank histogram of its values. A numeric one has
    TFDV's standard histogram, which spreads [min, max] over equal buckets: for labels 0..9 one
    bucket per label, whose midpoint rounds to it.
    """
    if feature.HasField("string_stats"):
        pairs = [(b.label, b.sample_count) for b in feature.string_stats.rank_histogram.buckets]
        return dict(sorted(pairs, key=lambda pair: (len(pair[0]), pair[0])))  # "2" before "10"
    counts: dict[str, float] = {}
    for histogram in feature.num_stats.histograms:
        if histogram.type != histogram.STANDARD:
            continue
        for bucket in histogram.buckets:
            label = str(round((bucket.low_value + bucket.high_value) / 2))
            counts[label] = round(counts.get(label, 0) + bucket.sample_count, 1)
    return counts


def _read_anomalies(report: RunReport, artifacts: dict) -> None:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    anomalies = _single(artifacts, "anomalies")
    if anomalies is None:
        return
    for split, proto in _split_protos(anomalies.uri, "SchemaDiff.pb", anomalies_pb2.Anomalies):
        report.anomalies[split] = [
            f"{feature}: {info.short_description} ({info.description})"
            for feature, info in sorted(proto.anomaly_info.items())
        ]


def _read_gate_reports(report: RunReport, node_id: str, artifacts: dict) -> None:
    """The `report.json` of a validation stage: whether it passed and what it found."""
    for items in artifacts.values():
        for artifact in items:
            path = os.path.join(artifact.uri, "report.json")
            if not os.path.exists(path):
                continue
            with open(path) as handle:
                document = json.load(handle)
            if isinstance(document, dict) and "passed" in document:
                report.gate_reports[node_id] = document


def _read_tuner(report: RunReport, artifacts: dict) -> None:
    results = _single(artifacts, "tuner_results")
    path = os.path.join(results.uri, "tuner_results.json") if results else ""
    if not path or not os.path.exists(path):
        return
    with open(path) as handle:
        report.tuner_trials = json.load(handle)


def _read_history(report: RunReport, artifacts: dict) -> None:
    model_run = _single(artifacts, "model_run")
    path = os.path.join(model_run.uri, "history.json") if model_run else ""
    if path and os.path.exists(path):
        with open(path) as handle:
            report.history = json.load(handle)


def _read_baseline_gate(report: RunReport, artifacts: dict) -> None:
    """The forecaster's errors against the seasonal-naive forecast's, and the verdict."""
    gate_report = _single(artifacts, "report")
    path = os.path.join(gate_report.uri, "report.json") if gate_report else ""
    if path and os.path.exists(path):
        with open(path) as handle:
            report.baseline_gate = json.load(handle)


def _read_family_evaluation(report: RunReport, artifacts: dict) -> None:
    """A generative or language model's figures, checks, sample grids (PNG, base64) and text."""
    evaluation = _single(artifacts, "evaluation")
    path = os.path.join(evaluation.uri, "metrics.json") if evaluation else ""
    if not path or not os.path.exists(path):
        return
    with open(path) as handle:
        report.family_evaluation = json.load(handle)
    for name, file_name in report.family_evaluation.get("grids", {}).items():
        grid = os.path.join(evaluation.uri, file_name)
        if os.path.exists(grid):
            with open(grid, "rb") as handle:
                report.family_grids[name] = base64.b64encode(handle.read()).decode("ascii")


def _read_agent_curve(report: RunReport, artifacts: dict) -> None:
    """An agent's return per training episode, and its trailing 100-episode mean."""
    model_run = _single(artifacts, "model_run")
    path = os.path.join(model_run.uri, "training_curve.json") if model_run else ""
    if not path or not os.path.exists(path):
        return
    from models.rl.common import trailing_mean

    with open(path) as handle:
        returns = json.load(handle)["returns"]
    trailing = [trailing_mean(returns[: index + 1]) for index in range(len(returns))]
    report.history = {"return": returns, "trailing_mean_100": trailing}
    report.history_axis = "episode"


def _read_compression(report: RunReport, artifacts: dict) -> None:
    device_model = _single(artifacts, "device_model")
    if device_model is None:
        return
    path = os.path.join(device_model.uri, "report.json")
    if os.path.exists(path):
        with open(path) as handle:
            report.compression = json.load(handle)
    for plot in sorted(glob.glob(os.path.join(device_model.uri, "*.png"))):
        with open(plot, "rb") as handle:
            report.compression_plots.append(base64.b64encode(handle.read()).decode("ascii"))


def _pushes(store, run: metadata.Run) -> list[dict]:
    pushes = []
    for stage in run.stages:
        for artifact in metadata.output_artifacts(store, stage.execution_id).get(
            "pushed_model", []
        ):
            properties = lineage.artifact_properties(artifact)
            pushes.append(
                {
                    "stage": stage.node_id,
                    "pushed": bool(properties.get("pushed")),
                    "version": properties.get("pushed_version", ""),
                    "destination": properties.get("pushed_destination", ""),
                }
            )
    return pushes


def _read_evaluation(report: RunReport, artifacts: dict) -> None:
    import tensorflow_model_analysis as tfma

    evaluation = _single(artifacts, "evaluation")
    if evaluation is None:
        return
    for slice_plots in tfma.load_plots(evaluation.uri):
        if slice_plots.slice_key.single_slice_keys:
            continue
        for item in slice_plots.plot_keys_and_values:
            matrices = item.value.multi_class_confusion_matrix_at_thresholds.matrices
            if not matrices or item.key.model_name == "baseline":
                continue
            matrix = matrices[0]  # the argmax prediction: the plot's only threshold here
            size = 1 + max(max(e.actual_class_id, e.predicted_class_id) for e in matrix.entries)
            report.confusion = [[0.0] * size for _ in range(size)]
            for entry in matrix.entries:
                report.confusion[entry.actual_class_id][entry.predicted_class_id] = (
                    entry.num_weighted_examples
                )
    for slice_metrics in tfma.load_metrics(evaluation.uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue
        for item in slice_metrics.metric_keys_and_values:
            if item.key.is_diff:
                report.baseline_diff[item.key.name] = round(item.value.double_value.value, 4)


def _read_samples(report: RunReport, store, run, outputs: dict) -> None:
    """Predictions of the run's model on the first test examples."""
    import tensorflow as tf

    from components.compressor.executor import read_examples
    from models import export, tasks

    trainer = next(stage for stage in run.stages if stage.node_id == "Trainer")
    settings = lineage.trainer_settings(store, trainer.execution_id)
    spec = tasks.get_task(settings.get("task", "digits"))
    if spec.kind != "classification" or spec.vocabulary_size is not None:
        return  # sample predictions are shown for classifiers of numbers (images) only
    model = _single(outputs["Trainer"], "model")
    examples = _single(outputs["CsvExampleGen"], "examples")
    test_files = os.path.join(examples.uri, "Split-test", "*")
    model_dir = os.path.join(model.uri, "Format-Serving")
    if not glob.glob(test_files) or not os.path.isdir(model_dir):
        return
    features, labels = read_examples([test_files], spec.raw_feature_keys, spec.label_key)
    features, labels = features[:SAMPLE_PREDICTIONS], labels[:SAMPLE_PREDICTIONS]
    signatures = tf.saved_model.load(model_dir).signatures
    if export.DENSE_SIGNATURE not in signatures:
        return  # a generative model of the task's images predicts no label
    signature = signatures[export.DENSE_SIGNATURE]
    outputs_ = signature(**{export.DENSE_INPUT: tf.constant(features)})
    probabilities = outputs_[export.PROBABILITIES].numpy()
    report.image_shape = tuple(spec.image_shape or ())
    report.samples = [
        {
            "features": [float(value) for value in row],
            "label": int(label),
            "predicted": int(probabilities[index].argmax()),
            "probability": round(float(probabilities[index].max()), 3),
        }
        for index, (row, label) in enumerate(zip(features, labels, strict=True))
    ]
