"""Runs a compiled Kubeflow v2 pipeline's tasks on this machine, as the KFP launcher would.

The compiled document (a `PipelineSpec`, or a Vertex `PipelineJob` around one) says, per task,
which container command to run and which artifacts and parameters it takes. This module runs
each container command in DAG order as a subprocess of this Python, handing it the
`ExecutorInput` JSON the launcher hands it on Kubeflow Pipelines or Vertex AI:

- `inputs.parameterValues`: the task's constant parameters (pipeline spec 2.1 `Value`s);
- `inputs.artifacts`: the upstream tasks' output artifacts, with the metadata their executors
  reported in `executor_output.json` merged in (span, split_names, blessed, ...);
- `outputs.artifacts`: a new artifact per output, typed by the component's output definition,
  at `<pipeline_root>/<run_id>/<task>/<output key>`; `outputs.outputFile` beside them.

A task with a `lifecycle.preCacheCheck` (file-based ExampleGen) has that driver run first with
the same input: it resolves the span and writes the output file the executor then reads.
Resolver tasks (TFX's `Resolver`, e.g. the latest blessed model) are not containers: the backend
answers their artifact queries from its metadata store. Here the store is the artifacts earlier
local runs recorded under the same pipeline root; with no match the output is empty, so the
Evaluator gets no baseline, as on the first run of a pipeline on Vertex AI.

This is a check that the compiled file runs, not an orchestrator: there is no caching, no retry
and no parallelism, and the pipeline root must be a local folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines import catalog
from pipelines.config import PipelineConfig

# The whole ExecutorInput, as the launcher substitutes it into a container's args.
EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"
ARTIFACT_LOG = "kfp_local_artifacts.jsonl"
OUTPUT_FILE = "executor_output.json"
_INPUT_METADATA_PLACEHOLDER = re.compile(
    r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}"
)
_CLAUSE = re.compile(
    r'^(?:schema_title="(?P<title>[^"]*)"'
    r"|state=(?P<state>[A-Z]+)"
    r'|name="(?P<name>[^"]*)"'
    r"|metadata\.(?P<key>[\w.-]+)\.number_value=(?P<number>-?[\d.]+))$"
)
_TITLE = re.compile(r"^title:\s*(\S+)", re.MULTILINE)
_STDERR_TAIL_LINES = 30


class TaskFailedError(RuntimeError):
    """A task's container command exited with an error."""


@dataclass(frozen=True)
class TaskRun:
    """One task of a local run.

    Attributes:
        name: The task's name in the DAG.
        kind: "container" or "resolver".
        seconds: Wall time of its commands.
        outputs: Output key -> the runtime artifacts (dicts as in ExecutorInput) it produced.
    """

    name: str
    kind: str
    seconds: float
    outputs: dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class LocalRun:
    """A finished local run of a compiled pipeline."""

    run_id: str
    root: str
    tasks: list[TaskRun] = field(default_factory=list)

    def task(self, name: str) -> TaskRun:
        """The task named `name`.

        Raises:
            KeyError: If the run has no such task.
        """
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(f"Expected a task among {[t.name for t in self.tasks]}, received {name!r}.")


def load_spec(document: Mapping[str, Any]) -> dict[str, Any]:
    """The PipelineSpec of a compiled document (a PipelineSpec or a PipelineJob around one).

    Raises:
        ValueError: If the document holds no pipeline spec.
    """
    spec = document.get("pipelineSpec", document)
    if not isinstance(spec, Mapping) or "root" not in spec or "deploymentSpec" not in spec:
        raise ValueError(
            "Expected a compiled PipelineSpec or PipelineJob (with root and deploymentSpec), "
            f"received a document with keys {sorted(document)}."
        )
    return dict(spec)


def task_order(spec: Mapping[str, Any]) -> list[str]:
    """The root DAG's tasks in an order where each comes after its upstream tasks.

    Ties are broken by name, so the order is the same on every call.

    Raises:
        ValueError: If the DAG has a cycle or names a task it does not define.
    """
    tasks = spec["root"]["dag"]["tasks"]
    upstream = {name: upstream_tasks(task) for name, task in tasks.items()}
    for name, producers in upstream.items():
        unknown = producers - set(tasks)
        if unknown:
            raise ValueError(f"Task {name!r} depends on undefined task(s) {sorted(unknown)}.")
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(name for name in tasks if name not in order and upstream[name] <= set(order))
        if not ready:
            raise ValueError(
                f"Expected an acyclic DAG; these tasks wait on each other: "
                f"{sorted(set(tasks) - set(order))}."
            )
        order.append(ready[0])
    return order


def upstream_tasks(task: Mapping[str, Any]) -> set[str]:
    """The tasks a task waits for: its dependent tasks and the producers of its artifacts."""
    producers = {
        spec["taskOutputArtifact"]["producerTask"]
        for spec in task.get("inputs", {}).get("artifacts", {}).values()
        if "taskOutputArtifact" in spec
    }
    return set(task.get("dependentTasks", [])) | producers


class ArtifactStore:
    """The artifacts local runs produced under one pipeline root, newest last.

    It stands in for the backend's metadata store when a resolver task queries it. Artifacts
    are appended as JSON lines (name, type schema title, uri, metadata, state LIVE).
    """

    def __init__(self, pipeline_root: str):
        self.path = os.path.join(pipeline_root, ARTIFACT_LOG)

    def record(self, artifacts: Sequence[Mapping[str, Any]]) -> None:
        """Appends artifacts produced by a task."""
        with open(self.path, "a") as handle:
            for artifact in artifacts:
                entry = {
                    "name": artifact["name"],
                    "schema_title": _schema_title(artifact["type"]),
                    "state": "LIVE",
                    "artifact": artifact,
                }
                handle.write(json.dumps(entry, sort_keys=True) + "\n")

    def query(self, filter_text: str) -> list[dict[str, Any]]:
        """The newest artifact matching a resolver's filter, as a list of zero or one.

        Supports the filters TFX compiles for its resolvers: clauses joined by AND, each one of
        `schema_title="T"`, `state=LIVE`, `name="N"`, `metadata.K.number_value=V`.

        Raises:
            ValueError: For a clause outside that grammar.
        """
        clauses = [_parse_clause(text.strip()) for text in filter_text.split(" AND ")]
        if not os.path.exists(self.path):
            return []
        with open(self.path) as handle:
            entries = [json.loads(line) for line in handle if line.strip()]
        for entry in reversed(entries):
            if all(_matches(entry, clause) for clause in clauses):
                return [entry["artifact"]]
        return []


def _parse_clause(text: str) -> dict[str, str]:
    match = _CLAUSE.match(text)
    if match is None:
        raise ValueError(
            'Expected a resolver filter clause like schema_title="T", state=LIVE, name="N" '
            f"or metadata.K.number_value=V, received {text!r}."
        )
    return {key: value for key, value in match.groupdict().items() if value is not None}


def _matches(entry: Mapping[str, Any], clause: Mapping[str, str]) -> bool:
    if "title" in clause:
        return entry["schema_title"] == clause["title"]
    if "state" in clause:
        return entry["state"] == clause["state"]
    if "name" in clause:
        return entry["name"] == clause["name"]
    value = entry["artifact"].get("metadata", {}).get(clause["key"])
    return isinstance(value, (int, float)) and float(value) == float(clause["number"])


def _schema_title(artifact_type: Mapping[str, Any]) -> str:
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    match = _TITLE.search(artifact_type.get("instanceSchema", ""))
    if match is None:
        raise ValueError(f"Expected an artifact type with a title, received {artifact_type!r}.")
    return match.group(1)


def executor_input(
    spec: Mapping[str, Any],
    task_name: str,
    produced: Mapping[str, Mapping[str, list[dict[str, Any]]]],
    *,
    pipeline_root: str,
    run_id: str,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ExecutorInput the launcher hands a task, as a JSON-ready dict.

    Args:
        spec: The pipeline spec.
        task_name: A task of the root DAG.
        produced: Task name -> output key -> the artifacts that task produced (already merged
            with what its executor reported).
        pipeline_root: Where outputs go: `<pipeline_root>/<run_id>/<task>/<key>`.
        run_id: Names the run's folder and its artifacts.
        parameters: Values of the pipeline's own input parameters, over their defaults.

    Returns:
        `{"inputs": {"parameterValues", "artifacts"}, "outputs": {"artifacts", "outputFile"}}`.

    Raises:
        ValueError: For an input the compiled spec wires in a way this runner does not know.
    """
    task = spec["root"]["dag"]["tasks"][task_name]
    component = spec["components"][task["componentRef"]["name"]]
    task_root = os.path.join(pipeline_root, run_id, task_name)
    pipeline_parameters = _pipeline_parameters(spec, parameters or {})
    parameter_values = {}
    for name, value in task.get("inputs", {}).get("parameters", {}).items():
        if "runtimeValue" in value:
            parameter_values[name] = value["runtimeValue"]["constant"]
        elif "componentInputParameter" in value:
            parameter_values[name] = pipeline_parameters[value["componentInputParameter"]]
        else:
            raise ValueError(f"Task {task_name!r}: unsupported parameter source {value!r}.")
    artifacts = {}
    for name, value in task.get("inputs", {}).get("artifacts", {}).items():
        if "taskOutputArtifact" not in value:
            raise ValueError(f"Task {task_name!r}: unsupported artifact source {value!r}.")
        source = value["taskOutputArtifact"]
        upstream = produced[source["producerTask"]].get(source["outputArtifactKey"], [])
        artifacts[name] = {"artifacts": [dict(artifact) for artifact in upstream]}
    outputs = {
        key: {
            "artifacts": [
                {
                    "name": f"{run_id}/{task_name}/{key}",
                    "type": definition["artifactType"],
                    "uri": os.path.join(task_root, key),
                    "metadata": {},
                }
            ]
        }
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items()
    }
    return {
        "inputs": {"parameterValues": parameter_values, "artifacts": artifacts},
        "outputs": {"artifacts": outputs, "outputFile": os.path.join(task_root, OUTPUT_FILE)},
    }


def _pipeline_parameters(spec: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    definitions = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(given) - set(definitions))
    if unknown:
        raise ValueError(
            f"Expected pipeline parameters among {sorted(definitions)}, received {unknown}."
        )
    values = {
        name: definition["defaultValue"]
        for name, definition in definitions.items()
        if "defaultValue" in definition
    }
    return {**values, **given}


def _command(container: Mapping[str, Any], invocation: str, python: str) -> list[str]:
    # The image runs `python`; here it is this machine's interpreter with dlforge installed.
    command = [python if part == "python" else part for part in container["command"]]
    args = [arg.replace(EXECUTOR_INPUT_PLACEHOLDER, invocation) for arg in container["args"]]
    left = [arg for arg in args if "{{$" in arg]
    if left:
        raise ValueError(f"Expected only the {{{{$}}}} placeholder in args, found {left[0]!r}.")
    return command + args


def _run(command: list[str], task_name: str, log_path: str, env: Mapping[str, str]) -> None:
    with open(log_path, "ab") as log:
        completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=dict(env))
    if completed.returncode != 0:
        with open(log_path, errors="replace") as log:
            tail = "".join(log.readlines()[-_STDERR_TAIL_LINES:])
        raise TaskFailedError(
            f"Task {task_name!r} failed with exit code {completed.returncode} "
            f"(full log: {log_path}); its last lines:\n{tail}"
        )


def _read_output_file(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def _merge_reported(
    outputs: Mapping[str, Any], reported: Mapping[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """Output artifacts with what the executor reported (metadata, uri) merged in."""
    merged = {}
    for key, listed in outputs.items():
        artifacts = []
        for index, artifact in enumerate(listed["artifacts"]):
            artifact = dict(artifact)
            reports = reported.get("artifacts", {}).get(key, {}).get("artifacts", [])
            if index < len(reports):
                artifact["metadata"] = {
                    **artifact["metadata"],
                    **reports[index].get("metadata", {}),
                }
                artifact["uri"] = reports[index].get("uri") or artifact["uri"]
            artifacts.append(artifact)
        merged[key] = artifacts
    return merged


def resolve(
    executor: Mapping[str, Any], inputs: Mapping[str, Any], store: ArtifactStore
) -> dict[str, list[dict[str, Any]]]:
    """Answers a resolver task's queries, with its input artifacts' metadata substituted.

    Args:
        executor: The task's executor in the deployment spec (`{"resolver": ...}`).
        inputs: Input key -> `{"artifacts": [...]}`, as in ExecutorInput.
        store: The artifacts of earlier runs.

    Returns:
        Output key -> the newest matching artifact, or an empty list.
    """

    def substitute(match: re.Match) -> str:
        listed = inputs.get(match.group(1), {}).get("artifacts", [])
        if not listed:
            return ""  # Nothing upstream: the query then matches nothing.
        value = listed[0].get("metadata", {}).get(match.group(2), "")
        return str(value)

    return {
        key: store.query(_INPUT_METADATA_PLACEHOLDER.sub(substitute, query["filter"]))
        for key, query in executor["resolver"]["outputArtifactQueries"].items()
    }


def prepare_home(config: PipelineConfig) -> None:
    """Puts in a local home what a compiled pipeline reads from it: the raw data (span 0 of the
    embedded data set, unless the home has data) and the curated schema.

    On Kubeflow or Vertex the same two things are uploaded to the remote home.
    """
    from pipelines.local_run import prepare_data

    entry = catalog.get_pipeline(config.pipeline)
    prepare_data(config)
    if entry.data_module:
        schema_dir = os.path.join(config.home, "schemas", config.pipeline)
        os.makedirs(schema_dir, exist_ok=True)
        shutil.copyfile(entry.schema_file, os.path.join(schema_dir, "schema.pbtxt"))


def run_compiled(
    document: Mapping[str, Any],
    *,
    run_id: str,
    pipeline_root: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    progress=None,
) -> LocalRun:
    """Runs every task of a compiled pipeline locally, in DAG order.

    Args:
        document: The compiled PipelineSpec or PipelineJob (parsed JSON).
        run_id: Names the run's folder under the pipeline root; must be new there.
        pipeline_root: A local folder; defaults to the spec's `defaultPipelineRoot`.
        parameters: Values of the pipeline's input parameters (as `runtimeConfig` would).
        python: Interpreter that stands for the image's `python`.
        env: Environment of the task processes (default: this one, with TF_USE_LEGACY_KERAS=1).
        progress: Called with one line per task, or None.

    Returns:
        The tasks run, with their output artifacts.

    Raises:
        ValueError: If the pipeline root is not a local folder, the run folder exists, or the
            document is not a compiled pipeline.
        TaskFailedError: When a task fails; later tasks are not run.
    """
    spec = load_spec(document)
    root = pipeline_root or spec.get("defaultPipelineRoot", "")
    if not root or "://" in root:
        raise ValueError(f"Expected a local pipeline root folder, received {root!r}.")
    run_dir = os.path.join(root, run_id)
    if os.path.exists(run_dir):
        raise ValueError(f"Expected a new run id, but {run_dir} already exists.")
    os.makedirs(run_dir)
    task_env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", **(env or {})}
    store = ArtifactStore(root)
    executors = spec["deploymentSpec"]["executors"]
    produced: dict[str, dict[str, list[dict[str, Any]]]] = {}
    run = LocalRun(run_id=run_id, root=root)
    for task_name in task_order(spec):
        started = time.monotonic()
        task = spec["root"]["dag"]["tasks"][task_name]
        executor_label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        executor = executors[executor_label]
        invocation = executor_input(
            spec, task_name, produced, pipeline_root=root, run_id=run_id, parameters=parameters
        )
        if "resolver" in executor:
            kind = "resolver"
            outputs = resolve(executor, invocation["inputs"]["artifacts"], store)
        elif "container" in executor:
            kind = "container"
            outputs = _run_container(executor["container"], task_name, invocation, python, task_env)
        else:
            raise ValueError(
                f"Task {task_name!r}: expected a container or resolver executor, received "
                f"{sorted(executor)}."
            )
        produced[task_name] = outputs
        if kind == "container":
            store.record([artifact for listed in outputs.values() for artifact in listed])
        seconds = time.monotonic() - started
        run.tasks.append(TaskRun(task_name, kind, seconds, outputs))
        if progress is not None:
            found = sum(len(listed) for listed in outputs.values())
            progress(f"{task_name:<46} {kind:<9} {seconds:6.1f} s  {found} artifact(s)")
    return run


def _run_container(
    container: Mapping[str, Any],
    task_name: str,
    invocation: Mapping[str, Any],
    python: str,
    env: Mapping[str, str],
) -> dict[str, list[dict[str, Any]]]:
    output_file = invocation["outputs"]["outputFile"]
    os.makedirs(os.path.dirname(output_file))
    log_path = os.path.join(os.path.dirname(output_file), "task.log")
    outputs = invocation["outputs"]["artifacts"]
    driver = container.get("lifecycle", {}).get("preCacheCheck")
    if driver is not None:
        _run(_command(driver, json.dumps(invocation), python), task_name, log_path, env)
        # The launcher updates the outputs with what the driver reported (span, version) before
        # it starts the executor; the executor reads the driver's parameters from the file.
        driven = _merge_reported(outputs, _read_output_file(output_file))
        outputs = {key: {"artifacts": listed} for key, listed in driven.items()}
        invocation = {**invocation, "outputs": {**invocation["outputs"], "artifacts": outputs}}
    _run(_command(container, json.dumps(invocation), python), task_name, log_path, env)
    return _merge_reported(outputs, _read_output_file(output_file))
