"""Where a pushed model came from, and what a run produced, read from ML Metadata.

Only `ml_metadata` and the run summaries are read (no TensorFlow), so these commands start fast.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from google.protobuf import json_format

from pipelines import metadata

# Properties every TFX artifact carries; they say nothing about the artifact itself.
_NOISE_PROPERTIES = {"tfx_version", "is_external"}
_PUSHERS = {"Pusher": "serving", "TFLitePusher": "tflite"}
HYPERPARAMETERS_FILE = "best_hyperparameters.txt"


class LineageError(LookupError):
    """The store holds no pushed model or run that matches what was asked for."""


@dataclass(frozen=True)
class ArtifactRow:
    """One output artifact of one stage of a run."""

    stage: str
    key: str
    type_name: str
    uri: str
    properties: dict


@dataclass
class Lineage:
    """What produced one pushed model."""

    kind: str
    destination: str
    version: str
    pushed_in_run: str
    model_uri: str
    trained_in_run: str = ""
    code_version: str = ""
    examples: list[dict] = field(default_factory=list)
    schema_file: str = ""
    trainer_settings: dict = field(default_factory=dict)
    hyperparameters: dict = field(default_factory=dict)
    hyperparameters_source: str = ""
    evaluation: dict = field(default_factory=dict)
    device_model: dict = field(default_factory=dict)
    twins: list[str] = field(default_factory=list)


def property_value(value):
    """A Python value for an MLMD property; TFX keeps JSON in structs under `__value__`."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "struct_value":
        document = json_format.MessageToDict(value.struct_value)
        return json.loads(document["__value__"]) if "__value__" in document else document
    if kind == "proto_value":
        return str(value.proto_value)
    return getattr(value, kind)


def artifact_properties(artifact) -> dict:
    """Properties and custom properties of an artifact, without TFX's bookkeeping ones."""
    values = {**artifact.properties, **artifact.custom_properties}
    return {
        name: property_value(value)
        for name, value in sorted(values.items())
        if name not in _NOISE_PROPERTIES
    }


def run_artifacts(store, run: metadata.Run) -> list[ArtifactRow]:
    """Every output artifact of every stage of `run`, in stage order."""
    rows = []
    for stage in run.stages:
        for key, artifacts in sorted(metadata.output_artifacts(store, stage.execution_id).items()):
            for artifact in artifacts:
                rows.append(
                    ArtifactRow(
                        stage=stage.node_id,
                        key=key,
                        type_name=metadata.artifact_type_name(store, artifact),
                        uri=artifact.uri,
                        properties=artifact_properties(artifact),
                    )
                )
    return rows


def training_log_dirs(store, runs: list[metadata.Run]) -> dict[str, str]:
    """TensorBoard log folders of the Trainer and Tuner executions of `runs`: the Trainer's by
    run id, the Tuner's (one sub-folder per trial) by `<run id>/tuner`.

    A run whose stage came from cache shares the log folder of the run that executed it; it is
    listed once, under that run.
    """
    outputs = {"Trainer": ("model_run", ""), "Tuner": ("tuner_results", "/tuner")}
    found: dict[str, str] = {}
    for run in runs:
        for stage in run.stages:
            if stage.node_id not in outputs or stage.state != "complete":
                continue
            key, suffix = outputs[stage.node_id]
            for artifact in metadata.output_artifacts(store, stage.execution_id).get(key, []):
                logs = os.path.join(artifact.uri, "logs")
                if os.path.isdir(logs):
                    found[run.run_id + suffix] = logs
    return found


def trainer_settings(store, execution_id: int) -> dict:
    """The trainer settings a Tuner or Trainer execution ran with (its `custom_config`)."""
    (execution,) = store.get_executions_by_id([execution_id])
    config = execution.custom_properties.get("custom_config")
    values = json.loads(config.string_value or "null") if config is not None else None
    return next(iter(values.values()), {}) if values else {}


def _producer(store, artifact_id: int):
    """The execution that first output the artifact (a cached re-run outputs it again)."""
    ids = [
        event.execution_id
        for event in store.get_events_by_artifact_ids([artifact_id])
        if event.type in metadata.OUTPUT_EVENTS
    ]
    if not ids:
        return None
    return store.get_executions_by_id([min(ids)])[0]


def _run_id(store, execution_id: int) -> str:
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == metadata.RUN_CONTEXT:
            return context.name
    return ""


def _single_input(store, execution_id: int, key: str):
    artifacts = metadata.input_artifacts(store, execution_id).get(key, [])
    return artifacts[0] if artifacts else None


def _pushed_models(store) -> list[tuple[str, object, object]]:
    """(kind, pushed artifact, pushing execution) for every model that was pushed.

    A re-run that finds its model already pushed records the same destination again; only the
    first push of each destination is kept.
    """
    found, destinations = [], set()
    for artifact in sorted(store.get_artifacts_by_type("PushedModel"), key=lambda item: item.id):
        if not metadata.custom_property(artifact, "pushed"):
            continue
        execution = _producer(store, artifact.id)
        if execution is None:
            continue
        _, node_id = metadata.node_id(store, execution.id)
        destination = metadata.custom_property(artifact, "pushed_destination")
        if node_id in _PUSHERS and destination not in destinations:
            destinations.add(destination)
            found.append((_PUSHERS[node_id], artifact, execution))
    return found


def _matches(artifact, query: str) -> bool:
    destination = metadata.custom_property(artifact, "pushed_destination") or ""
    if query == metadata.custom_property(artifact, "pushed_version"):
        return True
    if "://" in destination or not os.path.exists(query):
        return query.rstrip("/") == destination.rstrip("/")
    # A local path: the version folder itself or any file inside it.
    path = os.path.realpath(query)
    folder = os.path.realpath(destination)
    return path == folder or path.startswith(folder + os.sep)


def _source_model(store, kind: str, push_execution):
    """The Trainer's Model behind a push, and the Compressor's execution for a TFLite push."""
    if kind == "serving":
        return _single_input(store, push_execution.id, "model"), None
    device_model = _single_input(store, push_execution.id, "device_model")
    compressor = _producer(store, device_model.id) if device_model else None
    if compressor is None:
        return None, None
    return _single_input(store, compressor.id, "model"), compressor


def find_lineage(store, runs_dir: str, query: str) -> list[Lineage]:
    """The lineage of every pushed model matching `query`, a version or a pushed path.

    A version number can match a SavedModel push and its TFLite twin: both are returned.

    Raises:
        LineageError: If no pushed model matches.
    """
    pushed = _pushed_models(store)
    matching = [item for item in pushed if _matches(item[1], query)]
    if not matching:
        known = sorted({metadata.custom_property(item[1], "pushed_version") for item in pushed})
        raise LineageError(
            f"Expected a pushed model's version or path, received {query!r}; "
            f"pushed versions in this home: {known or 'none'}."
        )
    model_ids = {
        item[1].id: getattr(_source_model(store, item[0], item[2])[0], "id", None)
        for item in pushed
    }
    lineages = []
    for kind, artifact, execution in matching:
        lineage = _trace(store, runs_dir, kind, artifact, execution)
        lineage.twins = sorted(
            metadata.custom_property(other, "pushed_destination")
            for _, other, _ in pushed
            if other.id != artifact.id
            and model_ids[other.id] is not None
            and model_ids[other.id] == model_ids[artifact.id]
        )
        lineages.append(lineage)
    return lineages


def _trace(store, runs_dir: str, kind: str, artifact, push_execution) -> Lineage:
    model, compressor = _source_model(store, kind, push_execution)
    lineage = Lineage(
        kind=kind,
        destination=metadata.custom_property(artifact, "pushed_destination") or "",
        version=metadata.custom_property(artifact, "pushed_version") or "",
        pushed_in_run=_run_id(store, push_execution.id),
        model_uri=model.uri if model else "",
    )
    if model is None:
        return lineage
    trainer = _producer(store, model.id)
    if trainer is not None:
        lineage.trained_in_run = _run_id(store, trainer.id)
        lineage.trainer_settings = trainer_settings(store, trainer.id)
        summary = _summary(runs_dir, lineage.trained_in_run)
        lineage.code_version = summary.get("code_version", "")
    _read_upstream(store, model.id, lineage)
    blessing_execution = compressor or push_execution
    blessing = _single_input(store, blessing_execution.id, "model_blessing")
    if blessing is not None:
        evaluator = _producer(store, blessing.id)
        evaluated_in = _run_id(store, evaluator.id) if evaluator else ""
        accuracy = _summary(runs_dir, evaluated_in).get("metrics", {}).get("test_accuracy")
        lineage.evaluation = {
            "run": evaluated_in,
            "blessed": bool(metadata.custom_property(blessing, "blessed")),
            "test_accuracy": accuracy,
            "blessing_uri": blessing.uri,
        }
    if compressor is not None:
        device_model = _single_input(store, push_execution.id, "device_model")
        lineage.device_model = device_model_report(device_model.uri)
    return lineage


def _read_upstream(store, model_id: int, lineage: Lineage) -> None:
    for upstream in metadata.upstream_artifacts(store, model_id):
        type_name = metadata.artifact_type_name(store, upstream)
        if type_name == "Examples" and metadata.custom_property(upstream, "span") is not None:
            lineage.examples.append(
                {
                    "uri": upstream.uri,
                    "span": metadata.custom_property(upstream, "span"),
                    "fingerprint": metadata.custom_property(upstream, "input_fingerprint"),
                }
            )
        elif type_name == "Schema":
            producer = _producer(store, upstream.id)
            schema_file = producer and producer.custom_properties.get("schema_file")
            if schema_file is not None:
                lineage.schema_file = schema_file.string_value
        elif type_name == "HyperParameters":
            path = os.path.join(upstream.uri, HYPERPARAMETERS_FILE)
            if os.path.exists(path):
                with open(path) as handle:
                    lineage.hyperparameters = json.load(handle).get("values", {})
                lineage.hyperparameters_source = f"tuned ({path})"
    if not lineage.hyperparameters_source:
        fixed = lineage.trainer_settings.get("hyperparameters", {})
        lineage.hyperparameters = dict(fixed)
        lineage.hyperparameters_source = "not tuned: the family defaults, with these fixed"


def _summary(runs_dir: str, run_id: str) -> dict:
    path = os.path.join(runs_dir, run_id, "summary.json")
    if not run_id or not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def device_model_report(device_model_uri: str) -> dict:
    """The device model's measures (the Compressor's chosen candidate, or the single conversion
    of a policy, whose report holds its own measures), the choice, and where its report and plot
    are; empty when the model was not blessed, so nothing was converted.

    Read from `report.json` here rather than through the Compressor's module, which imports TF.
    """
    path = os.path.join(device_model_uri, "report.json")
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        report = json.load(handle)
    plot = os.path.join(device_model_uri, "report.png")
    if "candidates" in report:
        chosen = [item for item in report["candidates"] if item["recipe"] == report["chosen"]]
        measures = chosen[0] if chosen else {}
    else:
        measures = report
    return {
        **measures,
        "chosen": report["chosen"],
        "report": path,
        "plot": plot if os.path.exists(plot) else "",
    }


def _shown(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


def format_artifacts(run_id: str, rows: list[ArtifactRow]) -> list[str]:
    """Lines of `dlforge artifacts`: one block per artifact."""
    lines = [f"Artifacts of run {run_id} ({len(rows)})"]
    for row in rows:
        lines.append(f"  {row.stage}.{row.key}  {row.type_name}")
        lines.append(f"    uri: {row.uri}")
        lines.extend(f"    {name}: {_shown(value)}" for name, value in row.properties.items())
    return lines


def format_lineage(lineage: Lineage) -> list[str]:
    """Lines of `dlforge lineage` for one pushed model."""
    what = "SavedModel for TF Serving" if lineage.kind == "serving" else "TFLite model for devices"
    lines = [
        f"{what}, version {lineage.version}: {lineage.destination}",
        f"  pushed by run:      {lineage.pushed_in_run}",
        f"  trained by run:     {lineage.trained_in_run or 'unknown'}",
        f"  code version:       {lineage.code_version or 'not recorded'}",
        f"  model artifact:     {lineage.model_uri or 'unknown'}",
    ]
    for examples in lineage.examples:
        lines.append(f"  data:               span {examples['span']}, {examples['uri']}")
        if examples["fingerprint"]:
            lines.append(f"                      {_shown(examples['fingerprint'])}")
    lines.append(f"  schema:             {lineage.schema_file or 'unknown'}")
    settings = lineage.trainer_settings
    if settings:
        lines.append(
            f"  trainer:            family {settings.get('family')}, task {settings.get('task')}, "
            f"batch size {settings.get('batch_size')}, seed {settings.get('seed')}"
        )
    lines.append(f"  hyper-parameters:   {lineage.hyperparameters_source}")
    if not lineage.hyperparameters:
        lines.append("    (none)")
    lines.extend(f"    {name} = {value}" for name, value in sorted(lineage.hyperparameters.items()))
    evaluation = lineage.evaluation
    if evaluation:
        verdict = "blessed" if evaluation["blessed"] else "not blessed"
        if evaluation["test_accuracy"] is not None:
            verdict += f", test accuracy {evaluation['test_accuracy']:.4f}"
        lines.append(f"  evaluation:         run {evaluation['run']}, {verdict}")
    device = lineage.device_model
    if device:
        lines.append(
            f"  device model:       {device.get('recipe')} recipe, {device.get('size_bytes')} "
            f"bytes, test accuracy {device.get('accuracy')} ({device.get('report')})"
        )
    for twin in lineage.twins:
        lines.append(f"  twin:               {twin}")
    return lines
