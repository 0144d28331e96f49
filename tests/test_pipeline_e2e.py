"""The digits pipeline end to end on LocalDagRunner, with a small budget.

One home goes through, in order: a cold run on the embedded data, an unchanged re-run (served
from cache), a run on the user's own CSV (a new span), a malformed CSV (refused at ingestion),
and a CSV with an out-of-range pixel (stopped by the schema gate before training). Nothing
stored by earlier runs is lost.
"""

import contextlib
import dataclasses
import io
import json
import os

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


@dataclasses.dataclass
class Runs:
    config: PipelineConfig
    cold: RunSummary
    warm: RunSummary
    user_data: RunSummary
    malformed_exit_code: int
    malformed_error: str
    runs_before_malformed: int
    runs_after_malformed: int
    spans_after_malformed: list[str]
    versions_before_corruption: list[str]
    corrupted: RunSummary


def _user_csv(path: str, *, corrupt: bool) -> str:
    """The embedded data as a user would bring it: label first, rows in another order."""
    pixels, labels = digits.load_digits_arrays()
    order = np.random.default_rng(1).permutation(len(labels))
    pixels, labels = pixels[order], labels[order]
    if corrupt:
        pixels[5, 17] = 99
    with open(path, "w") as handle:
        handle.write(",".join([digits.LABEL_KEY, *digits.PIXEL_KEYS]) + "\n")
        for row, label in zip(pixels, labels, strict=True):
            handle.write(",".join(str(value) for value in [label, *row]) + "\n")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    folder = tmp_path_factory.mktemp("e2e")
    config = PipelineConfig(
        home=str(folder / "home"),
        train_steps=200,
        tuner_steps_per_epoch=5,
        # The optimizer is fixed so that two one-epoch trials cannot pick a diverging one.
        trainer=TrainerSettings(
            family="cnn",
            epochs=4,
            max_trials=2,
            tuner_epochs=1,
            hyperparameters={"optimizer": "adam", "learning_rate": 0.003},
        ),
        evaluation=EvaluationConfig(min_accuracy=0.5, max_accuracy_drop=0.5),
    )

    def run(data_path: str = "") -> RunSummary:
        return run_pipeline(dataclasses.replace(config, data_path=data_path), lambda line: None)

    cold = run()
    warm = run()
    user_data = run(_user_csv(str(folder / "mine.csv"), corrupt=False))

    def count_runs() -> int:
        return len(metadata.list_runs(metadata.open_store(config.metadata_path)))

    runs_before_malformed = count_runs()
    malformed = folder / "malformed.csv"
    malformed.write_text(",".join(digits.PIXEL_KEYS) + "\n" + ",".join(["1"] * 64) + "\n")
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        malformed_exit_code = cli.main(
            ["run", "digits", "--home", config.home, "--data", str(malformed)]
        )
    runs_after_malformed = count_runs()
    spans_after_malformed = sorted(os.listdir(config.data_dir))

    versions = sorted(os.listdir(config.serving_dir))
    corrupted = run(_user_csv(str(folder / "bad.csv"), corrupt=True))
    return Runs(
        config=config,
        cold=cold,
        warm=warm,
        user_data=user_data,
        malformed_exit_code=malformed_exit_code,
        malformed_error=errors.getvalue(),
        runs_before_malformed=runs_before_malformed,
        runs_after_malformed=runs_after_malformed,
        spans_after_malformed=spans_after_malformed,
        versions_before_corruption=versions,
        corrupted=corrupted,
    )


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
    test_csv = os.path.join(runs.config.data_dir, "span-0", "test", "digits.csv")
    pixels, labels = digits.read_csv(test_csv)
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
    assert runs.warm.metrics == runs.cold.metrics


def _example_gen_span(runs, run_id) -> int:
    store = metadata.open_store(runs.config.metadata_path)
    stages = {stage.node_id: stage for stage in metadata.get_run(store, run_id).stages}
    (examples,) = metadata.output_artifacts(store, stages["CsvExampleGen"].execution_id)["examples"]
    return metadata.custom_property(examples, "span")


def test_users_csv_becomes_a_new_span_that_the_pipeline_trains_on(runs):
    assert runs.user_data.status == "complete", runs.user_data.error
    assert _example_gen_span(runs, runs.cold.run_id) == 0
    assert _example_gen_span(runs, runs.user_data.run_id) == 1
    for node_id in ("CsvExampleGen", *TRAINING_STAGES):
        assert runs.user_data.stage_states[node_id] == "complete"
    assert runs.user_data.pushed
    assert int(runs.user_data.pushed_version) > int(runs.cold.pushed_version)


def test_malformed_csv_is_refused_before_anything_runs(runs):
    assert runs.malformed_exit_code == 2
    assert "malformed.csv, line 1: the header has missing column(s) label" in runs.malformed_error
    assert len(runs.malformed_error.strip().splitlines()) == 1
    assert runs.runs_after_malformed == runs.runs_before_malformed
    assert runs.spans_after_malformed == ["span-0", "span-1"]


def test_corrupted_data_stops_before_training_and_keeps_what_was_stored(runs):
    assert runs.corrupted.status == "failed"
    assert runs.corrupted.stage_states["AnomalyGate"] == "failed"
    assert not set(TRAINING_STAGES) & set(runs.corrupted.stage_states)
    assert "feature 'pixel_17': Out-of-range values" in runs.corrupted.error
    assert not runs.corrupted.pushed
    assert sorted(os.listdir(runs.config.serving_dir)) == runs.versions_before_corruption
    assert runs.versions_before_corruption == sorted(
        [runs.cold.pushed_version, runs.user_data.pushed_version]
    )


def test_runs_command_lists_every_run_newest_first(runs, capsys):
    assert cli.main(["runs", "--home", runs.config.home]) == 0
    lines = capsys.readouterr().out.splitlines()
    run_ids = [line.split()[0] for line in lines[1:]]
    expected = [runs.corrupted.run_id, runs.user_data.run_id, runs.warm.run_id, runs.cold.run_id]
    assert run_ids == expected
    assert "failed" in lines[1]
    assert lines[4].rstrip().endswith(runs.cold.pushed_version)


def test_a_device_model_within_budget_is_pushed_with_its_metadata(runs):
    device = runs.cold.device_model
    assert device["chosen"] in ("float", "dynamic_range", "float16", "int8")
    assert device["accuracy"] >= runs.cold.metrics["test_accuracy"] - 0.01
    folder = device["pushed_path"]
    assert os.path.dirname(folder) == runs.config.tflite_dir
    with open(os.path.join(folder, "metadata.json")) as handle:
        metadata = json.load(handle)
    with open(os.path.join(folder, "model.tflite"), "rb") as handle:
        model = handle.read()
    assert len(model) == metadata["size_bytes"] == device["size_bytes"]
    assert metadata["version"] == os.path.basename(folder)
    assert metadata["labels"] == [str(label) for label in range(10)]

    test_csv = os.path.join(runs.config.data_dir, "span-0", "test", "digits.csv")
    pixels, labels = digits.read_csv(test_csv)
    runner = tf.lite.Interpreter(model_content=model).get_signature_runner("serving_dense")
    class_ids = runner(inputs=pixels.astype(np.float32))["class_ids"]
    assert float(np.mean(class_ids == labels)) == pytest.approx(metadata["accuracy"], abs=1e-4)


def test_unchanged_rerun_pushes_no_new_device_model(runs):
    assert runs.warm.device_model["pushed_path"] == runs.cold.device_model["pushed_path"]
