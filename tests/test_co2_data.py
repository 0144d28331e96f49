"""The CO2 windows, their chronological splits and the seasonal-naive baseline."""

import os

import numpy as np
import pytest

from models.data import co2
from models.data.digits import SplitFractions
from models.spec import TaskSpec
from models.tasks import CO2


def test_the_embedded_series_has_every_week_filled_and_plausible_values():
    series = co2.load_series()
    assert series.shape == (2284,)
    assert np.isfinite(series).all()
    assert 310 < series.min() < series.max() < 380


def test_a_window_holds_the_lookback_values_before_its_target_oldest_first():
    series = np.arange(100.0)
    lags, targets = co2.make_windows(series, lookback=52)
    assert lags.shape == (48, 52)
    np.testing.assert_array_equal(lags[0], np.arange(52.0))
    np.testing.assert_array_equal(targets, np.arange(52.0, 100.0))
    # Each row is the 52 values right before its target, the latest last.
    np.testing.assert_array_equal(lags[:, -1], targets - 1)
    np.testing.assert_array_equal(lags[:, 0], targets - 52)


def test_feature_columns_run_from_a_year_back_to_last_week():
    assert co2.FEATURE_KEYS[0] == "lag_52" == co2.SEASONAL_NAIVE_KEY
    assert co2.FEATURE_KEYS[-1] == "lag_01"
    assert len(co2.FEATURE_KEYS) == co2.LOOKBACK >= co2.SEASON


def test_splits_are_chronological_and_share_no_value_as_lag_or_target():
    series = np.arange(1000.0)  # Each value names its week.
    windows = co2.split_windows(series, SplitFractions(0.6, 0.2, 0.2))
    weeks = {
        name: set(np.concatenate([lags.ravel(), targets]))
        for name, (lags, targets) in windows.items()
    }
    assert not weeks["train"] & weeks["eval"]
    assert not weeks["eval"] & weeks["test"]
    assert not weeks["train"] & weeks["test"]
    assert max(weeks["train"]) < min(weeks["eval"]) <= max(weeks["eval"]) < min(weeks["test"])
    assert max(weeks["test"]) == 999  # The test split is the end of the series.
    assert [len(windows[name][1]) for name in co2.SPLIT_NAMES] == [600 - 52, 200 - 52, 200 - 52]


def test_seasonal_naive_forecasts_the_value_a_season_before():
    weeks = np.arange(300)
    season = 10 * np.sin(2 * np.pi * weeks / 52)
    lags, targets = co2.make_windows(season + 0.5 * weeks)
    np.testing.assert_allclose(co2.seasonal_naive(lags), targets - 0.5 * 52, atol=1e-9)
    errors = co2.seasonal_naive_errors(lags, targets)
    # A pure season is forecast exactly; a trend of 0.5 a week costs a year of it, 26.
    assert errors.rmse == pytest.approx(26.0)
    assert errors.mae == pytest.approx(26.0)
    assert co2.seasonal_naive_errors(*co2.make_windows(season)).rmse == pytest.approx(0, abs=1e-9)


def test_forecast_errors_are_root_mean_squared_and_mean_absolute():
    errors = co2.forecast_errors(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 1.0, 4.0]))
    assert errors.rmse == pytest.approx(1.0)
    assert errors.mae == pytest.approx(0.5)
    assert errors.count == 4
    with pytest.raises(ValueError, match="received 2 forecasts and 3 targets"):
        co2.forecast_errors(np.zeros(2), np.zeros(3))


def test_a_series_with_gaps_or_too_short_is_refused():
    with pytest.raises(ValueError, match="1 missing values"):
        co2.make_windows(np.array([1.0, np.nan, *range(60)]))
    with pytest.raises(ValueError, match="more than 52 finite values"):
        co2.make_windows(np.arange(52.0))


def test_write_splits_writes_csv_folders_that_read_back(tmp_path):
    series = 320 + np.arange(400) * 0.03 + np.sin(np.arange(400) / 8.3)
    counts = co2.write_splits(str(tmp_path / "data"), seed=3, series=series)
    assert counts == {"train": 280 - 52, "eval": 60 - 52, "test": 60 - 52}
    expected = co2.split_windows(series)
    for name in co2.SPLIT_NAMES:
        path = tmp_path / "data" / name / "co2.csv"
        assert path.read_text().splitlines()[0] == ",".join([*co2.FEATURE_KEYS, co2.LABEL_KEY])
        lags, targets = co2.read_csv(str(path))
        np.testing.assert_allclose(lags, expected[name][0], atol=5e-5)
        np.testing.assert_allclose(targets, expected[name][1], atol=5e-5)
    assert sorted(os.listdir(tmp_path)) == ["data"]  # No staging folder left behind.


def test_every_value_is_written_with_decimals_so_csv_inference_reads_floats(tmp_path):
    co2.write_csv(str(tmp_path / "w.csv"), np.full((1, co2.LOOKBACK), 320.0), np.array([321.0]))
    values = (tmp_path / "w.csv").read_text().splitlines()[1].split(",")
    assert all(value.endswith(".0000") for value in values)


def test_the_co2_task_is_a_regression_over_the_window():
    assert CO2.kind == "regression"
    assert CO2.num_classes == 0
    assert CO2.sequence_length == CO2.num_features == co2.LOOKBACK
    assert CO2.raw_feature_keys == co2.FEATURE_KEYS
    assert CO2.label_key == co2.LABEL_KEY


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"kind": "regression", "num_classes": 3}, "for a regression task, num_classes 0"),
        ({"kind": "classification", "num_classes": 0}, "num_classes >= 2"),
        ({"kind": "ranking", "num_classes": 0}, "received 'ranking'"),
        ({"kind": "regression", "num_classes": 0, "sequence_length": 5}, "divides num_features"),
    ],
)
def test_task_specs_check_kind_classes_and_sequence_length(arguments, message):
    with pytest.raises(ValueError, match=message):
        TaskSpec(name="t", feature_key="x", num_features=8, label_key="y", **arguments)
