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
from pipelines import config as config_lib
from pipelines import kubeflow
from pipelines.config import KubeflowConfig, PipelineConfig, StageResources, VertexTrainingConfig

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("DLFORGE_UPDATE_GOLDEN") == "1"
HOME = "gs://dlforge-example/home"
PIPELINE_ROOT = "gs://dlforge-example/pipeline_root"
IMAGE = "europe-docker.pkg.dev/dlforge-example/dlforge/dlforge:1"
# The local pipeline's stages; KFP splits the latest-blessed-model resolver into two tasks.
UPSTREAM = {
    "CsvExampleGen": set(),
    "ImportSchemaGen": set(),
    "StatisticsGen": {"CsvExampleGen", "ImportSchemaGen"},
    "ExampleValidator": {"StatisticsGen", "ImportSchemaGen"},
    "AnomalyGate": {"ExampleValidator"},
    "GxValidator": {"AnomalyGate", "CsvExampleGen"},
    "previous_span_statistics": set(),
    "DriftGate": {"GxValidator", "ImportSchemaGen", "StatisticsGen", "previous_span_statistics"},
    "Transform": {"AnomalyGate", "CsvExampleGen", "DriftGate", "GxValidator", "ImportSchemaGen"},
    "Tuner": {"Transform"},
    "Trainer": {"Tuner", "Transform", "ImportSchemaGen"},
    "latest_blessed_model-model-blessing-resolver": set(),
    "latest_blessed_model-model-resolver": {"latest_blessed_model-model-blessing-resolver"},
    "Evaluator": {"CsvExampleGen", "Trainer", "latest_blessed_model-model-resolver"},
    "Pusher": {"Trainer", "Evaluator"},
    "Compressor": {"Trainer", "Evaluator", "CsvExampleGen", "Transform"},
    "TFLitePusher": {"Compressor"},
}
RESOLVERS = {
    "previous_span_statistics",
    "latest_blessed_model-model-blessing-resolver",
    "latest_blessed_model-model-resolver",
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
    assert {label.removesuffix("_executor") for label in containers} == set(UPSTREAM) - RESOLVERS
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
    from models import files

    output = tmp_path / "vertex.json"
    output.write_text('{"previous": true}\n')
    document = kubeflow.pipeline_document(
        PipelineConfig(home=HOME), target="vertex", image=IMAGE, pipeline_root=PIPELINE_ROOT
    )
    real_fdopen = files.os.fdopen

    class HalfWriter:
        """A stream that writes half of what it is given, then fails (a full disk)."""

        def __init__(self, stream):
            self.stream = stream

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.stream.close()

        def write(self, text):
            self.stream.write(text[: len(text) // 2])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(kubeflow, "pipeline_document", lambda *args, **kwargs: document)
    monkeypatch.setattr(files.os, "fdopen", lambda *args: HalfWriter(real_fdopen(*args)))
    with pytest.raises(OSError, match="No space left on device"):
        _compile(tmp_path, "vertex")
    assert output.read_text() == '{"previous": true}\n'
    assert [path.name for path in tmp_path.iterdir()] == ["vertex.json"]


def test_compile_command_writes_the_file_and_reports_bad_locations(tmp_path, capsys):
    from pipelines import cli

    output = tmp_path / "job.json"
    common = ["compile", "digits", "--target", "vertex", "-o", str(output), "--image", "img:1"]
    remote = ["--pipeline-root", "gs://bucket/root", "--home", "gs://bucket/home"]
    assert cli.main([*common, *remote, "--model", "mlp"]) == 0
    assert "compiled digits-mlp for vertex (17 tasks)" in capsys.readouterr().out
    assert json.loads(output.read_text())["runtimeConfig"]["gcsOutputDirectory"] == (
        "gs://bucket/root"
    )

    local_root = ["--pipeline-root", "/tmp/root", "--home", "gs://bucket/home"]
    assert cli.main([*common, *local_root]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("dlforge: error: Expected pipeline_root to be a URI")
    assert "received '/tmp/root'" in error


def _containers_by_task(spec: pipeline_spec_pb2.PipelineSpec) -> dict:
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    containers = {}
    for name, task in spec.root.dag.tasks.items():
        label = spec.components[task.component_ref.name].executor_label
        executor = executors[label].struct_value.fields
        if "container" in executor:
            container = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec()
            json_format.ParseDict(
                json_format.MessageToDict(executor["container"].struct_value), container
            )
            containers[name] = container
    return containers


@pytest.mark.parametrize("target", sorted(kubeflow.TARGETS))
def test_stage_resources_from_config_are_set_on_their_containers(tmp_path, target):
    resources = {
        "Trainer": StageResources(
            cpu_limit=8, memory_limit=32, accelerator="NVIDIA_TESLA_T4", accelerator_count=2
        ),
        "default": StageResources(cpu_limit=2, memory_limit=7.5, cpu_request=1),
    }
    config = PipelineConfig(home=HOME, kubeflow=KubeflowConfig(resources=resources))

    spec = _pipeline_spec(_compile(tmp_path, target, config), target)
    containers = _containers_by_task(spec)

    trainer = containers.pop("Trainer").resources
    assert (trainer.cpu_limit, trainer.memory_limit) == (8, 32)
    assert (trainer.accelerator.type, trainer.accelerator.count) == ("NVIDIA_TESLA_T4", 2)
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    resolvers = {
        name
        for name, task in spec.root.dag.tasks.items()
        if "resolver" in executors[spec.components[task.component_ref.name].executor_label]
    }
    assert set(containers) == set(spec.root.dag.tasks) - resolvers - {"Trainer"}
    for container in containers.values():
        limits = container.resources
        assert (limits.cpu_limit, limits.memory_limit, limits.cpu_request) == (2, 7.5, 1)
        assert not limits.HasField("accelerator")


def test_without_resources_the_containers_have_none(tmp_path):
    containers = _containers_by_task(_pipeline_spec(_compile(tmp_path, "kubeflow"), "kubeflow"))

    assert not any(container.HasField("resources") for container in containers.values())


def test_resources_for_an_unknown_stage_are_refused_listing_the_stages(tmp_path):
    config = PipelineConfig(
        home=HOME, kubeflow=KubeflowConfig(resources={"Trainr": StageResources(cpu_limit=1)})
    )

    with pytest.raises(
        ValueError, match=r"among \[.*'Trainer'.*\] or 'default', received \['Trainr'\]"
    ):
        _compile(tmp_path, "vertex", config)
    assert list(tmp_path.iterdir()) == []


def test_dataflow_beam_args_replace_the_local_ones_and_run_workers_on_the_image(tmp_path):
    dataflow = (
        "--runner=DataflowRunner",
        "--project=p",
        "--region=europe-west4",
        "--temp_location=gs://b/tmp",
    )
    config = PipelineConfig(home=HOME, kubeflow=KubeflowConfig(beam_args=dataflow))

    containers = _containers_by_task(_pipeline_spec(_compile(tmp_path, "vertex", config), "vertex"))

    expected = [*dataflow, f"--sdk_container_image={IMAGE}"]
    for container in containers.values():
        assert list(container.args[-len(expected) :]) == expected
        assert not any(arg.startswith("--direct_") for arg in container.args)


def test_kubeflow_table_of_a_config_file_loads_resources_and_beam_args(tmp_path):
    path = tmp_path / "scaled.toml"
    path.write_text(
        "[kubeflow]\n"
        'beam_args = ["--runner=FlinkRunner", "--flink_master=flink:8081"]\n'
        "[kubeflow.resources.Transform]\n"
        "memory_limit = 16.0\n"
    )

    config = config_lib.load(str(path))

    assert config.kubeflow == KubeflowConfig(
        beam_args=("--runner=FlinkRunner", "--flink_master=flink:8081"),
        resources={"Transform": StageResources(memory_limit=16.0)},
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[kubeflow]\nbeam_args = ["--runner=DataflowRunner", "--project=p"]\n',
            r"DataflowRunner to set \['--region', '--temp_location'\]",
        ),
        ("[kubeflow.resources.Trainer]\naccelerator = 'TPU_V3'\n", "accelerator_count >= 1"),
        ("[kubeflow.resources.Trainer]\ncpu_request = 4.0\ncpu_limit = 2.0\n", "cpu_request <="),
        ("[kubeflow.resources.Trainer]\ngpus = 1\n", r"Unknown key\(s\) \['gpus'\]"),
        ("[kubeflow.resources]\nTrainer = 4\n", "to be a table, received 4"),
    ],
)
def test_bad_kubeflow_tables_are_config_errors_naming_the_problem(tmp_path, table, message):
    path = tmp_path / "bad.toml"
    path.write_text(table)

    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.load(str(path))


def _trainer_job(tmp_path, training: VertexTrainingConfig, strategy: str) -> tuple[dict, dict]:
    """The compiled Trainer's executor class and its CustomJobSpec, parsed by Vertex's proto."""
    from google.cloud.aiplatform_v1.types import custom_job

    config = PipelineConfig(
        home=HOME,
        trainer=TrainerSettings(strategy=strategy),
        kubeflow=KubeflowConfig(vertex_training=training),
    )
    spec = _pipeline_spec(_compile(tmp_path, "vertex", config), "vertex")
    trainer = _containers_by_task(spec)["Trainer"]
    executor_class = trainer.args[list(trainer.args).index("--executor_class_path") + 1]
    custom_config = json.loads(_constant(spec.root.dag.tasks["Trainer"], "custom_config"))
    assert custom_config[SETTINGS_KEY]["strategy"] == strategy
    assert custom_config["ai_platform_enable_vertex"] is True
    args = custom_config["ai_platform_training_args"]
    job_spec = json_format.ParseDict(args["job_spec"], custom_job.CustomJobSpec.pb()())
    return {
        "executor": executor_class,
        "region": custom_config["ai_platform_vertex_region"],
        "project": args["project"],
    }, json_format.MessageToDict(job_spec, preserving_proto_field_name=True)


def test_multi_worker_vertex_training_compiles_a_chief_and_worker_pool(tmp_path):
    training = VertexTrainingConfig(
        project="my-project",
        region="europe-west4",
        machine_type="n1-standard-8",
        accelerator="NVIDIA_TESLA_T4",
        accelerator_count=1,
        replicas=3,
    )

    trainer, job_spec = _trainer_job(tmp_path, training, "multi_worker_mirrored")

    assert trainer == {
        "executor": "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor",
        "region": "europe-west4",
        "project": "my-project",
    }
    machine = {
        "machine_type": "n1-standard-8",
        "accelerator_type": "NVIDIA_TESLA_T4",
        "accelerator_count": 1,
    }
    pool = {"machine_spec": machine, "container_spec": {"image_uri": IMAGE}}
    assert job_spec["worker_pool_specs"] == [
        {**pool, "replica_count": "1"},
        {**pool, "replica_count": "2"},
    ]


def test_tpu_vertex_training_compiles_one_cloud_tpu_replica(tmp_path):
    training = VertexTrainingConfig(
        project="p",
        region="us-central1",
        machine_type="cloud-tpu",
        accelerator="TPU_V3",
        accelerator_count=8,
    )

    _, job_spec = _trainer_job(tmp_path, training, "tpu")

    (pool,) = job_spec["worker_pool_specs"]
    assert pool["machine_spec"] == {
        "machine_type": "cloud-tpu",
        "accelerator_type": "TPU_V3",
        "accelerator_count": 8,
    }
    assert pool["replica_count"] == "1"


def test_without_vertex_training_the_trainer_runs_in_its_step(tmp_path):
    spec = _pipeline_spec(_compile(tmp_path, "vertex"), "vertex")
    trainer = _containers_by_task(spec)["Trainer"]

    assert "tfx.components.trainer.executor.GenericExecutor" in trainer.args
    custom_config = json.loads(_constant(spec.root.dag.tasks["Trainer"], "custom_config"))
    assert list(custom_config) == [SETTINGS_KEY]


@pytest.mark.parametrize(
    ("training", "strategy", "message"),
    [
        (VertexTrainingConfig(project="p", region="r", replicas=2), "mirrored", "for 2 Vertex"),
        (
            VertexTrainingConfig(
                project="p", region="r", accelerator="TPU_V3", accelerator_count=8
            ),
            "tpu",
            "one replica of machine_type 'cloud-tpu'",
        ),
        (VertexTrainingConfig(project="p", region="r"), "tpu", "exactly when the Vertex AI"),
    ],
)
def test_vertex_machines_that_do_not_fit_the_strategy_are_refused(
    tmp_path, training, strategy, message
):
    config = PipelineConfig(
        home=HOME,
        trainer=TrainerSettings(strategy=strategy),
        kubeflow=KubeflowConfig(vertex_training=training),
    )

    with pytest.raises(ValueError, match=message):
        _compile(tmp_path, "vertex", config)
    assert list(tmp_path.iterdir()) == []


# The stages every pipeline of the catalog compiles to, beyond digits (checked in full above).
CATALOG_STAGES = {
    "text": {
        "CsvExampleGen",
        "GxValidator",
        "DriftGate",
        "Transform",
        "Tuner",
        "Trainer",
        "Evaluator",
        "Pusher",
    },
    "co2": {
        "CsvExampleGen",
        "GxValidator",
        "Transform",
        "Tuner",
        "Trainer",
        "Evaluator",
        "BaselineGate",
        "Pusher",
    },
    # Judged by their family's metric on Transform's test split, not by TFMA.
    "generative": {"GxValidator", "Transform", "Tuner", "Trainer", "FamilyEvaluator", "Pusher"},
    "text_lm": {"GxValidator", "Transform", "Tuner", "Trainer", "FamilyEvaluator", "Pusher"},
    "cartpole": {"AgentTrainer", "AgentEvaluator", "Pusher", "PolicyTFLite", "TFLitePusher"},
    "frozenlake": {"AgentTrainer", "AgentEvaluator", "Pusher", "PolicyTFLite", "TFLitePusher"},
}


@pytest.mark.parametrize("pipeline", sorted(CATALOG_STAGES))
@pytest.mark.parametrize("target", ["kubeflow", "vertex"])
def test_every_catalog_pipeline_compiles_to_a_parsable_spec_with_its_stages(
    tmp_path, pipeline, target
):
    config = PipelineConfig(pipeline=pipeline, home=HOME)

    spec = _pipeline_spec(_compile(tmp_path, target, config), target)

    tasks = set(spec.root.dag.tasks)
    assert CATALOG_STAGES[pipeline] <= tasks
    assert spec.pipeline_info.name == config.pipeline_name.replace("_", "-")
    if pipeline == "co2":
        assert _upstream(spec.root.dag.tasks["Pusher"]) == {"Trainer", "BaselineGate"}
        assert "Compressor" not in tasks
    if pipeline in ("generative", "text_lm"):
        assert _upstream(spec.root.dag.tasks["Pusher"]) == {"Trainer", "FamilyEvaluator"}
        assert _upstream(spec.root.dag.tasks["FamilyEvaluator"]) == {
            "Transform",
            "Trainer",
            "latest_blessed_model-model-resolver",
        }
        assert not {"Evaluator", "Compressor"} & tasks


@pytest.mark.parametrize("pipeline", sorted(CATALOG_STAGES))
@pytest.mark.parametrize("target", sorted(kubeflow.TARGETS))
def test_every_catalog_pipeline_compiles_to_its_golden(tmp_path, pipeline, target):
    """With its default family and settings (digits: `test_compiled_document_matches_golden`)."""
    config = PipelineConfig(pipeline=pipeline, home=HOME)
    document = _compile(tmp_path, target, config)
    golden = GOLDEN_DIR / f"{config.pipeline_name}_{target}.json"
    if UPDATE_GOLDEN:
        golden.write_text(kubeflow.normalized_json(document))
    assert kubeflow.normalized_json(document) == golden.read_text()


def test_a_bert_evaluator_imports_the_module_that_registers_its_tokenizer_ops(tmp_path):
    config = config_lib.from_mapping(
        {"pipeline": "text", "home": HOME, "trainer": {"family": "bert"}}
    )
    spec = _pipeline_spec(_compile(tmp_path, "kubeflow", config), "kubeflow")
    assert _constant(spec.root.dag.tasks["Evaluator"], "module_path") == "models.families.bert"
    digits = _pipeline_spec(_compile(tmp_path, "kubeflow"), "kubeflow")
    assert "module_path" not in digits.root.dag.tasks["Evaluator"].inputs.parameters


def test_on_an_s3_root_every_step_runs_through_the_step_entry_point(tmp_path):
    document = kubeflow.compile_pipeline(
        PipelineConfig(home="s3://bucket/home"),
        target="kubeflow",
        output_path=str(tmp_path / "kubeflow.json"),
        image=IMAGE,
        pipeline_root="s3://bucket/root",
    )

    def commands(document: dict) -> list[list[str]]:
        return [
            json.loads(found)
            for found in re.findall(r'"command": (\[[^\]]*\])', json.dumps(document))
        ]

    wrapped, plain = commands(document), commands(_compile(tmp_path, "kubeflow"))
    assert len(wrapped) == len(plain) > 10  # every executor and the ExampleGen driver
    assert all(command[:3] == ["python", "-m", kubeflow.S3_STEP_MODULE] for command in wrapped)
    assert all(command[:2] == ["python", "-m"] and len(command) == 3 for command in plain)
    assert sorted(command[3] for command in wrapped) == sorted(command[2] for command in plain)
