"""Tests of compiling the digits pipeline for Kubeflow Pipelines v2 and Vertex AI Pipelines.

The compiled documents are compared with golden files; regenerate them after an intended change
with `DLFORGE_UPDATE_GOLDEN=1 python -m pytest tests/test_kubeflow_compile.py` and review the diff.
"""

import json
import os
import pathlib
import re
import tempfile

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from models.settings import SETTINGS_KEY, TrainerSettings
from pipelines import kubeflow
from pipelines.config import PipelineConfig

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("DLFORGE_UPDATE_GOLDEN") == "1"
HOME = "gs://dlforge-example/home"
PIPELINE_ROOT = "gs://dlforge-example/pipeline_root"
IMAGE = "europe-docker.pkg.dev/dlforge-example/dlforge/dlforge:1"
# The local pipeline's stages; KFP splits the latest-blessed-model resolver into two tasks.
UPSTREAM = {
    "CsvExampleGen": set(),
    "StatisticsGen": {"CsvExampleGen"},
    "ImportSchemaGen": set(),
    "ExampleValidator": {"StatisticsGen", "ImportSchemaGen"},
    "AnomalyGate": {"ExampleValidator"},
    "Transform": {"AnomalyGate", "CsvExampleGen", "ImportSchemaGen"},
    "Tuner": {"Transform"},
    "Trainer": {"Tuner", "Transform", "ImportSchemaGen"},
    "latest_blessed_model-model-blessing-resolver": set(),
    "latest_blessed_model-model-resolver": {"latest_blessed_model-model-blessing-resolver"},
    "Evaluator": {"CsvExampleGen", "Trainer", "latest_blessed_model-model-resolver"},
    "Pusher": {"Trainer", "Evaluator"},
    "Compressor": {"Trainer", "Evaluator", "CsvExampleGen"},
    "TFLitePusher": {"Compressor"},
}
TRAINER = TrainerSettings(family="mlp", batch_size=32, max_trials=3, hyperparameters={"units": 64})


def _compile(tmp_path, target: str, config: PipelineConfig | None = None) -> dict:
    return kubeflow.compile_pipeline(
        config or PipelineConfig(home=HOME),
        target=target,
        output_path=str(tmp_path / f"{target}.json"),
        image=IMAGE,
        pipeline_root=PIPELINE_ROOT,
    )


def _pipeline_spec(document: dict, target: str) -> pipeline_spec_pb2.PipelineSpec:
    """Parses the document as the message its service reads (unknown fields fail the parse)."""
    if target == "kubeflow":
        return json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())
    job = json_format.ParseDict(document, pipeline_spec_pb2.PipelineJob())
    assert job.runtime_config.gcs_output_directory == PIPELINE_ROOT
    # A PipelineJob holds its spec as a Struct.
    return json_format.ParseDict(document["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())


def _upstream(task: pipeline_spec_pb2.PipelineTaskSpec) -> set[str]:
    producers = {spec.task_output_artifact.producer_task for spec in task.inputs.artifacts.values()}
    return set(task.dependent_tasks) | (producers - {""})


def _constant(task: pipeline_spec_pb2.PipelineTaskSpec, name: str) -> str:
    return task.inputs.parameters[name].runtime_value.constant.string_value


@pytest.mark.parametrize("target", sorted(kubeflow.TARGETS))
def test_compiled_document_matches_golden(tmp_path, target):
    document = _compile(tmp_path, target)
    with open(tmp_path / f"{target}.json") as handle:
        assert json.load(handle) == document
    golden = GOLDEN_DIR / f"digits_cnn_{target}.json"
    if UPDATE_GOLDEN:
        GOLDEN_DIR.mkdir(exist_ok=True)
        golden.write_text(kubeflow.normalized_json(document))
    assert kubeflow.normalized_json(document) == golden.read_text()


def test_normalized_json_drops_only_environment_stamps(tmp_path):
    document = _compile(tmp_path, "vertex")
    changed = json.loads(json.dumps(document))
    changed["pipelineSpec"]["sdkVersion"] = "tfx-9.9.9"
    changed["labels"].update(tfx_version="9-9-9", tfx_py_version="3-99")
    assert kubeflow.normalized_json(changed) == kubeflow.normalized_json(document)
    assert document["pipelineSpec"]["sdkVersion"].startswith("tfx-")  # input left unchanged
    changed["pipelineSpec"]["pipelineInfo"]["name"] = "other"
    assert kubeflow.normalized_json(changed) != kubeflow.normalized_json(document)


def test_kubeflow_file_is_the_pipeline_spec_and_vertex_file_the_job_around_it(tmp_path):
    spec_document = _compile(tmp_path, "kubeflow")
    job_document = _compile(tmp_path, "vertex")
    spec = _pipeline_spec(spec_document, "kubeflow")
    job = json_format.ParseDict(job_document, pipeline_spec_pb2.PipelineJob())
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(spec_document, pipeline_spec_pb2.PipelineJob())
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(job_document, pipeline_spec_pb2.PipelineSpec())
    assert job_document["pipelineSpec"] == spec_document
    assert spec.schema_version == "2.1.0"  # the only version the KFP API server accepts
    assert job.runtime_config.gcs_output_directory == PIPELINE_ROOT
    assert job.display_name == spec.pipeline_info.name == "digits-cnn"


@pytest.mark.parametrize("target", sorted(kubeflow.TARGETS))
def test_every_stage_is_a_task_wired_as_locally(tmp_path, target):
    beam_args = ("--direct_num_workers=2", "--direct_running_mode=multi_processing")
    config = PipelineConfig(home=HOME, trainer=TRAINER, train_steps=123, beam_args=beam_args)
    spec = _pipeline_spec(_compile(tmp_path, target, config), target)
    tasks = spec.root.dag.tasks
    assert {name: _upstream(task) for name, task in tasks.items()} == UPSTREAM
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    containers = {
        name: executor["container"]
        for name, executor in executors.items()
        if "container" in executor
    }
    assert len(containers) == len(UPSTREAM) - 2  # every stage but the two resolver tasks
    assert {container["image"] for container in containers.values()} == {IMAGE}
    for container in containers.values():
        assert tuple(container["args"][-len(beam_args) :]) == beam_args
        assert sum(arg.startswith("--direct_") for arg in container["args"]) == len(beam_args)
    assert spec.default_pipeline_root == PIPELINE_ROOT
    assert spec.pipeline_info.name == "digits-mlp"
    for name in ("Tuner", "Trainer"):
        assert json.loads(_constant(tasks[name], "custom_config")) == {
            SETTINGS_KEY: TRAINER.to_dict()
        }
    assert json.loads(_constant(tasks["Trainer"], "train_args"))["num_steps"] == 123
    assert _constant(tasks["CsvExampleGen"], "input_base") == f"{HOME}/data/digits"
    assert _constant(tasks["ImportSchemaGen"], "schema_file") == (
        f"{HOME}/schemas/digits/schema.pbtxt"
    )
    destination = json.loads(_constant(tasks["Pusher"], "push_destination"))
    assert destination == {"filesystem": {"base_directory": f"{HOME}/serving/digits_mlp"}}


@pytest.mark.parametrize("target", sorted(kubeflow.TARGETS))
def test_compiling_writes_only_the_output_file_and_no_local_path(tmp_path, monkeypatch, target):
    working_dir, output_dir = tmp_path / "working_dir", tmp_path / "output"
    working_dir.mkdir()
    output_dir.mkdir()
    monkeypatch.chdir(working_dir)
    _compile(output_dir, target)
    assert list(working_dir.iterdir()) == []
    assert [path.name for path in output_dir.iterdir()] == [f"{target}.json"]
    text = (output_dir / f"{target}.json").read_text()
    repository = str(pathlib.Path(kubeflow.__file__).parents[1])
    for local in (repository, tempfile.gettempdir(), str(pathlib.Path.home())):
        assert local not in text
    assert "gs:/" not in text.replace("gs://", "")  # what os.path.abspath makes of a URI


def test_unknown_target_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"\['kubeflow', 'vertex'\], received 'argo'"):
        _compile(tmp_path, "argo")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("target", "home", "pipeline_root", "wrong"),
    [
        ("kubeflow", HOME, "/tmp/pipeline_root", "pipeline_root"),
        ("vertex", HOME, "s3://bucket/root", "pipeline_root"),
        ("vertex", "dlforge_home", PIPELINE_ROOT, "config.home"),
    ],
)
def test_local_or_unsupported_locations_are_refused(tmp_path, target, home, pipeline_root, wrong):
    with pytest.raises(ValueError, match=f"Expected {wrong} to be a URI .* received"):
        kubeflow.compile_pipeline(
            PipelineConfig(home=home),
            target=target,
            output_path=str(tmp_path / "pipeline.json"),
            image=IMAGE,
            pipeline_root=pipeline_root,
        )
    assert list(tmp_path.iterdir()) == []


def test_empty_image_is_refused(tmp_path):
    # The runner would silently fall back to TFX's public image, which lacks dlforge.
    with pytest.raises(ValueError, match="Expected a container image, received ''"):
        kubeflow.compile_pipeline(
            PipelineConfig(home=HOME),
            target="kubeflow",
            output_path=str(tmp_path / "pipeline.json"),
            image="",
            pipeline_root=PIPELINE_ROOT,
        )
    assert list(tmp_path.iterdir()) == []


def test_output_in_a_missing_folder_is_a_clear_error(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match=re.escape(f"{missing} is not a folder")):
        kubeflow.compile_pipeline(
            PipelineConfig(home=HOME),
            target="vertex",
            output_path=str(missing / "pipeline.json"),
            image=IMAGE,
            pipeline_root=PIPELINE_ROOT,
        )
    assert not missing.exists()


def test_failed_write_leaves_the_previous_file_untouched(tmp_path, monkeypatch):
    output = tmp_path / "vertex.json"
    output.write_text('{"previous": true}\n')

    def dump_half_then_fail(document, stream, **kwargs):
        stream.write('{"pipelineSpec": ')
        raise TypeError("Object of type X is not JSON serializable")

    monkeypatch.setattr(kubeflow.json, "dump", dump_half_then_fail)
    with pytest.raises(TypeError, match="not JSON serializable"):
        _compile(tmp_path, "vertex")
    assert output.read_text() == '{"previous": true}\n'
    assert [path.name for path in tmp_path.iterdir()] == ["vertex.json"]


def test_compile_command_writes_the_file_and_reports_bad_locations(tmp_path, capsys):
    from pipelines import cli

    output = tmp_path / "job.json"
    common = ["compile", "digits", "--target", "vertex", "-o", str(output), "--image", "img:1"]
    remote = ["--pipeline-root", "gs://bucket/root", "--home", "gs://bucket/home"]
    assert cli.main([*common, *remote, "--model", "mlp"]) == 0
    assert "compiled digits-mlp for vertex (14 tasks)" in capsys.readouterr().out
    assert json.loads(output.read_text())["runtimeConfig"]["gcsOutputDirectory"] == (
        "gs://bucket/root"
    )

    local_root = ["--pipeline-root", "/tmp/root", "--home", "gs://bucket/home"]
    assert cli.main([*common, *local_root]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("dlforge: error: Expected pipeline_root to be a URI")
    assert "received '/tmp/root'" in error
