"""Sampled request logging and `dlforge drift`: drift found on shifted traffic, not on clean."""

import glob
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from models.data import digits
from pipelines import cli, drift
from serving.client import PredictionClient
from serving.config import ModelConfig, ServerOptions
from serving.request_log import RequestLogger
from serving.server import ModelServer
from tests import serving_models


@pytest.fixture(scope="module")
def split():
    pixels, labels = digits.load_digits_arrays()
    order = np.random.default_rng(0).permutation(len(labels))
    return pixels, labels, order[:1200], order[1200:1500]


@pytest.fixture(scope="module")
def training_stats(split, tmp_path_factory):
    import tensorflow_data_validation as tfdv

    pixels, labels, train, _ = split
    frame = pd.DataFrame(pixels[train], columns=list(digits.PIXEL_KEYS))
    frame[digits.LABEL_KEY] = labels[train]
    path = tmp_path_factory.mktemp("stats") / "FeatureStats.pb"
    path.write_bytes(tfdv.generate_statistics_from_dataframe(frame).SerializeToString())
    return str(path)


def serve_and_log(rows, root, log_dir, rate=1.0):
    base = os.path.join(root, "base")
    if not os.path.exists(base):
        serving_models.publish(serving_models.dense_noop_model(root), base, 1)
    options = ServerOptions(
        models=(ModelConfig("noop", base),),
        grpc_port=0,
        rest_api_port=0,
        poll_wait_seconds=0,
        request_log_dir=log_dir,
        request_log_sampling_rate=rate,
        traffic_seed=0,
    )
    with (
        ModelServer(options) as server,
        PredictionClient(f"127.0.0.1:{server.rest_port}") as client,
    ):
        for start in range(0, len(rows), 30):
            client.predict("noop", rows[start : start + 30], signature_name="serving_dense")


def test_logged_requests_are_tf_examples_per_version(split, tmp_path):
    pixels, _, _, served = split
    log_dir = str(tmp_path / "logs")

    serve_and_log(pixels[served[:60]].astype(np.float32), str(tmp_path), log_dir)

    (path,) = glob.glob(os.path.join(log_dir, "noop", "1", "requests-*.tfrecord"))
    examples = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
    assert len(examples) == 60
    assert examples[0].features.feature["inputs"].float_list.value == list(pixels[served[0]])


def test_the_logger_samples_at_its_rate(tmp_path):
    logger = RequestLogger(str(tmp_path), 0.25, seed=0)
    for _ in range(400):
        logger.log("m", 3, {"inputs": np.zeros((1, 2), np.float32)})
    logger.close()

    (path,) = glob.glob(str(tmp_path / "m" / "3" / "*.tfrecord"))
    assert 70 <= sum(1 for _ in tf.data.TFRecordDataset(path)) <= 130


@pytest.mark.parametrize(("shift", "code"), [(False, 0), (True, 1)])
def test_dlforge_drift_flags_shifted_traffic_only(
    split, training_stats, tmp_path, capsys, shift, code
):
    pixels, _, _, served = split
    rows = pixels[served].astype(np.float32)
    if shift:
        rows = 16 - rows  # Inverted images: ink where the training data has paper.
    log_dir = str(tmp_path / "logs")
    serve_and_log(rows, str(tmp_path), log_dir)

    exit_code = cli.main(
        ["drift", "--model", "noop", "--logs", log_dir, "--training_stats", training_stats]
    )

    lines = capsys.readouterr().out.splitlines()
    assert exit_code == code
    assert lines[0].startswith(f"dlforge: 300 logged rows of noop against {training_stats}")
    drifted = [line for line in lines if line.startswith("  drift: ")]
    if shift:
        assert len(drifted) >= 10
        assert lines[-1] == "  drift detected"
    else:
        assert drifted == []
        assert lines[-1] == "  no drift"


def test_dlforge_drift_refuses_missing_logs_and_too_few_rows(
    split, training_stats, tmp_path, capsys
):
    pixels, _, _, served = split
    log_dir = str(tmp_path / "logs")

    missing = cli.main(
        ["drift", "--model", "noop", "--logs", log_dir, "--training_stats", training_stats]
    )
    serve_and_log(pixels[served[:30]].astype(np.float32), str(tmp_path), log_dir)
    few = cli.main(
        ["drift", "--model", "noop", "--logs", log_dir, "--training_stats", training_stats]
    )

    errors = capsys.readouterr().err.splitlines()
    assert (missing, few) == (2, 2)
    assert errors[0].startswith("dlforge: error: no logged requests: expected ")
    assert errors[1] == (
        "dlforge: error: too few logged rows for a drift check: expected at least "
        f"{drift.MIN_ROWS}, found 30"
    )


def test_training_statistics_are_the_newest_statistics_gen_output_of_the_models_pipeline(
    tmp_path,
):
    for pipeline, execution in (("digits_cnn", "7"), ("digits_cnn", "12"), ("digits_mlp", "20")):
        folder = tmp_path / "pipeline_root" / pipeline / "StatisticsGen" / "statistics" / execution
        (folder / "Split-train").mkdir(parents=True)
        (folder / "Split-train" / "FeatureStats.pb").write_bytes(b"")

    found = drift.latest_training_statistics(str(tmp_path), "digits_cnn")
    assert found.split(os.sep)[-6:-2] == ["digits_cnn", "StatisticsGen", "statistics", "12"]
    with pytest.raises(drift.DriftError, match="no training statistics"):
        drift.latest_training_statistics(str(tmp_path), "digits_perceptron")
