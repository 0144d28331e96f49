"""The catalog's other pipelines end to end through `run_pipeline` and the CLI, as a user runs
them: co2 (a forecaster judged against the seasonal-naive forecast), text (a classifier of raw
strings) and frozenlake (an agent), each read back through the run summary and the report."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from models import export, training
from models.data import co2, text
from pipelines import cli, report, report_html
from pipelines.config import from_mapping
from pipelines.local_run import run_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def co2_run(tmp_path_factory):
    home = str(tmp_path_factory.mktemp("co2_home"))
    config = from_mapping(
        {
            "pipeline": "co2",
            "home": home,
            "tune": False,
            "train_steps": 200,
            "trainer": {"epochs": 2},
        }
    )
    return config, run_pipeline(config, progress=lambda line: None)


def _single_file(pattern: str) -> str:
    (path,) = glob.glob(pattern)
    return path


def _json(path: str):
    with open(path) as handle:
        return json.load(handle)


def test_co2_forecaster_beats_the_seasonal_naive_forecast_and_is_pushed(co2_run):
    config, summary = co2_run

    assert summary.pipeline == "co2_lstm"
    assert summary.status == "complete", summary.error
    gate = _json(
        _single_file(os.path.join(config.pipeline_root, "BaselineGate", "*", "*", "*.json"))
    )
    assert summary.metrics["test_rmse"] == pytest.approx(gate["model_rmse"], abs=1e-4)
    assert summary.metrics["test_rmse"] < gate["seasonal_naive_rmse"]
    assert summary.blessed and summary.pushed, summary.blessing_failures
    assert "Compressor" not in summary.stage_states  # no device model for co2


def test_pushed_forecaster_serves_ppm_from_raw_lags(co2_run):
    config, summary = co2_run
    lags, targets = co2.read_csv(os.path.join(config.data_dir, "span-0", "test", "co2.csv"))
    loaded = tf.saved_model.load(summary.pushed_path)

    forecast = loaded.signatures[export.DENSE_SIGNATURE](
        **{export.DENSE_INPUT: tf.constant(lags[:50], tf.float32)}
    )[export.FORECAST].numpy()

    assert forecast.shape == (50,)
    rmse = float(np.sqrt(np.mean((forecast - targets[:50]) ** 2)))
    assert rmse < 2 * summary.metrics["test_rmse"] + 0.5


def test_co2_report_shows_the_forecast_metrics(co2_run):
    config, summary = co2_run

    html = report_html.render(report.collect(config.home, summary.run_id))

    assert "test rmse" in html and "seasonal naive" in html
    assert "rmse" in html  # the training curve of the RMSE metric


def test_frozenlake_through_the_cli_blesses_a_q_table_and_reports_its_training(tmp_path, capsys):
    home = str(tmp_path / "home")

    code = cli.main(["run", "frozenlake", "--home", home])

    printed = capsys.readouterr().out
    assert code == 0, printed
    (run_id,) = os.listdir(os.path.join(home, "runs"))
    summary = _json(os.path.join(home, "runs", run_id, "summary.json"))
    assert summary["pipeline"] == "frozenlake_qlearning"
    assert summary["blessed"] is True and summary["pushed"] is True
    assert summary["metrics"]["success_rate"] >= 0.7
    assert "success rate: " in printed
    assert summary["device_model"]["pushed_path"].startswith(os.path.join(home, "tflite"))
    html = report_html.render(report.collect(home, run_id))
    assert "trailing_mean_100" in html and "AgentEvaluator" in html


def test_text_classifier_beats_the_majority_class_and_serves_raw_text(tmp_path):
    config = from_mapping(
        {"pipeline": "text", "home": str(tmp_path), "tune": False, "train_steps": 150}
    )

    summary = run_pipeline(config, progress=lambda line: None)

    assert summary.pipeline == "text_text_transformer"
    assert summary.status == "complete", summary.error
    texts, labels = text.read_csv(os.path.join(config.data_dir, "span-0", "test", text.FILE_NAME))
    majority = float(np.mean(labels == np.bincount(labels).argmax()))
    assert summary.metrics["test_accuracy"] > majority + 0.15
    assert config.evaluation.min_accuracy == 0.5  # text's own bar
    assert summary.blessed and summary.pushed, summary.blessing_failures
    loaded = tf.saved_model.load(summary.pushed_path)
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[item.encode()]))
                }
            )
        ).SerializeToString()
        for item in texts[:20]
    ]
    outputs = loaded.signatures[export.DEFAULT_SIGNATURE](examples=tf.constant(examples))
    assert outputs[export.PROBABILITIES].shape == (20, text.NUM_CLASSES)
    assert training.TOKENS_SIGNATURE in loaded.signatures
