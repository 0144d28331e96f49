"""statsmodels' weekly Mauna Loa CO2 series written as a forecasting pipeline's raw CSV input.

The series (March 1958 to December 2001, 2,284 weeks, in ppm) ships inside statsmodels, so no
download happens; its 59 missing weeks are filled by linear interpolation. The series is cut
chronologically into three contiguous segments, train, eval and test (the last weeks), and each
segment becomes supervised windows on its own: a row holds the `LOOKBACK` weekly values before a
week (`lag_52` .. `lag_01`, oldest first) and that week's value (`co2`). Because windows never
straddle a border, no value of one split appears in another split's rows, as lag or as target.

The seasonal-naive forecast of a week is the value one year (52 weeks) before it, the `lag_52`
column: the baseline a forecaster must beat.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np

from models.data.digits import SplitFractions, _replace_dir

LOOKBACK = 52
SEASON = 52
LAG_KEYS: tuple[str, ...] = tuple(f"lag_{lag:02d}" for lag in range(LOOKBACK, 0, -1))
FEATURE_KEYS = LAG_KEYS
LABEL_KEY = "co2"
SPLIT_NAMES = ("train", "eval", "test")
SEASONAL_NAIVE_KEY = f"lag_{SEASON:02d}"


def load_series() -> np.ndarray:
    """Returns the weekly CO2 series in ppm, float64 [2284], missing weeks interpolated."""
    from statsmodels.datasets import co2

    values = co2.load_pandas().data["co2"].interpolate(method="linear")
    return values.to_numpy(dtype=np.float64)


def make_windows(series: np.ndarray, lookback: int = LOOKBACK) -> tuple[np.ndarray, np.ndarray]:
    """Turns a series into supervised windows.

    Args:
        series: Values in time order, 1-D.
        lookback: Number of past values per window.

    Returns:
        (lags [n - lookback, lookback], targets [n - lookback]): row i holds
        `series[i : i + lookback]` (oldest first) and its target `series[i + lookback]`.

    Raises:
        ValueError: If the series is not 1-D, has missing values, or is not longer than
            `lookback`.
    """
    series = np.asarray(series, dtype=np.float64)
    if series.ndim != 1 or len(series) <= lookback or not np.isfinite(series).all():
        raise ValueError(
            f"Expected a 1-D series of more than {lookback} finite values, received shape "
            f"{list(series.shape)} with {int((~np.isfinite(series)).sum())} missing values."
        )
    lags = np.lib.stride_tricks.sliding_window_view(series[:-1], lookback)
    return lags.copy(), series[lookback:].copy()


def split_series(
    series: np.ndarray, fractions: SplitFractions | None = None
) -> dict[str, np.ndarray]:
    """Cuts the series into contiguous train, eval and test segments, in time order.

    Args:
        series: Values in time order.
        fractions: Share of the weeks in each segment; 70/15/15 by default.

    Returns:
        Split name -> that split's segment of the series.
    """
    fractions = fractions or SplitFractions()
    num_train = round(len(series) * fractions.train)
    num_eval = round(len(series) * fractions.eval)
    return {
        "train": series[:num_train],
        "eval": series[num_train : num_train + num_eval],
        "test": series[num_train + num_eval :],
    }


def split_windows(
    series: np.ndarray, fractions: SplitFractions | None = None, lookback: int = LOOKBACK
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Windows of each split, made inside each split's segment (see `split_series`)."""
    return {
        name: make_windows(segment, lookback)
        for name, segment in split_series(series, fractions).items()
    }


def seasonal_naive(lags: np.ndarray) -> np.ndarray:
    """The seasonal-naive forecast of each window: the value `SEASON` weeks before its target.

    Args:
        lags: Windows [n, lookback] with lookback >= `SEASON`, oldest value first.

    Returns:
        float64 [n].
    """
    if lags.ndim != 2 or lags.shape[1] < SEASON:
        raise ValueError(
            f"Expected windows of shape [n, >= {SEASON}], received {list(lags.shape)}."
        )
    return lags[:, -SEASON].astype(np.float64)


@dataclass(frozen=True)
class ForecastErrors:
    """Errors of forecasts against targets, in the targets' unit (ppm)."""

    rmse: float
    mae: float
    count: int


def forecast_errors(forecasts: np.ndarray, targets: np.ndarray) -> ForecastErrors:
    """Root mean squared and mean absolute error of `forecasts` against `targets`.

    Raises:
        ValueError: If the two do not have the same number of values, or have none.
    """
    forecasts = np.asarray(forecasts, np.float64).reshape(-1)
    targets = np.asarray(targets, np.float64).reshape(-1)
    if forecasts.shape != targets.shape or not len(targets):
        raise ValueError(
            "Expected as many forecasts as targets, at least one, received "
            f"{len(forecasts)} forecasts and {len(targets)} targets."
        )
    errors = forecasts - targets
    return ForecastErrors(
        rmse=float(np.sqrt(np.mean(errors**2))),
        mae=float(np.mean(np.abs(errors))),
        count=len(targets),
    )


def seasonal_naive_errors(lags: np.ndarray, targets: np.ndarray) -> ForecastErrors:
    """Errors of the seasonal-naive forecast on a split's windows."""
    return forecast_errors(seasonal_naive(lags), targets)


def write_csv(path: str, lags: np.ndarray, targets: np.ndarray) -> None:
    """Writes windows to a CSV file with a header line (`lag_52`..`lag_01`, `co2`).

    Every value is written with four decimals, so that CSV type inference reads each column as
    floats even when a small file happens to hold whole numbers only.
    """
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURE_KEYS, LABEL_KEY])
        for row, target in zip(lags, targets, strict=True):
            writer.writerow([*(f"{value:.4f}" for value in row), f"{target:.4f}"])


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads a CSV written by `write_csv` back into (lags [n, LOOKBACK], targets [n])."""
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    return table[:, :LOOKBACK], table[:, LOOKBACK]


def write_splits(
    output_dir: str,
    *,
    seed: int = 0,
    fractions: SplitFractions | None = None,
    series: np.ndarray | None = None,
) -> dict[str, int]:
    """Writes `<output_dir>/<split>/co2.csv` for each split, atomically.

    The folder is built under a temporary name beside `output_dir` and renamed into place, so a
    reader never sees a half-written split.

    Args:
        output_dir: Folder that receives one sub-folder per split.
        seed: Accepted for the same call shape as `models.data.digits.write_splits`; unused,
            since a chronological split has nothing random.
        fractions: Share of the weeks in each split; 70/15/15 by default.
        series: A series to write instead of the embedded one, e.g. a synthetic one.

    Returns:
        The number of rows (windows) written per split.
    """
    del seed  # A chronological split is the same for every seed.
    windows = split_windows(load_series() if series is None else series, fractions)
    output_dir = os.path.abspath(output_dir)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".co2-", dir=parent)
    try:
        for name in SPLIT_NAMES:
            os.makedirs(os.path.join(staging, name))
            write_csv(os.path.join(staging, name, "co2.csv"), *windows[name])
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the data is not.
        _replace_dir(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {name: len(windows[name][1]) for name in SPLIT_NAMES}
