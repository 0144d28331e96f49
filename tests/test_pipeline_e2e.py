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
import re
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from models import export
from models.data import digits
from models.settings import TrainerSettings
from pipelines import cli, metadata
from pipelines.config import EvaluationConfig, PipelineConfig
from pipelines.local_run import RunSummary, run_pipeline
from pipelines.validate import SCHEMA_FILE
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
    from components.compressor import executor as compressor
    from models.settings import COMPRESSION_RECIPES

    device = runs.cold.device_model
    assert device["chosen"] in COMPRESSION_RECIPES
    assert device["accuracy"] >= runs.cold.metrics["test_accuracy"] - 0.01
    folder = device["pushed_path"]
    assert os.path.dirname(folder) == runs.config.tflite_dir
    with open(os.path.join(folder, "metadata.json")) as handle:
        metadata = json.load(handle)
    with open(os.path.join(folder, "model.tflite"), "rb") as handle:
        model = handle.read()
    with open(device["report"]) as handle:
        report = json.load(handle)
    (reported,) = [item for item in report["candidates"] if item["recipe"] == report["chosen"]]
    assert len(model) == metadata["size_bytes"] == device["size_bytes"] == reported["size_bytes"]
    assert metadata["accuracy"] == device["accuracy"] == reported["accuracy"]
    assert {item["recipe"] for item in report["candidates"]} == set(runs.config.compression.recipes)
    with open(device["plot"], "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert metadata["version"] == os.path.basename(folder)
    assert metadata["labels"] == [str(label) for label in range(10)]

    test_csv = os.path.join(runs.config.data_dir, "span-0", "test", "digits.csv")
    pixels, labels = digits.read_csv(test_csv)
    class_ids = compressor.tflite_predictor(model)(pixels.astype(np.float32))
    assert float(np.mean(class_ids == labels)) == pytest.approx(metadata["accuracy"], abs=1e-4)


def test_unchanged_rerun_pushes_no_new_device_model(runs):
    assert runs.warm.device_model["pushed_path"] == runs.cold.device_model["pushed_path"]


def test_lineage_of_a_pushed_model_names_its_run_span_settings_and_evaluation(runs, capsys):
    version = runs.user_data.pushed_version
    assert cli.main(["lineage", runs.user_data.pushed_path, "--home", runs.config.home]) == 0
    (serving,) = capsys.readouterr().out.strip().split("\n\n")

    assert serving.startswith(f"SavedModel for TF Serving, version {version}")
    assert f"trained by run:     {runs.user_data.run_id}" in serving
    assert f"code version:       {runs.user_data.code_version}" in serving
    assert runs.user_data.code_version.startswith("0.1.0")
    assert "data:               span 1, " in serving
    assert "span 0" not in serving
    assert f"schema:             {SCHEMA_FILE}" in serving
    assert "hyper-parameters:   tuned" in serving
    assert "optimizer = adam" in serving
    assert "learning_rate = 0.003" in serving
    accuracy = runs.user_data.metrics["test_accuracy"]
    assert f"run {runs.user_data.run_id}, blessed, test accuracy {accuracy:.4f}" in serving
    assert f"twin:               {runs.user_data.device_model['pushed_path']}" in serving


def test_lineage_of_a_version_number_lists_every_model_pushed_with_it(runs, capsys):
    # Versions are push times in seconds: the TFLite twin has the same number when both pushes
    # fell in one second, and then both are listed.
    tflite_version = os.path.basename(runs.user_data.device_model["pushed_path"])
    assert cli.main(["lineage", tflite_version, "--home", runs.config.home]) == 0
    blocks = capsys.readouterr().out.strip().split("\n\n")

    headers = sorted(block.splitlines()[0] for block in blocks)
    expected = [f"TFLite model for devices, version {tflite_version}: "]
    if tflite_version == runs.user_data.pushed_version:
        expected.insert(0, f"SavedModel for TF Serving, version {tflite_version}: ")
    assert [header.split("/")[0] for header in headers] == expected
    (tflite,) = [block for block in blocks if block.startswith("TFLite")]
    assert f"twin:               {runs.user_data.pushed_path}" in tflite


def test_lineage_of_a_tflite_file_from_a_cached_rerun_goes_to_the_first_training(runs, capsys):
    model_file = os.path.join(runs.warm.device_model["pushed_path"], "model.tflite")
    assert cli.main(["lineage", model_file, "--home", runs.config.home]) == 0
    out = capsys.readouterr().out

    (block,) = out.strip().split("\n\n")
    assert block.startswith("TFLite model for devices")
    # The warm re-run took the Trainer from cache: the model was trained by the cold run.
    assert f"trained by run:     {runs.cold.run_id}" in block
    assert "data:               span 0, " in block
    assert f"device model:       {runs.cold.device_model['chosen']} recipe" in block


def test_lineage_of_an_unknown_version_is_a_usage_error(runs, capsys):
    assert cli.main(["lineage", "123", "--home", runs.config.home]) == 2
    error = capsys.readouterr().err
    assert "received '123'" in error
    assert runs.cold.pushed_version in error


def test_artifacts_command_lists_a_runs_artifacts_with_their_properties(runs, capsys):
    assert cli.main(["artifacts", runs.user_data.run_id, "--home", runs.config.home]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Artifacts of run {runs.user_data.run_id}")
    examples = re.search(r"CsvExampleGen\.examples .*?\n  (?=\S)", out, re.DOTALL).group()
    assert "span: 1" in examples
    assert f"pushed_version: {runs.user_data.pushed_version}" in out
    assert "Trainer.model  Model" in out
    assert "tfx_version" not in out

    assert cli.main(["artifacts", "--home", runs.config.home]) == 0
    assert capsys.readouterr().out.startswith(f"Artifacts of run {runs.corrupted.run_id}")
    assert cli.main(["artifacts", "no-such-run", "--home", runs.config.home]) == 2


def test_tensorboard_serves_the_training_logs_of_each_run_that_trained(runs):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = cli.tensorboard_command(runs.config.home, None, port)
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as r:
                    served = json.load(r)
                break
            except OSError:
                assert time.monotonic() < deadline, "TensorBoard did not answer within 90 s"
                assert server.poll() is None, "TensorBoard exited"
                time.sleep(1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # The warm re-run took its Trainer and Tuner from cache and the corrupted run never trained.
    trained = sorted([runs.cold.run_id, runs.user_data.run_id])
    assert sorted(name for name in served if "/tuner/" not in name) == sorted(
        f"{run}/{split}" for run in trained for split in ("train", "validation")
    )
    for run in trained:  # each tuner trial's logs (KerasTuner: <trial>/execution0/<split>)
        trials = {name.split("/")[2] for name in served if name.startswith(f"{run}/tuner/")}
        assert len(trials) == runs.config.trainer.max_trials
        for trial in trials:
            assert f"{run}/tuner/{trial}/execution0/train" in served
            assert f"{run}/tuner/{trial}/execution0/validation" in served


REPORT_SCRIPT = """JSON.stringify({
  sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
  images: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0),
  graph_stages: document.querySelectorAll('svg.graph rect').length,
  data_charts: Array.from(document.querySelectorAll('#data svg'))
    .map(s => s.getAttribute('aria-label')),
  text: document.body.innerText,
})"""


def test_report_of_a_complete_run_opens_in_a_browser_with_every_section(runs, capsys, tmp_path):
    from tests.browser import Chromium

    assert cli.main(["report", runs.user_data.run_id, "--home", runs.config.home]) == 0
    path = os.path.join(runs.config.runs_dir, runs.user_data.run_id, "report.html")
    assert capsys.readouterr().out.strip().endswith(path)
    with Chromium() as browser:
        visit = browser.visit(f"file://{path}", REPORT_SCRIPT)
    (tmp_path / "report.png").write_bytes(visit.screenshot_png)
    page = json.loads(visit.value)

    assert visit.console_errors == []
    assert visit.screenshot_png.startswith(b"\x89PNG") and len(visit.screenshot_png) > 50_000
    assert page["sections"] == [
        "overview",
        "pipeline",
        "data",
        "validation",
        "tuning",
        "training",
        "evaluation",
        "samples",
        "compression",
        "pushes",
    ]
    assert all(page["images"])
    assert page["graph_stages"] == len(runs.user_data.stage_states)
    assert page["data_charts"] == [
        "labels in eval",
        "labels in test",
        "labels in train",
        "feature means",
    ]
    text = page["text"]
    assert f"test accuracy\t{runs.user_data.metrics['test_accuracy']:.4f}" in text
    assert "TFDV, split train: no anomalies" in text
    assert "Confusion matrix (test split)" in text
    assert "Against the latest blessed model" in text  # the cold run's model is the baseline
    assert text.count("label ") >= 24  # the sample predictions' captions
    assert f"chosen: {runs.user_data.device_model['chosen']}" in text
    assert runs.user_data.pushed_path in text


def test_report_of_a_failed_run_shows_where_and_why_it_stopped(runs, capsys, tmp_path):
    output = tmp_path / "failed.html"
    assert (
        cli.main(["report", runs.corrupted.run_id, "--home", runs.config.home, "-o", str(output)])
        == 0
    )
    page = output.read_text()
    assert "failed" in page
    assert "pixel_17" in page
    assert "The Trainer did not run." in page
    assert "Nothing was pushed in this run." in page


@dataclasses.dataclass
class DataGateRuns:
    validate_exit_code: int
    validate_output: str
    drifted: RunSummary
    versions_before: list[str]


@pytest.fixture(scope="module")
def data_gate_runs(runs, tmp_path_factory) -> DataGateRuns:
    """After the runs above: `dlforge validate` on the user's clean CSV, then a run on a CSV
    whose pixel_20 is brighter everywhere (in range, so only the DriftGate can stop it)."""
    folder = tmp_path_factory.mktemp("data_gates")
    clean = _user_csv(str(folder / "mine.csv"), corrupt=False)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        validate_exit_code = cli.main(["validate", "--data", clean, "--home", runs.config.home])
    pixels, labels = digits.load_digits_arrays()
    pixels[:, 20] = np.minimum(digits.PIXEL_MAX, pixels[:, 20] + 3)
    drifted_csv = str(folder / "drifted.csv")
    digits.write_csv(drifted_csv, pixels, labels)
    versions_before = sorted(os.listdir(runs.config.serving_dir))
    drifted = run_pipeline(
        dataclasses.replace(runs.config, data_path=drifted_csv), lambda line: None
    )
    return DataGateRuns(validate_exit_code, output.getvalue(), drifted, versions_before)


def test_validate_measures_drift_against_the_latest_blessed_models_data(runs, data_gate_runs):
    assert data_gate_runs.validate_exit_code == 0, data_gate_runs.validate_output
    # The latest blessed model was trained on span 1, the user's first CSV.
    assert "drift" in data_gate_runs.validate_output
    assert "against the data of the latest blessed model (model " in (
        data_gate_runs.validate_output
    )
    assert ", span 1)" in data_gate_runs.validate_output
    assert "result: passed" in data_gate_runs.validate_output


def test_drifted_data_stops_at_the_drift_gate_and_pushes_nothing(runs, data_gate_runs):
    drifted = data_gate_runs.drifted
    assert drifted.status == "failed"
    assert drifted.stage_states["AnomalyGate"] == "complete"
    assert drifted.stage_states["GxValidator"] == "complete"
    assert drifted.stage_states["DriftGate"] == "failed"
    assert not set(TRAINING_STAGES) & set(drifted.stage_states)
    assert "split 'train', feature 'pixel_20': drift from the previous span" in drifted.error
    assert not drifted.pushed
    assert sorted(os.listdir(runs.config.serving_dir)) == data_gate_runs.versions_before
