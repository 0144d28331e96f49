"""The baseline gate: seasonal naive from raw test windows, model RMSE from TFMA, the blessing."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components.baseline_gate import executor
from models.data import co2


def _example(values: dict) -> bytes:
    feature = {
        key: tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        for key, value in values.items()
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_records(path: str, records: list[bytes], compression: str = "GZIP") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options=compression) as writer:
        for record in records:
            writer.write(record)


@pytest.fixture(scope="module")
def test_windows():
    """Windows of a seasonal series with a trend of 0.05 a week: seasonal naive is 2.6 off."""
    weeks = np.arange(130)
    series = 350 + 0.05 * weeks + 3 * np.sin(2 * np.pi * weeks / 52)
    return co2.make_windows(series)


@pytest.fixture(scope="module")
def examples_dir(tmp_path_factory, test_windows):
    """ExampleGen's layout: gzipped tf.Examples of the raw windows under `Split-test/`."""
    directory = str(tmp_path_factory.mktemp("examples"))
    lags, targets = test_windows
    records = [
        _example({**dict(zip(co2.FEATURE_KEYS, row, strict=True)), co2.LABEL_KEY: target})
        for row, target in zip(lags, targets, strict=True)
    ]
    _write_records(
        os.path.join(directory, "Split-test", "data_tfrecord-00000-of-00001.gz"), records
    )
    return directory


def _tfma_evaluation(directory: str, targets: np.ndarray, forecasts: np.ndarray) -> str:
    """A real TFMA run over examples that carry their forecast, with the metrics of the co2
    pipeline's eval config; returns the output path."""
    import tensorflow_model_analysis as tfma

    data = os.path.join(directory, "predictions.tfrecord")
    _write_records(
        data,
        [
            _example({co2.LABEL_KEY: target, "forecast": forecast})
            for target, forecast in zip(targets, forecasts, strict=True)
        ],
        compression="",
    )
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key=co2.LABEL_KEY, prediction_key="forecast")],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="RootMeanSquaredError"),
                    tfma.MetricConfig(class_name="MeanAbsoluteError"),
                ]
            )
        ],
    )
    output = os.path.join(directory, "evaluation")
    tfma.run_model_analysis(
        eval_config=eval_config,
        data_location=data,
        file_format="tfrecords",
        output_path=output,
    )
    return output


def test_reads_the_raw_test_windows_exactly(examples_dir, test_windows):
    lags, targets = executor.read_windows(os.path.join(examples_dir, "Split-test"))
    np.testing.assert_allclose(lags, test_windows[0], rtol=1e-6)
    np.testing.assert_allclose(targets, test_windows[1], rtol=1e-6)


def test_a_split_without_the_window_features_is_refused(tmp_path):
    _write_records(str(tmp_path / "Split-test" / "data.gz"), [_example({"lag_01": 1.0})])
    with pytest.raises(ValueError, match="Expected examples with the float features lag_52"):
        executor.read_windows(str(tmp_path / "Split-test"))
    with pytest.raises(FileNotFoundError, match="found none"):
        executor.read_windows(str(tmp_path / "missing"))


@pytest.mark.parametrize(
    ("evaluator_blessed", "model_rmse", "blessed", "reason"),
    [
        (True, 0.5, True, "beats the seasonal-naive forecast"),
        (True, 2.7, False, "does not beat the seasonal-naive forecast"),
        (False, 0.5, False, "the Evaluator did not bless the model"),
    ],
)
def test_blesses_only_a_model_the_evaluator_blessed_that_beats_seasonal_naive(
    test_windows, evaluator_blessed, model_rmse, blessed, reason
):
    verdict = executor.decide(
        evaluator_blessed=evaluator_blessed,
        model_rmse=model_rmse,
        model_mae=None,
        lags=test_windows[0],
        targets=test_windows[1],
    )
    assert verdict.seasonal_naive_rmse == pytest.approx(2.6)
    assert verdict.blessed is blessed
    assert reason in verdict.reason


@pytest.mark.slow
def test_the_gate_reads_tfma_metrics_and_writes_an_evaluator_style_blessing(
    tmp_path, examples_dir, test_windows
):
    _, targets = test_windows
    # Forecasts 0.3 off in alternate directions: RMSE and MAE 0.3, well below seasonal naive.
    forecasts = targets + 0.3 * np.where(np.arange(len(targets)) % 2, 1, -1)
    evaluation = _tfma_evaluation(str(tmp_path), targets, forecasts)
    assert executor.read_model_errors(evaluation) == pytest.approx((0.3, 0.3), rel=1e-4)

    verdict = executor.run_gate(
        evaluator_blessed=True,
        examples_dir=examples_dir,
        evaluation_dir=evaluation,
        blessing_dir=str(tmp_path / "blessing"),
        report_dir=str(tmp_path / "report"),
    )
    assert verdict.blessed
    assert os.listdir(tmp_path / "blessing") == ["BLESSED"]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["model_rmse"] == pytest.approx(0.3, rel=1e-4)
    assert report["model_mae"] == pytest.approx(0.3, rel=1e-4)
    assert report["seasonal_naive_rmse"] == pytest.approx(2.6)
    assert report["test_windows"] == len(targets)

    refused = executor.run_gate(
        evaluator_blessed=False,
        examples_dir=examples_dir,
        evaluation_dir=evaluation,
        blessing_dir=str(tmp_path / "refused"),
        report_dir=str(tmp_path / "refused_report"),
    )
    assert not refused.blessed
    assert os.listdir(tmp_path / "refused") == ["NOT_BLESSED"]


def test_an_evaluation_without_rmse_is_refused(tmp_path):
    os.makedirs(tmp_path / "evaluation")
    with pytest.raises(ValueError, match="'root_mean_squared_error' of the overall slice"):
        executor.read_model_errors(str(tmp_path / "evaluation"))
