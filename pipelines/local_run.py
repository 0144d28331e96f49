"""Runs a pipeline with LocalDagRunner and summarises the run from ML Metadata."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from models.files import write_json_atomically
from pipelines import catalog, lineage, metadata
from pipelines.config import ConfigError, PipelineConfig

# TFMA metric name -> the summary's name for it (overall slice, candidate model).
SUMMARY_METRICS = {
    "sparse_categorical_accuracy": "test_accuracy",
    "root_mean_squared_error": "test_rmse",
    "mean_absolute_error": "test_mae",
}
ACCURACY = "sparse_categorical_accuracy"
Progress = Callable[[str], None]


@dataclass
class RunSummary:
    """What a run did, as written to `<home>/runs/<run_id>/summary.json`."""

    pipeline: str
    model_family: str
    run_id: str
    status: str = "running"
    error: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_states: dict[str, str] = field(default_factory=dict)
    total_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    accuracy_by_label: dict[str, float] = field(default_factory=dict)
    blessed: bool = False
    blessing_failures: list[str] = field(default_factory=list)
    pushed: bool = False
    pushed_path: str = ""
    pushed_version: str = ""
    device_model: dict = field(default_factory=dict)
    code_version: str = ""


def new_run_id(pipeline_name: str) -> str:
    """A sortable run id, e.g. `digits_cnn-20261125-153000-123`."""
    now = datetime.datetime.now()
    return f"{pipeline_name}-{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}"


class _StageEvents(logging.Handler):
    """Turns LocalDagRunner's "Component X is running/finished." log lines into progress."""

    def __init__(self, progress: Progress, seconds: dict[str, float]):
        super().__init__(level=logging.INFO)
        self._progress = progress
        self._seconds = seconds
        self._started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "Component %s is running.":
            (node_id,) = record.args
            self._started[node_id] = time.monotonic()
            self._progress(f"  {node_id:<24} running")
        elif record.msg == "Component %s is finished.":
            (node_id,) = record.args
            self._seconds[node_id] = time.monotonic() - self._started.pop(node_id)
            self._progress(f"  {node_id:<24} done in {self._seconds[node_id]:.1f} s")


@contextmanager
def _stage_events(progress: Progress, seconds: dict[str, float]) -> Iterator[None]:
    from absl import logging as absl_logging

    handler = _StageEvents(progress, seconds)
    logger = absl_logging.get_absl_logger()
    previous_verbosity = absl_logging.get_verbosity()
    logger.addHandler(handler)
    # Through absl, not the logger: TensorFlow resets absl's level to absl's verbosity whenever
    # it saves a model.
    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        absl_logging.set_verbosity(previous_verbosity)


def prepare_data(config: PipelineConfig) -> str | None:
    """Puts the raw data the run reads in place: the user's files as a new span, or else the
    embedded data set as span 0 when the home has no data yet.

    Returns:
        A line saying what was done, or None when the data was already in place (or the
        pipeline reads no data set).

    Raises:
        IngestError: If the user's files are not acceptable; nothing is written then.
        ConfigError: If the pipeline does not take the user's data.
    """
    from models.data import ingest

    entry = catalog.get_pipeline(config.pipeline)
    if config.data_path:
        if not entry.user_data:
            taking = [name for name, item in catalog.PIPELINES.items() if item.user_data]
            raise ConfigError(
                f"Expected --data only for the pipelines that ingest a user's rows ({taking}), "
                f"received it for {config.pipeline!r}, which trains on its embedded data."
            )
        data = entry.data()
        span = ingest.add_span(
            config.data_path,
            config.data_dir,
            data.COLUMNS,
            lambda rows, folder: data.write_splits(
                folder, seed=config.data_seed, arrays=(rows[:, :-1], rows[:, -1])
            ),
        )
        if not span.added:
            return f"{config.data_path} holds the rows of span {span.number}: no new span"
        return f"ingested {span.rows} rows from {config.data_path} as span {span.number}"
    if not entry.data_module or ingest.span_numbers(config.data_dir):
        return None
    entry.data().write_splits(ingest.span_dir(config.data_dir, 0), seed=config.data_seed)
    return f"wrote the embedded {config.pipeline} data to {config.data_dir} as span 0"


def code_version() -> str:
    """The dlforge version, plus the git commit of its source when it runs from a checkout.

    A checkout with uncommitted changes to tracked files is marked `-dirty`: the commit alone
    does not say what code ran.
    """
    version = importlib.metadata.version("dlforge")
    source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args: str) -> str:
        command = ["git", "-C", source, *args]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        changes = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):  # no git, or not a checkout
        return version
    return f"{version}+g{commit}{'-dirty' if changes else ''}"


def _check_hyperparameters(config: PipelineConfig) -> None:
    from models import registry

    try:
        registry.make_hyperparameters(config.trainer.family, config.trainer.hyperparameters)
    except ValueError as error:
        raise ConfigError(str(error)) from error


def run_pipeline(config: PipelineConfig, progress: Progress = print) -> RunSummary:
    """Runs the configured pipeline locally and writes its summary.

    A failing stage does not raise: the summary says which stage failed and why.

    Args:
        config: The run's configuration.
        progress: Called with one line per stage event.

    Returns:
        The run's summary (also written to `<home>/runs/<run_id>/summary.json`).
    """
    prepared = prepare_data(config)
    if prepared:
        progress(f"  {prepared}")
    _check_hyperparameters(config)

    from tfx.dsl.compiler import compiler
    from tfx.dsl.compiler import constants as compiler_constants
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.portable import runtime_parameter_utils

    summary = RunSummary(
        pipeline=config.pipeline_name,
        model_family=config.trainer.family,
        run_id=new_run_id(config.pipeline_name),
        code_version=code_version(),
    )
    started = time.monotonic()
    create_pipeline = catalog.get_pipeline(config.pipeline).wiring_module().create_pipeline
    ir = compiler.Compiler().compile(create_pipeline(config))
    runtime_parameter_utils.substitute_runtime_parameter(
        ir, {compiler_constants.PIPELINE_RUN_ID_PARAMETER_NAME: summary.run_id}
    )
    try:
        with _stage_events(progress, summary.stage_seconds):
            LocalDagRunner().run_with_ir(ir)
        summary.status = "complete"
    except Exception as error:
        logging.getLogger(__name__).info("The run failed.", exc_info=True)
        summary.status = "failed"
        summary.error = str(error).strip() or type(error).__name__
    summary.total_seconds = round(time.monotonic() - started, 1)
    _fill_from_metadata(summary, config)
    write_summary(summary, config.runs_dir)
    return summary


def _fill_from_metadata(summary: RunSummary, config: PipelineConfig) -> None:
    store = metadata.open_store(config.metadata_path)
    try:
        run = metadata.get_run(store, summary.run_id)
    except KeyError:
        return
    readers = {
        "Evaluator": _read_evaluation,
        "BaselineGate": _read_baseline_gate,
        "AgentEvaluator": _read_agent_evaluation,
        "FamilyEvaluator": _read_family_evaluation,
        "Pusher": _read_push,
        "Compressor": _read_compression,
        "PolicyTFLite": _read_compression,
        "TFLitePusher": _read_device_push,
    }
    for stage in run.stages:
        summary.stage_states[stage.node_id] = stage.state
        if stage.node_id in readers and stage.state in ("complete", "cached"):
            readers[stage.node_id](summary, metadata.output_artifacts(store, stage.execution_id))


def _read_baseline_gate(summary: RunSummary, outputs: dict[str, list]) -> None:
    """A forecaster is blessed only if the BaselineGate also blessed it."""
    (blessing,) = outputs["blessing"]
    summary.blessed = bool(metadata.custom_property(blessing, "blessed"))
    message = metadata.custom_property(blessing, "blessing_message")
    if not summary.blessed and message:
        summary.blessing_failures.append(str(message))


def _read_agent_evaluation(summary: RunSummary, outputs: dict[str, list]) -> None:
    (evaluation,) = outputs["evaluation"]
    (blessing,) = outputs["blessing"]
    with open(os.path.join(evaluation.uri, "evaluation.json")) as handle:
        report = json.load(handle)
    summary.blessed = bool(metadata.custom_property(blessing, "blessed"))
    # The metric is the mean return (for FrozenLake, where a success returns 1, the success rate).
    summary.metrics[report["metric"]] = report["mean_return"]
    summary.metrics["return_std"] = report["std_return"]
    if not summary.blessed:
        summary.blessing_failures.append(
            f"{report['metric']} over {report['episodes']} seeded episodes is "
            f"{report['mean_return']:.4f}, expected >= {report['reward_threshold']:.4f}"
        )


def _read_family_evaluation(summary: RunSummary, outputs: dict[str, list]) -> None:
    """A generative or language model's figures on the test split, and its failed checks."""
    (evaluation,) = outputs["evaluation"]
    (blessing,) = outputs["blessing"]
    with open(os.path.join(evaluation.uri, "metrics.json")) as handle:
        report = json.load(handle)
    summary.blessed = bool(metadata.custom_property(blessing, "blessed"))
    summary.metrics.update({name: round(value, 4) for name, value in report["metrics"].items()})
    summary.blessing_failures.extend(
        check["description"] for check in report["checks"] if not check["passed"]
    )


def _read_push(summary: RunSummary, outputs: dict[str, list]) -> None:
    (pushed_model,) = outputs["pushed_model"]
    summary.pushed = bool(metadata.custom_property(pushed_model, "pushed"))
    summary.pushed_path = metadata.custom_property(pushed_model, "pushed_destination") or ""
    summary.pushed_version = metadata.custom_property(pushed_model, "pushed_version") or ""


def _read_compression(summary: RunSummary, outputs: dict[str, list]) -> None:
    (device_model,) = outputs["device_model"]
    summary.device_model = lineage.device_model_report(device_model.uri)


def _read_device_push(summary: RunSummary, outputs: dict[str, list]) -> None:
    (pushed_model,) = outputs["pushed_model"]
    if metadata.custom_property(pushed_model, "pushed"):
        summary.device_model["pushed_path"] = metadata.custom_property(
            pushed_model, "pushed_destination"
        )


def _read_evaluation(summary: RunSummary, outputs: dict[str, list]) -> None:
    import tensorflow_model_analysis as tfma

    (evaluation,) = outputs["evaluation"]
    (blessing,) = outputs["blessing"]
    summary.blessed = bool(metadata.custom_property(blessing, "blessed"))
    for slice_metrics in tfma.load_metrics(evaluation.uri):
        keys = slice_metrics.slice_key.single_slice_keys
        for item in slice_metrics.metric_keys_and_values:
            name = SUMMARY_METRICS.get(item.key.name)
            if name is None or item.key.is_diff or item.key.model_name == "baseline":
                continue
            value = round(item.value.double_value.value, 4)
            if not keys:
                summary.metrics[name] = value
            elif len(keys) == 1 and item.key.name == ACCURACY:
                summary.accuracy_by_label[str(keys[0].int64_value)] = value
    validation = tfma.load_validation_result(evaluation.uri)
    for per_slice in validation.metric_validations_per_slice:
        where = _slice_name(per_slice.slice_key.single_slice_keys)
        for failure in per_slice.failures:
            change = failure.metric_threshold.change_threshold
            value = failure.metric_threshold.value_threshold
            if failure.metric_key.is_diff and change.HasField("relative"):
                bound = f"relative change <= {change.relative.value:+.4f}"
            elif failure.metric_key.is_diff:
                bound = f"change >= {change.absolute.value:+.4f}"
            elif value.HasField("upper_bound"):
                bound = f"<= {value.upper_bound.value:.4f}"
            else:
                bound = f">= {value.lower_bound.value:.4f}"
            kind = "change" if failure.metric_key.is_diff else "value"
            summary.blessing_failures.append(
                f"{failure.metric_key.name} {kind} on {where} is "
                f"{failure.metric_value.double_value.value:.4f}, expected {bound}"
            )


def _slice_name(keys) -> str:
    if not keys:
        return "all test examples"
    return ", ".join(f"{key.column}={getattr(key, key.WhichOneof('kind'))}" for key in keys)


def write_summary(summary: RunSummary, runs_dir: str) -> str:
    """Writes `summary.json` for the run atomically and returns its path."""
    directory = os.path.join(runs_dir, summary.run_id)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "summary.json")
    write_json_atomically(path, asdict(summary))
    return path


def read_summary(runs_dir: str, run_id: str) -> dict | None:
    """The summary of a run as written by `write_summary`, or None if there is none."""
    path = os.path.join(runs_dir, run_id, "summary.json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)
