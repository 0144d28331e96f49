"""Benchmark of the data gates: time per 10k rows, false alarms on clean data, detections.

Run with `.venv/bin/python benchmarks/validation.py [--resamples N] [--trials N]`. In one
process it measures:

- the time of each validation stage per 10k rows, on the digits data scaled up to 10k and 30k
  rows (each image copied with +-1 jitter on a few pixels, clipped to 0..16, so rows stay
  unique): reading ExampleGen's gzipped TFRecords into a frame (GxValidator), TFDV statistics
  (StatisticsGen's computation, in process), the schema check (ExampleValidator), the GX suite
  on each split (GxValidator, without Data Docs; Data Docs are timed apart), drift and skew
  (DriftGate);
- the false-alarm rate: clean resamples of the embedded data (a random 90% of the rows, split
  with a random seed) through every gate (`pipelines.validate.validate_frames`), against the
  train split of span 0 as the drift baseline; target 0;
- the detection rate of each corruption class, each trial on another resample with a randomly
  placed corruption, target 100%; malformed files go through ingestion (`validate_path`).

It prints one table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

SCALES = (10_000, 30_000)


def _scaled(rows: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    from models.data import digits

    picked = rows[rng.integers(0, len(rows), size)].copy()
    jitter = rng.integers(-1, 2, size=(size, 64)) * (rng.random((size, 64)) < 0.1)
    picked[:, :64] = np.clip(picked[:, :64] + jitter, 0, digits.PIXEL_MAX)
    return picked


def _frames(rows: np.ndarray, seed: int) -> dict:
    import pandas as pd

    from pipelines import validate

    return {
        split: pd.DataFrame(part, columns=list(validate.COLUMNS))
        for split, part in validate.split_rows(rows, seed).items()
    }


def _write_tfrecords(frame, path: str) -> None:
    import tensorflow as tf

    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in frame.itertuples(index=False):
            feature = {
                name: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
                for name, value in zip(frame.columns, row, strict=True)
            }
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )


def _timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def _statistics(frames, options) -> dict:
    import tensorflow_data_validation as tfdv

    return {
        split: tfdv.generate_statistics_from_dataframe(frame, stats_options=options)
        for split, frame in frames.items()
    }


def _check(statistics, schema) -> list:
    import tensorflow_data_validation as tfdv

    return [tfdv.validate_statistics(stats, schema) for stats in statistics.values()]


def stage_times(rows: np.ndarray, baseline, rng) -> dict[int, dict[str, float]]:
    """Seconds per 10k rows of each stage, per scale."""
    import tensorflow_data_validation as tfdv

    from components.drift_gate import executor as drift
    from components.gx_validator import executor as gx
    from pipelines import validate

    schema = drift.load_schema(validate.SCHEMA_FILE)
    suite = validate.load_suite()
    options = tfdv.StatsOptions(schema=schema)
    # GX builds its metric machinery on first use: not a cost per row.
    gx.validate_splits(_frames(rows[:300], seed=0), suite)
    times = {}
    for size in SCALES:
        frames = _frames(_scaled(rows, size, rng), seed=0)
        per = 10_000 / size
        row = {}
        with tempfile.TemporaryDirectory() as folder:
            for split, frame in frames.items():
                os.makedirs(os.path.join(folder, split))
                _write_tfrecords(frame, os.path.join(folder, split, "data.gz"))
            seconds = 0.0
            for split in frames:
                elapsed, _ = _timed(gx.read_examples, os.path.join(folder, split))
                seconds += elapsed
            row["read TFRecords (GxValidator)"] = seconds * per
        seconds, statistics = _timed(_statistics, frames, options)
        row["TFDV statistics"] = seconds * per
        seconds, _ = _timed(_check, statistics, schema)
        row["schema check (ExampleValidator)"] = seconds * per
        seconds, _ = _timed(gx.validate_splits, frames, suite)
        row["GX suite, 3 splits (GxValidator)"] = seconds * per
        with tempfile.TemporaryDirectory() as folder:
            seconds_with_docs, _ = _timed(gx.validate_splits, frames, suite, folder)
        row["GX Data Docs, 3 splits"] = (seconds_with_docs - seconds) * per
        seconds, _ = _timed(
            drift.measure,
            statistics["train"],
            schema,
            previous=baseline.statistics,
            others={split: statistics[split] for split in ("eval", "test")},
        )
        row["drift and skew (DriftGate)"] = seconds * per
        row["total"] = sum(row.values())
        times[size] = row
    return times


def _resample(rows, rng) -> np.ndarray:
    keep = rng.choice(len(rows), size=int(0.9 * len(rows)), replace=False)
    return rows[np.sort(keep)].copy()


def _dense_pixels(schema) -> list[int]:
    return [
        int(feature.name.split("_")[1])
        for feature in schema.feature
        if feature.name.startswith("pixel_") and feature.HasField("drift_comparator")
    ]


def corruptions(schema) -> dict:
    """Corruption class -> function(rows, rng) -> corrupted rows, or a CSV text for malformed
    files (returned as str)."""
    from models.data import digits

    dense = _dense_pixels(schema)
    sparse = [index for index in range(64) if index not in dense]

    def out_of_range(rows, rng):
        rows[rng.integers(len(rows)), rng.integers(64)] = rng.integers(17, 256)
        return rows

    def unknown_label(rows, rng):
        rows[rng.integers(len(rows)), -1] = rng.integers(10, 100)
        return rows

    def collapsed_labels(rows, rng):
        rows[:, -1] = rng.integers(10)
        return rows

    def shifted_pixel(rows, rng):
        pixel = rng.choice(dense)
        rows[:, pixel] = np.clip(rows[:, pixel] + rng.choice([-3, 3]), 0, digits.PIXEL_MAX)
        return rows

    def shifted_border_pixel(rows, rng):
        pixel = rng.choice(sparse)
        rows[:, pixel] = np.clip(rows[:, pixel] + 3, 0, digits.PIXEL_MAX)
        return rows

    def duplicate_flood(rows, rng):
        again = rng.choice(len(rows), size=int(0.08 * len(rows)), replace=False)
        return np.concatenate([rows, rows[again]])

    def empty_split(rows, rng):
        return rows[[int(rng.choice(np.flatnonzero(rows[:, -1] == label))) for label in range(10)]]

    def _text(rows, edit) -> str:
        header = [*digits.PIXEL_KEYS, digits.LABEL_KEY]
        lines = [header] + [[str(value) for value in row] for row in rows]
        edit(lines)
        return "\n".join(",".join(line) for line in lines) + "\n"

    def type_error(rows, rng):
        def edit(lines):
            lines[1 + rng.integers(len(rows))][rng.integers(65)] = "x"

        return _text(rows, edit)

    def empty_value(rows, rng):
        def edit(lines):
            lines[1 + rng.integers(len(rows))][rng.integers(65)] = ""

        return _text(rows, edit)

    def missing_column(rows, rng):
        column = rng.integers(65)
        return _text(rows, lambda lines: [line.pop(column) for line in lines])

    def extra_column(rows, rng):
        return _text(rows, lambda lines: [line.append("1") for line in lines])

    return {
        "out-of-range value": out_of_range,
        "label outside the vocabulary": unknown_label,
        "collapsed label distribution": collapsed_labels,
        "shifted pixel (drift)": shifted_pixel,
        "duplicated-row flood (8%)": duplicate_flood,
        "empty split": empty_split,
        "type error (text in a cell)": type_error,
        "empty value (null)": empty_value,
        "missing column": missing_column,
        "extra column": extra_column,
        "shifted border pixel (no comparator)": shifted_border_pixel,
    }


def _stopped(data, baseline, seed: int, folder: str) -> bool:
    """Whether the gates (or ingestion, for a file) stop this data."""
    from models.data import ingest
    from pipelines import validate

    if isinstance(data, str):
        path = os.path.join(folder, "data.csv")
        with open(path, "w") as handle:
            handle.write(data)
        try:
            validate.validate_path(path, os.path.join(folder, "home"), folder, seed=seed)
        except ingest.IngestError:
            return True
        raise AssertionError("a malformed file passed ingestion")
    output = tempfile.mkdtemp(dir=folder)
    report = validate.validate_frames(
        _frames(data, seed), baseline, output, data_docs=False, source="bench"
    )
    return not report.passed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=8, help="clean resamples")
    parser.add_argument("--trials", type=int, default=3, help="trials per corruption class")
    args = parser.parse_args(argv)

    import pandas as pd
    import tensorflow_data_validation as tfdv

    from components.drift_gate.executor import load_schema
    from models.data import digits
    from pipelines import validate

    pixels, labels = digits.load_digits_arrays()
    rows = np.column_stack([pixels, labels])
    schema = load_schema(validate.SCHEMA_FILE)
    baseline = validate.Baseline(
        tfdv.generate_statistics_from_dataframe(
            pd.DataFrame(validate.split_rows(rows, 0)["train"], columns=list(validate.COLUMNS)),
            stats_options=tfdv.StatsOptions(schema=schema),
        ),
        "span 0",
    )
    rng = np.random.default_rng(2026)
    with contextlib.redirect_stdout(io.StringIO()):
        times = stage_times(rows, baseline, rng)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        alarms = sum(
            _stopped(_resample(rows, rng), baseline, int(rng.integers(1000)), folder)
            for _ in range(args.resamples)
        )
        clean_seconds = (time.perf_counter() - started) / args.resamples
        for name, corrupt in corruptions(schema).items():
            detected = 0
            for _ in range(args.trials):
                data = corrupt(_resample(rows, rng), rng)
                detected += _stopped(data, baseline, int(rng.integers(1000)), folder)
            results[name] = detected
            print(f"  {name}: {detected}/{args.trials}", file=sys.stderr)

    print(f"{'stage (seconds per 10k rows)':<40}" + "".join(f"{size:>12,}" for size in SCALES))
    for stage in times[SCALES[0]]:
        print(f"  {stage:<38}" + "".join(f"{times[size][stage]:12.2f}" for size in SCALES))
    print(f"\n{'measure':<48}{'value':>8}{'target':>8}{'met':>5}")
    rate = alarms / args.resamples
    print(
        f"{'false alarms on clean resamples':<48}{f'{alarms}/{args.resamples}':>8}"
        f"{'0':>8}{'yes' if alarms == 0 else 'no':>5}"
    )
    print(f"{'  false-alarm rate':<48}{rate:8.2f}")
    print(f"{'  seconds per clean resample (1,617 rows)':<48}{clean_seconds:8.1f}")
    for name, detected in results.items():
        met = "yes" if detected == args.trials else "no"
        print(f"{'detected: ' + name:<48}{f'{detected}/{args.trials}':>8}{'100%':>8}{met:>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
