"""The digits pipeline end to end on LocalDagRunner, with a small budget.

One home goes through three runs in order: a cold run, an unchanged re-run (served from cache),
and a run on corrupted data (stopped before training, nothing lost).
"""

import json
import os
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf

from models import export
from models.data import digits
from models.settings import TrainerSettings
from pipelines import cli, metadata
from pipelines.config import EvaluationConfig, PipelineConfig
from pipelines.local_run import RunSummary, run_pipeline
from tests import fixtures

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
TRAINING_STAGES = ("Transform", "Tuner", "Trainer")


@dataclass
class Runs:
    config: PipelineConfig
    cold: RunSummary
    warm: RunSummary
    corrupted: RunSummary
    versions_before_corruption: list[str]


def _corrupt_one_pixel(config: PipelineConfig) -> None:
    path = os.path.join(config.data_dir, "train", "digits.csv")
    pixels, labels = digits.read_csv(path)
    pixels[5, 17] = 99
    digits.write_csv(path, pixels, labels)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    config = PipelineConfig(
        home=str(tmp_path_factory.mktemp("home")),
        train_steps=200,
        tuner_steps_per_epoch=5,
        trainer=TrainerSettings(family="cnn", epochs=4, max_trials=2, tuner_epochs=1),
        evaluation=EvaluationConfig(min_accuracy=0.5, max_accuracy_drop=0.5),
    )
    cold = run_pipeline(config, progress=lambda line: None)
    warm = run_pipeline(config, progress=lambda line: None)
    assert cold.status == "complete", cold.error
    versions = sorted(os.listdir(config.serving_dir))
    _corrupt_one_pixel(config)
    corrupted = run_pipeline(config, progress=lambda line: None)
    return Runs(config, cold, warm, corrupted, versions)


def test_cold_run_completes_blessed_and_pushed(runs):
    assert runs.cold.status == "complete", runs.cold.error
    assert runs.cold.blessed
    assert runs.cold.pushed
    assert os.path.dirname(runs.cold.pushed_path) == runs.config.serving_dir
    assert runs.cold.pushed_version.isdigit()
    assert os.path.basename(runs.cold.pushed_path) == runs.cold.pushed_version
    assert os.path.exists(os.path.join(runs.cold.pushed_path, "saved_model.pb"))
    assert [name for name in os.listdir(runs.config.serving_dir) if not name.isdigit()] == []


def test_summary_file_records_the_run(runs):
    path = os.path.join(runs.config.runs_dir, runs.cold.run_id, "summary.json")
    with open(path) as handle:
        summary = json.load(handle)
    assert summary["pipeline"] == "digits_cnn"
    assert summary["model_family"] == "cnn"
    assert summary["run_id"] == runs.cold.run_id
    assert set(summary["stage_seconds"]) >= {
        "CsvExampleGen",
        "StatisticsGen",
        "ExampleValidator",
        "AnomalyGate",
        "Transform",
        "Tuner",
        "Trainer",
        "Evaluator",
        "Pusher",
    }
    assert 0.5 <= summary["metrics"]["test_accuracy"] <= 1
    assert sorted(summary["accuracy_by_label"]) == [str(label) for label in range(10)]
    assert summary["blessed"] is True
    assert summary["pushed_path"] == runs.cold.pushed_path


def test_pushed_model_serves_both_signatures_with_the_evaluated_accuracy(runs):
    pixels, labels = digits.read_csv(os.path.join(runs.config.data_dir, "test", "digits.csv"))
    loaded = tf.saved_model.load(runs.cold.pushed_path)
    from_examples = loaded.signatures[export.DEFAULT_SIGNATURE](
        examples=tf.constant(fixtures.raw_examples(pixels))
    )
    from_dense = loaded.signatures[export.DENSE_SIGNATURE](inputs=tf.constant(pixels, tf.float32))
    assert from_examples[export.PROBABILITIES].shape == (len(labels), 10)
    assert from_examples[export.CLASS_IDS].shape == (len(labels),)
    np.testing.assert_allclose(
        from_dense[export.PROBABILITIES].numpy(),
        from_examples[export.PROBABILITIES].numpy(),
        atol=1e-5,
    )
    accuracy = float(np.mean(from_examples[export.CLASS_IDS].numpy() == labels))
    assert accuracy == pytest.approx(runs.cold.metrics["test_accuracy"], abs=1e-3)


def test_pushed_model_traces_back_to_the_examples_it_was_trained_on(runs):
    store = metadata.open_store(runs.config.metadata_path)
    run = metadata.get_run(store, runs.cold.run_id)
    stages = {stage.node_id: stage for stage in run.stages}
    (pushed,) = metadata.output_artifacts(store, stages["Pusher"].execution_id)["pushed_model"]
    upstream = metadata.upstream_artifacts(store, pushed.id)
    by_type = {}
    for artifact in upstream:
        by_type.setdefault(metadata.artifact_type_name(store, artifact), []).append(artifact)
    (raw_examples,) = metadata.output_artifacts(store, stages["CsvExampleGen"].execution_id)[
        "examples"
    ]
    assert raw_examples.id in {artifact.id for artifact in by_type["Examples"]}
    assert {"Model", "ModelBlessing", "TransformGraph", "HyperParameters", "Schema"} <= set(by_type)


def test_test_split_never_reaches_tuner_or_trainer(runs):
    store = metadata.open_store(runs.config.metadata_path)
    run = metadata.get_run(store, runs.cold.run_id)
    stages = {stage.node_id: stage for stage in run.stages}
    for node_id in ("Tuner", "Trainer"):
        (examples,) = metadata.input_artifacts(store, stages[node_id].execution_id)["examples"]
        assert json.loads(examples.properties["split_names"].string_value) == ["train", "eval"]


def test_unchanged_rerun_is_served_from_cache_and_pushes_nothing_new(runs):
    assert runs.warm.status == "complete", runs.warm.error
    for node_id in ("CsvExampleGen", "StatisticsGen", "ExampleValidator", *TRAINING_STAGES):
        assert runs.warm.stage_states[node_id] == "cached"
    assert runs.warm.pushed_version == runs.cold.pushed_version
    assert runs.versions_before_corruption == [runs.cold.pushed_version]
    assert runs.warm.metrics == runs.cold.metrics


def test_corrupted_data_stops_before_training_and_keeps_what_was_stored(runs):
    assert runs.corrupted.status == "failed"
    assert runs.corrupted.stage_states["AnomalyGate"] == "failed"
    assert not set(TRAINING_STAGES) & set(runs.corrupted.stage_states)
    assert "split 'train', feature 'pixel_17'" in runs.corrupted.error
    assert "Out-of-range values" in runs.corrupted.error
    assert not runs.corrupted.pushed
    assert sorted(os.listdir(runs.config.serving_dir)) == runs.versions_before_corruption


def test_runs_command_lists_every_run_newest_first(runs, capsys):
    assert cli.main(["runs", "--home", runs.config.home]) == 0
    lines = capsys.readouterr().out.splitlines()
    run_ids = [line.split()[0] for line in lines[1:]]
    assert run_ids == [runs.corrupted.run_id, runs.warm.run_id, runs.cold.run_id]
    assert "failed" in lines[1]
    assert lines[3].rstrip().endswith(runs.cold.pushed_version)
