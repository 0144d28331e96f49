"""The compiled Kubeflow pipeline executes: every task's container command, run locally.

The digits pipeline is compiled with a local pipeline root and home, then `pipelines.kfp_local`
runs each task's command (TFX's Kubeflow v2 executor entrypoint, and ExampleGen's driver) as a
subprocess in DAG order, handing it the ExecutorInput the KFP launcher would. A compile that
produced a task that cannot run, or wires an artifact wrongly, fails here.
"""

import json
import os

import numpy as np
import pytest

from models.data import digits
from models.settings import CompressionSettings, TrainerSettings
from pipelines import kfp_local, kubeflow
from pipelines.config import EvaluationConfig, PipelineConfig

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
IMAGE = "europe-docker.pkg.dev/dlforge-example/dlforge/dlforge:1"


@pytest.fixture(scope="module")
def compiled_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kfp_local")
    config = PipelineConfig(
        home=str(folder / "home"),
        tune=False,
        train_steps=60,
        trainer=TrainerSettings(family="perceptron", epochs=2),
        evaluation=EvaluationConfig(min_accuracy=0.5, max_accuracy_drop=0.5),
        compression=CompressionSettings(recipes=("dynamic_range",), accuracy_budget=0.5),
    )
    kfp_local.prepare_home(config)
    document = kubeflow.pipeline_document(
        config, target="vertex", image=IMAGE, pipeline_root=str(folder / "pipeline_root")
    )
    run = kfp_local.run_compiled(document, run_id="run-1")
    return config, document, run


def test_every_task_runs_after_its_upstream_tasks(compiled_run):
    _, document, run = compiled_run
    tasks = document["pipelineSpec"]["root"]["dag"]["tasks"]
    ran = [task.name for task in run.tasks]
    assert sorted(ran) == sorted(tasks)
    for name, task in tasks.items():
        for upstream in kfp_local.upstream_tasks(task):
            assert ran.index(upstream) < ran.index(name)
    spec = kfp_local.load_spec(document)
    executors = spec["deploymentSpec"]["executors"]
    resolvers = {
        name
        for name, task in tasks.items()
        if "resolver"
        in executors[spec["components"][task["componentRef"]["name"]]["executorLabel"]]
    }
    assert {task.name for task in run.tasks if task.kind == "resolver"} == resolvers
    assert {
        "latest_blessed_model-model-blessing-resolver",
        "latest_blessed_model-model-resolver",
    } <= resolvers


def test_example_gen_driver_resolved_the_span(compiled_run):
    _, _, run = compiled_run
    (examples,) = run.task("CsvExampleGen").outputs["examples"]
    assert examples["metadata"]["custom:span"] == 0
    assert json.loads(examples["metadata"]["split_names"]) == ["train", "eval", "test"]
    assert os.listdir(os.path.join(examples["uri"], "Split-test"))


def test_first_run_has_no_baseline_and_the_model_is_blessed(compiled_run):
    _, _, run = compiled_run
    assert run.task("latest_blessed_model-model-resolver").outputs == {"model": []}
    (blessing,) = run.task("Evaluator").outputs["blessing"]
    (model,) = run.task("Trainer").outputs["model"]
    assert blessing["metadata"]["blessed"] == 1
    # The blessing names the model by its artifact name, as the next run's resolver reads it.
    assert blessing["metadata"]["current_model_id"] == model["name"]


def _resolver(document: dict, name: str) -> dict:
    spec = kfp_local.load_spec(document)
    return spec["deploymentSpec"]["executors"][f"{name}_executor"]


def test_the_evaluators_blessing_resolves_to_the_trainers_model(compiled_run):
    _, document, run = compiled_run
    store = kfp_local.ArtifactStore(run.root)

    model = kfp_local.resolve(
        _resolver(document, "latest_blessed_model-model-resolver"),
        {"input": {"artifacts": run.task("Evaluator").outputs["blessing"]}},
        store,
    )

    assert model["model"] == run.task("Trainer").outputs["model"]


def test_the_next_run_would_resolve_this_blessed_model_as_its_baseline(compiled_run):
    _, document, run = compiled_run
    store = kfp_local.ArtifactStore(run.root)

    blessing = kfp_local.resolve(
        _resolver(document, "latest_blessed_model-model-blessing-resolver"), {}, store
    )

    assert blessing["model_blessing"] == run.task("Evaluator").outputs["blessing"]


def test_the_blessed_model_is_pushed_to_the_serving_dir_and_predicts(compiled_run):
    import tensorflow as tf

    config, _, run = compiled_run
    (pushed,) = run.task("Pusher").outputs["pushed_model"]
    versions = os.listdir(config.serving_dir)
    assert len(versions) == 1 and versions[0].isdigit()
    version_dir = os.path.join(config.serving_dir, versions[0])
    assert pushed["metadata"]["pushed"] == 1
    assert pushed["metadata"]["pushed_destination"] == version_dir
    assert os.path.exists(os.path.join(version_dir, "saved_model.pb"))
    pixels, labels = digits.load_digits_arrays()
    model = tf.saved_model.load(version_dir)
    outputs = model.signatures["serving_dense"](inputs=tf.constant(pixels[:300], tf.float32))
    accuracy = float(np.mean(outputs["class_ids"].numpy() == labels[:300]))
    assert accuracy >= config.evaluation.min_accuracy


def test_the_device_model_is_pushed_with_its_metadata(compiled_run):
    config, _, run = compiled_run
    (pushed,) = run.task("TFLitePusher").outputs["pushed_model"]
    (version,) = os.listdir(config.tflite_dir)
    version_dir = os.path.join(config.tflite_dir, version)
    assert pushed["metadata"]["pushed"] == 1
    assert os.path.getsize(os.path.join(version_dir, "model.tflite")) > 0
    with open(os.path.join(version_dir, "metadata.json")) as handle:
        metadata = json.load(handle)
    assert metadata["version"] == version
    assert metadata["recipe"] == "dynamic_range"
