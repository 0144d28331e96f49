"""Reading the ML Metadata store of a dlforge home: runs, their stages, artifacts and lineage.

Only `ml_metadata` is imported here (no TensorFlow), so listing runs stays fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

RUN_CONTEXT = "pipeline_run"
NODE_CONTEXT = "node"
STATE_NAMES = {
    metadata_store_pb2.Execution.NEW: "new",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.COMPLETE: "complete",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}
OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)


def open_store(path: str) -> metadata_store.MetadataStore:
    """Opens an existing SQLite ML Metadata store read-only.

    Raises:
        FileNotFoundError: If there is no store at `path`.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"Expected an ML Metadata store at {path}, found no file.")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


@dataclass(frozen=True)
class Stage:
    """One node's execution in a run."""

    node_id: str
    state: str
    seconds: float
    execution_id: int


@dataclass(frozen=True)
class Run:
    """One pipeline run."""

    run_id: str
    pipeline: str
    created_ms: int
    stages: list[Stage] = field(default_factory=list)

    @property
    def status(self) -> str:
        """failed if a stage failed, running if one is unfinished, else complete."""
        states = {stage.state for stage in self.stages}
        if "failed" in states:
            return "failed"
        if states & {"new", "running"}:
            return "running"
        return "complete"


def node_id(store, execution_id: int) -> tuple[str, str]:
    """(pipeline name, node id) of an execution, from its node context."""
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == NODE_CONTEXT:
            pipeline, _, node = context.name.partition(".")
            return pipeline, node
    return "", ""


def _run_from_context(store, context) -> Run:
    stages = []
    pipeline = ""
    for execution in sorted(store.get_executions_by_context(context.id), key=lambda item: item.id):
        pipeline, node = node_id(store, execution.id)
        seconds = (
            execution.last_update_time_since_epoch - execution.create_time_since_epoch
        ) / 1000
        stages.append(
            Stage(
                node_id=node,
                state=STATE_NAMES.get(execution.last_known_state, "unknown"),
                seconds=seconds,
                execution_id=execution.id,
            )
        )
    return Run(
        run_id=context.name,
        pipeline=pipeline,
        created_ms=context.create_time_since_epoch,
        stages=stages,
    )


def list_runs(store) -> list[Run]:
    """All runs in the store, newest first."""
    contexts = store.get_contexts_by_type(RUN_CONTEXT)
    runs = [_run_from_context(store, context) for context in contexts]
    return sorted(runs, key=lambda run: run.created_ms, reverse=True)


def get_run(store, run_id: str) -> Run:
    """One run by id.

    Raises:
        KeyError: If the store has no run with that id.
    """
    context = store.get_context_by_type_and_name(RUN_CONTEXT, run_id)
    if context is None:
        raise KeyError(f"No run {run_id!r} in the ML Metadata store.")
    return _run_from_context(store, context)


def find_run(store, run_id: str | None) -> Run:
    """The run `run_id`, or the latest run when `run_id` is None.

    Raises:
        LookupError: If the store has no run, or no run `run_id`; the message says which.
    """
    if run_id is None:
        runs = list_runs(store)
        if not runs:
            raise LookupError("no runs yet: the ML Metadata store holds no run")
        return runs[0]
    try:
        return get_run(store, run_id)
    except KeyError:
        raise LookupError(f"expected a run id from `dlforge runs`, received {run_id!r}") from None


def output_artifacts(store, execution_id: int) -> dict[str, list]:
    """The artifacts an execution output, by output key."""
    return _artifacts_by_key(store, execution_id, OUTPUT_EVENTS)


def input_artifacts(store, execution_id: int) -> dict[str, list]:
    """The artifacts an execution read, by input key."""
    return _artifacts_by_key(store, execution_id, INPUT_EVENTS)


def _artifacts_by_key(store, execution_id: int, kinds) -> dict[str, list]:
    events = [
        event for event in store.get_events_by_execution_ids([execution_id]) if event.type in kinds
    ]
    artifacts = {
        artifact.id: artifact
        for artifact in store.get_artifacts_by_id([event.artifact_id for event in events])
    }
    result: dict[str, list] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        result.setdefault(key, []).append(artifacts[event.artifact_id])
    return result


def artifact_type_name(store, artifact) -> str:
    """The type name of an artifact, e.g. "Examples"."""
    return store.get_artifact_types_by_id([artifact.type_id])[0].name


def upstream_artifacts(store, artifact_id: int) -> list:
    """Every artifact that went, directly or through other executions, into `artifact_id`."""
    seen: dict[int, object] = {}
    frontier = [artifact_id]
    while frontier:
        events = store.get_events_by_artifact_ids(frontier)
        producers = {event.execution_id for event in events if event.type in OUTPUT_EVENTS}
        frontier = []
        for execution_id in producers:
            for artifacts in input_artifacts(store, execution_id).values():
                for artifact in artifacts:
                    if artifact.id not in seen:
                        seen[artifact.id] = artifact
                        frontier.append(artifact.id)
    return list(seen.values())


def custom_property(artifact, name: str):
    """An artifact's custom property as a Python value, or None when unset."""
    if name not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[name]
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
