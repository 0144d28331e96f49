"""Unit tests of `pipelines.kfp_local` on small hand-written pipeline specs (no TensorFlow).

Each container task is a short Python script that records the ExecutorInput it was handed and
writes an `executor_output.json`, as TFX's entrypoint does.
"""

import json
import os
import sys

import pytest

from pipelines import kfp_local

# Records its ExecutorInput in each output artifact's folder; reports metadata for each output.
TASK_SCRIPT = """
import json, os, sys
invocation = json.loads(sys.argv[1])
outputs = invocation["outputs"]
os.makedirs(os.path.dirname(outputs["outputFile"]), exist_ok=True)
report = {"artifacts": {}}
for key, listed in outputs["artifacts"].items():
    artifact = listed["artifacts"][0]
    os.makedirs(artifact["uri"], exist_ok=True)
    with open(os.path.join(artifact["uri"], "invocation.json"), "w") as handle:
        json.dump(invocation, handle)
    metadata = {"blessed": 1, "made_by": key}
    report["artifacts"][key] = {"artifacts": [{**artifact, "metadata": metadata}]}
with open(outputs["outputFile"], "w") as handle:
    json.dump(report, handle)
"""
DRIVER_SCRIPT = """
import json, os, sys
outputs = json.loads(sys.argv[1])["outputs"]
os.makedirs(os.path.dirname(outputs["outputFile"]), exist_ok=True)
artifact = outputs["artifacts"]["out"]["artifacts"][0]
report = {"artifacts": {"out": {"artifacts": [{**artifact, "metadata": {"span": 7}}]}}}
with open(outputs["outputFile"], "w") as handle:
    json.dump(report, handle)
"""
FAILING_SCRIPT = "import sys; print('the data is not there'); sys.exit(3)"
BLESSING_TYPE = {"instanceSchema": "title: tfx.ModelBlessing\ntype: object\n"}


def _container(script: str, driver: str | None = None) -> dict:
    container = {"image": "img:1", "command": ["python", "-c", script], "args": ["{{$}}"]}
    if driver is not None:
        container["lifecycle"] = {
            "preCacheCheck": {"command": ["python", "-c", driver], "args": ["{{$}}"]}
        }
    return {"container": container}


def _spec(consumer_script: str = TASK_SCRIPT) -> dict:
    """producer (with a driver) -> consumer <- baseline (a resolver: latest blessed `out`)."""
    outputs = {"outputDefinitions": {"artifacts": {"out": {"artifactType": BLESSING_TYPE}}}}
    query = 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
    return {
        "pipelineInfo": {"name": "toy"},
        "components": {
            "producer": {"executorLabel": "producer_executor", **outputs},
            "consumer": {"executorLabel": "consumer_executor", **outputs},
            "baseline": {"executorLabel": "resolver_executor", **outputs},
        },
        "deploymentSpec": {
            "executors": {
                "producer_executor": _container(TASK_SCRIPT, driver=DRIVER_SCRIPT),
                "consumer_executor": _container(consumer_script),
                "resolver_executor": {
                    "resolver": {"outputArtifactQueries": {"out": {"filter": query}}}
                },
            }
        },
        "root": {
            "dag": {
                "tasks": {
                    "producer": {
                        "componentRef": {"name": "producer"},
                        "inputs": {"parameters": {"size": {"runtimeValue": {"constant": 3.0}}}},
                    },
                    "baseline": {"componentRef": {"name": "baseline"}},
                    "consumer": {
                        "componentRef": {"name": "consumer"},
                        "dependentTasks": ["baseline", "producer"],
                        "inputs": {
                            "artifacts": {
                                name: {
                                    "taskOutputArtifact": {
                                        "producerTask": name,
                                        "outputArtifactKey": "out",
                                    }
                                }
                                for name in ("producer", "baseline")
                            },
                            "parameters": {"label": {"runtimeValue": {"constant": "x"}}},
                        },
                    },
                }
            }
        },
    }


def _invocation(artifact: dict) -> dict:
    with open(os.path.join(artifact["uri"], "invocation.json")) as handle:
        return json.load(handle)


def test_a_task_gets_parameters_upstream_artifacts_with_reported_metadata_and_outputs(tmp_path):
    run = kfp_local.run_compiled(_spec(), run_id="run-1", pipeline_root=str(tmp_path))

    (produced,) = run.task("producer").outputs["out"]
    (consumed,) = run.task("consumer").outputs["out"]
    invocation = _invocation(consumed)
    assert invocation["inputs"]["parameterValues"] == {"label": "x"}
    assert invocation["inputs"]["artifacts"]["producer"]["artifacts"] == [produced]
    assert produced["metadata"] == {"span": 7, "blessed": 1, "made_by": "out"}
    assert produced["uri"] == str(tmp_path / "run-1" / "producer" / "out")
    assert produced["name"] == "run-1/producer/out"
    assert produced["type"] == BLESSING_TYPE
    assert invocation["outputs"]["outputFile"] == str(
        tmp_path / "run-1" / "consumer" / "executor_output.json"
    )


def test_the_driver_runs_first_and_the_executor_gets_what_it_reported(tmp_path):
    run = kfp_local.run_compiled(_spec(), run_id="run-1", pipeline_root=str(tmp_path))

    invocation = _invocation(run.task("producer").outputs["out"][0])
    assert invocation["inputs"]["parameterValues"] == {"size": 3.0}
    assert invocation["outputs"]["artifacts"]["out"]["artifacts"][0]["metadata"] == {"span": 7}


def test_a_resolver_gives_nothing_first_then_the_latest_match_of_earlier_runs(tmp_path):
    first = kfp_local.run_compiled(_spec(), run_id="run-1", pipeline_root=str(tmp_path))
    second = kfp_local.run_compiled(_spec(), run_id="run-2", pipeline_root=str(tmp_path))

    assert first.task("baseline").outputs == {"out": []}
    (resolved,) = second.task("baseline").outputs["out"]
    assert resolved == first.task("consumer").outputs["out"][0]  # the newest blessed one
    consumed = _invocation(second.task("consumer").outputs["out"][0])
    assert consumed["inputs"]["artifacts"]["baseline"]["artifacts"] == [resolved]


def test_tasks_run_in_dag_order_with_ties_by_name():
    assert kfp_local.task_order(_spec()) == ["baseline", "producer", "consumer"]


def test_a_cycle_is_refused_naming_the_tasks():
    spec = _spec()
    spec["root"]["dag"]["tasks"]["producer"]["dependentTasks"] = ["consumer"]

    with pytest.raises(ValueError, match=r"acyclic.*\['consumer', 'producer'\]"):
        kfp_local.task_order(spec)


def test_a_failing_task_stops_the_run_naming_it_with_its_output(tmp_path):
    with pytest.raises(kfp_local.TaskFailedError) as raised:
        kfp_local.run_compiled(
            _spec(consumer_script=FAILING_SCRIPT), run_id="run-1", pipeline_root=str(tmp_path)
        )

    message = str(raised.value)
    assert "Task 'consumer' failed with exit code 3" in message
    assert "the data is not there" in message


def test_the_image_python_is_this_interpreter_and_the_input_replaces_the_placeholder():
    container = {"command": ["python", "-m", "entry"], "args": ["--input", "{{$}}", "--x"]}

    command = kfp_local._command(container, '{"inputs": {}}', sys.executable)

    assert command == [sys.executable, "-m", "entry", "--input", '{"inputs": {}}', "--x"]


def test_an_unknown_placeholder_is_refused():
    container = {"command": ["python"], "args": ["{{$.inputs.parameters['x']}}"]}

    with pytest.raises(ValueError, match="Expected only the"):
        kfp_local._command(container, "{}", sys.executable)


@pytest.mark.parametrize("root", ["gs://bucket/root", ""])
def test_a_remote_or_missing_pipeline_root_is_refused(root):
    with pytest.raises(ValueError, match="Expected a local pipeline root folder"):
        kfp_local.run_compiled(_spec(), run_id="run-1", pipeline_root=root)


def test_an_existing_run_id_is_refused(tmp_path):
    (tmp_path / "run-1").mkdir()

    with pytest.raises(ValueError, match="Expected a new run id"):
        kfp_local.run_compiled(_spec(), run_id="run-1", pipeline_root=str(tmp_path))


def test_a_document_that_is_not_a_compiled_pipeline_is_refused():
    with pytest.raises(ValueError, match="Expected a compiled PipelineSpec or PipelineJob"):
        kfp_local.load_spec({"displayName": "x"})


def test_a_resolver_filter_outside_the_supported_grammar_is_refused(tmp_path):
    store = kfp_local.ArtifactStore(str(tmp_path))

    with pytest.raises(ValueError, match="received 'create_time>1'"):
        store.query('schema_title="tfx.Model" AND create_time>1')
