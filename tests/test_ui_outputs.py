"""What the custom components hand the Kubeflow Pipelines and Vertex AI consoles.

KFP's console draws an output artifact whose ML Metadata type is `system.Metrics` (its float
custom properties), `system.HTML` or `system.Markdown` (the file at its URI), when it has a
`display_name`. These tests check the compiled type names, that the Kubeflow v2 entrypoint
turns them back into dlforge's classes, the metadata the entrypoint reports to KFP, and what
each component writes.
"""

import json

import pytest
import tensorflow as tf
import yaml
from kfp.pipeline_spec import pipeline_spec_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.orchestration.kubeflow.v2 import compiler_utils
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
from tfx.types import standard_artifacts

from components import artifacts, storage
from components.agent_evaluator import executor as agent_evaluator
from components.agent_evaluator.component import AgentEvaluator
from components.agent_trainer import executor as agent_trainer
from components.agent_trainer.component import AgentTrainer
from components.anomaly_gate.component import AnomalyGate
from components.baseline_gate import executor as baseline_gate
from components.baseline_gate.component import BaselineGate
from components.compressor import executor as compressor
from components.compressor.executor import METADATA_FILE, MODEL_FILE
from components.drift_gate import executor as drift_gate
from components.drift_gate.executor import Measurement
from components.policy_tflite import executor as policy_tflite
from components.policy_tflite.component import PolicyTFLite
from components.tflite_pusher.component import TFLitePusher


@pytest.fixture
def store(request) -> str:
    uri = f"ram://ui_outputs/{request.node.name}"
    yield uri
    for directory, _, names in tf.io.gfile.walk(uri):
        for name in names:
            if tf.io.gfile.exists(f"{directory}/{name}"):
                tf.io.gfile.remove(f"{directory}/{name}")


def _text(uri: str) -> str:
    with tf.io.gfile.GFile(uri) as handle:
        return handle.read()


@pytest.mark.parametrize(
    ("artifact_class", "title"),
    [
        (artifacts.Metrics, "system.Metrics"),
        (artifacts.HTML, "system.HTML"),
        (artifacts.Markdown, "system.Markdown"),
    ],
)
def test_compiled_type_is_the_kfp_system_type_and_the_entrypoint_imports_it_back(
    artifact_class, title
):
    schema = compiler_utils.get_artifact_schema(artifact_class)
    assert yaml.safe_load(schema)["title"] == title

    runtime = pipeline_spec_pb2.ArtifactList()
    item = runtime.artifacts.add(name="out", uri="gs://root/task/out")
    item.type.instance_schema = schema
    (parsed,) = kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict({"out": runtime})["out"]

    assert type(parsed) is artifact_class


def _reported_metadata(artifact) -> dict:
    """The metadata the Kubeflow v2 entrypoint reports for an output (KFP stores it in ML
    Metadata as the artifact's custom properties)."""
    artifact.uri = "gs://root/task/out"
    output = kubeflow_v2_entrypoint_utils.translate_executor_output({"out": [artifact]}, {})
    (runtime,) = output["out"].artifacts
    return json.loads(json.dumps(dict(runtime.metadata)))


def test_metrics_reach_kfp_as_floats_with_a_display_name():
    metrics = artifacts.Metrics()
    metrics.record("drift and skew distances", {"skew_eval_pixel_00": 0.25, "count": 3})

    assert _reported_metadata(metrics) == {
        "display_name": "drift and skew distances",
        "skew_eval_pixel_00": 0.25,
        "count": 3.0,
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [({"display_name": 1.0}, "other than 'display_name'"), ({"x": float("nan")}, "'x': nan")],
)
def test_metrics_refuse_what_the_console_cannot_show(values, message):
    with pytest.raises(ValueError, match=message):
        artifacts.Metrics().record("name", values)


def test_anomaly_gate_writes_a_markdown_summary_kfp_can_name(store, tmp_path):
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["pixel_07"]
    info.short_description = "Out-of-range values"
    info.description = "Unexpectedly large | value 99"
    storage.write_bytes(f"{store}/anomalies/Split-eval/SchemaDiff.pb", b"")
    storage.write_bytes(
        f"{store}/anomalies/Split-train/SchemaDiff.pb", anomalies.SerializeToString()
    )
    example_anomalies = standard_artifacts.ExampleAnomalies()
    example_anomalies.uri = f"{store}/anomalies"
    example_anomalies.split_names = '["train", "eval"]'
    report = artifacts.ValidationReport()
    report.uri = f"{store}/report"
    summary = artifacts.Markdown()
    summary.uri = f"{store}/summary"

    with pytest.raises(RuntimeError, match="pixel_07"):
        AnomalyGate.test_call(anomalies=example_anomalies, report=report, summary=summary)

    assert _reported_metadata(summary)["display_name"] == "schema anomalies"
    text = _text(f"{store}/summary")
    assert text.startswith("## Schema anomalies (TFDV ExampleValidator): failed: 1 finding(s)")
    assert "Splits checked against the schema: eval, train." in text
    # A pipe inside a cell is escaped, so the table keeps its columns.
    assert "| train | pixel_07 | Out-of-range values | Unexpectedly large \\| value 99 |" in text


def test_drift_gate_metrics_and_summary_name_every_comparison():
    measurements = [
        Measurement("pixel_03", "skew", "test", "Jensen-Shannon divergence", 0.02, 0.15),
        Measurement("label", "drift", "train", "L-infinity distance", 0.2, 0.12),
    ]
    failures = drift_gate.findings(measurements, "the previous span")

    assert drift_gate.metric_values(measurements) == {
        "skew_test_pixel_03": 0.02,
        "drift_train_label": 0.2,
    }
    text = drift_gate.summary_markdown(measurements, failures, drift_measured=True)
    lines = text.splitlines()
    assert lines[0] == "## Drift and skew: failed: 1 finding(s)"
    table = lines[
        lines.index("| comparison | split | feature | measure | value | threshold | verdict |") :
    ]
    assert table[2] == ("| drift | train | label | L-infinity distance | 0.2000 | 0.12 | above |")
    assert table[3] == (
        "| skew | test | pixel_03 | Jensen-Shannon divergence | 0.0200 | 0.15 | within |"
    )
    assert "drift not measured" in drift_gate.summary_markdown(measurements, [], False)


REPORT = {
    "reference": {"size_bytes": 409600, "accuracy": 0.98, "latency_ms_p50": 0.5},
    "test_examples": 360,
    "accuracy_budget": 0.01,
    "candidates": [
        {
            "recipe": "dynamic_range",
            "size_bytes": 40960,
            "gzipped_bytes": 30720,
            "accuracy": 0.975,
            "latency_ms_p50": 0.1,
        },
        {
            "recipe": "int8",
            "size_bytes": 20480,
            "gzipped_bytes": 15360,
            "accuracy": 0.9,
            "latency_ms_p50": 0.08,
        },
    ],
    "chosen": "dynamic_range",
    "onnx": {"accuracy": 0.98, "max_abs_difference": 1e-7},
}


def test_compressor_metrics_hold_every_candidates_measures():
    values = compressor.metric_values(REPORT)

    assert values["saved_model_size_kb"] == 400.0
    assert values["dynamic_range_accuracy"] == 0.975
    assert values["int8_size_kb"] == 20.0
    assert values["int8_latency_ms_p50"] == 0.08
    assert values["onnx_max_abs_difference"] == 1e-7
    assert len(values) == 3 * 3 + 2


def test_compressor_html_shows_the_table_and_the_plot_inline():
    page = compressor.summary_html(REPORT, b"\x89PNG picture")

    assert "Chosen: <b>dynamic_range</b>" in page
    assert "<td>int8</td><td>20.0</td><td>15.0</td><td>0.9000</td><td>0.080</td>" in page
    assert "<td>too inaccurate</td>" in page and "<td>chosen</td>" in page
    assert "src='data:image/png;base64,iVBORyBwaWN0dXJl'" in page
    # Self-contained: the console shows it in a sandboxed frame with no access to the store.
    assert "http" not in page


def _device(store: str, blessed: int):
    model = artifacts.TFLiteModel()
    model.uri = f"{store}/device_model"
    storage.write_bytes(f"{model.uri}/{MODEL_FILE}", b"TFL3")
    storage.write_json(
        f"{model.uri}/{METADATA_FILE}",
        {"source_model_uri": "m/1", "recipe": "int8", "size_bytes": 3072, "accuracy": 0.97},
    )
    blessing = artifacts.DeviceBlessing()
    blessing.set_int_custom_property("blessed", blessed)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = f"{store}/pushed"
    summary = artifacts.Markdown()
    summary.uri = f"{store}/summary"
    return {
        "device_model": model,
        "device_blessing": blessing,
        "pushed_model": pushed,
        "summary": summary,
    }


def test_tflite_pusher_summary_names_the_version_and_destination(store):
    outputs = _device(store, blessed=1)

    TFLitePusher.test_call(base_directory=f"{store}/tflite", **outputs)

    version = outputs["pushed_model"].get_string_custom_property("pushed_version")
    text = _text(f"{store}/summary")
    assert text.startswith("## Device model: pushed\n")
    assert (
        f"| {version} | {store}/tflite/{version} | int8 | 3.0 | 0.9700 | model.tflite, "
        "metadata.json |" in text
    )
    assert _reported_metadata(outputs["summary"])["display_name"] == "device model push"


def test_tflite_pusher_summary_says_when_nothing_was_pushed(store):
    outputs = _device(store, blessed=0)

    TFLitePusher.test_call(base_directory=f"{store}/tflite", **outputs)

    assert _text(f"{store}/summary").startswith("## Device model: not pushed")
    assert not tf.io.gfile.exists(f"{store}/tflite")


@pytest.mark.parametrize(
    ("component", "summary_type"),
    [
        (BaselineGate, artifacts.Markdown),
        (AgentTrainer, artifacts.HTML),
        (AgentEvaluator, artifacts.Markdown),
        (PolicyTFLite, artifacts.Markdown),
    ],
)
def test_forecast_and_agent_components_declare_console_outputs(component, summary_type):
    outputs = component.SPEC_CLASS.OUTPUTS

    assert outputs["metrics"].type is artifacts.Metrics
    assert outputs["summary"].type is summary_type


def _verdict(**changes) -> baseline_gate.Verdict:
    values = {
        "blessed": True,
        "reason": "the model beats the seasonal-naive forecast: test RMSE 0.5 ppm < 0.9 ppm",
        "evaluator_blessed": True,
        "model_rmse": 0.5,
        "model_mae": 0.4,
        "seasonal_naive_rmse": 0.9,
        "seasonal_naive_mae": 0.7,
        "test_windows": 120,
    }
    return baseline_gate.Verdict(**{**values, **changes})


def test_baseline_gate_metrics_and_summary_compare_the_model_with_the_seasonal_naive():
    assert baseline_gate.metric_values(_verdict()) == {
        "blessed": 1.0,
        "model_rmse": 0.5,
        "model_mae": 0.4,
        "seasonal_naive_rmse": 0.9,
        "seasonal_naive_mae": 0.7,
        "test_windows": 120.0,
    }
    text = baseline_gate.summary_markdown(_verdict())
    assert text.startswith("## Seasonal-naive baseline: blessed\n\nThe model beats")
    assert "| model | 0.5000 | 0.4000 |" in text
    assert "| seasonal naive (the value 52 weeks earlier) | 0.9000 | 0.7000 |" in text

    refused = _verdict(blessed=False, model_mae=None, reason="the Evaluator did not bless it")
    assert "model_mae" not in baseline_gate.metric_values(refused)
    text = baseline_gate.summary_markdown(refused)
    assert text.startswith("## Seasonal-naive baseline: not blessed\n\nThe Evaluator did not")
    assert "| model | 0.5000 | not computed |" in text


CURVE = {
    "agent": "dqn",
    "environment": "CartPole-v1",
    "episodes": 140,
    "budget_episodes": 300,
    "steps": 21000,
    "seconds": 95.5,
    "reward_threshold": 475.0,
    "solved_at": 140,
    "final_trailing_mean": 480.2,
}


def test_agent_trainer_metrics_and_html_show_the_run_and_its_curve_inline():
    values = agent_trainer.metric_values(CURVE)
    assert values["solved_at"] == 140.0 and values["final_trailing_mean"] == 480.2
    assert agent_trainer.metric_values({**CURVE, "solved_at": None})["solved_at"] == -1.0

    page = agent_trainer.summary_html(CURVE, b"\x89PNG picture")
    assert "<h2>dqn on CartPole-v1: solved at episode 140</h2>" in page
    assert "140 of 300 episodes, 21000 steps, 95.5 s" in page
    assert "src='data:image/png;base64,iVBORyBwaWN0dXJl'" in page
    assert "http" not in page
    assert "not solved within the budget" in agent_trainer.summary_html(
        {**CURVE, "solved_at": None}, b""
    )


EVALUATION = {
    "environment": "CartPole-v1",
    "episodes": 10,
    "seed": 1000,
    "mean_return": 312.5,
    "std_return": 20.25,
    "min_return": 280.0,
    "max_return": 350.0,
    "reward_threshold": 475.0,
    "blessed": False,
}


def test_agent_evaluator_metrics_and_summary_give_the_returns_and_the_verdict():
    assert agent_evaluator.metric_values(EVALUATION) == {
        "mean_return": 312.5,
        "std_return": 20.25,
        "min_return": 280.0,
        "max_return": 350.0,
        "reward_threshold": 475.0,
        "episodes": 10.0,
        "blessed": 0.0,
    }
    text = agent_evaluator.summary_markdown(EVALUATION)
    assert text.startswith("## Policy evaluation: not blessed\n\nMean return 312.5 < threshold")
    assert "| 312.5 | 20.25 | 280.0 | 350.0 | 475.0 |" in text
    blessed = agent_evaluator.summary_markdown({**EVALUATION, "blessed": True})
    assert blessed.startswith("## Policy evaluation: blessed\n\nMean return 312.5 >= threshold")


def test_policy_tflite_metrics_and_summary_give_the_action_agreement():
    report = {
        "recipe": "float",
        "size_bytes": 4096,
        "environment": "CartPole-v1",
        "episodes": 2,
        "seed": 7,
        "observations_checked": 400,
        "actions_agreeing": 399,
        "parity": False,
    }

    assert policy_tflite.metric_values(report) == {
        "size_kb": 4.0,
        "observations_checked": 400.0,
        "actions_agreeing": 399.0,
        "agreement": 0.9975,
    }
    text = policy_tflite.summary_markdown(report)
    assert text.startswith("## Policy device model: not blessed: actions differ\n")
    assert "| 4.0 | 400 | 399 | 0.9975 |" in text


def test_policy_tflite_of_an_unblessed_policy_converts_nothing_and_says_so(store):
    model = standard_artifacts.Model()
    model.uri = f"{store}/model"
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("blessed", 0)
    device_model = artifacts.TFLiteModel()
    device_model.uri = f"{store}/device_model"
    device_blessing = artifacts.DeviceBlessing()
    metrics = artifacts.Metrics()
    summary = artifacts.Markdown()
    summary.uri = f"{store}/summary"

    PolicyTFLite.test_call(
        model=model,
        model_blessing=blessing,
        device_model=device_model,
        device_blessing=device_blessing,
        metrics=metrics,
        summary=summary,
        environment="{}",
        episodes=1,
        seed=0,
    )

    assert device_blessing.get_int_custom_property("blessed") == 0
    assert _text(f"{store}/summary").startswith("## Policy device model: not converted")
    assert _reported_metadata(summary)["display_name"] == "policy device model"
    assert _reported_metadata(metrics) == {"display_name": "policy device model"}
    assert not tf.io.gfile.exists(device_model.uri)
