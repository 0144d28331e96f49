"""The bad-data suite: corrupted copies of the digits data, each stopped before training.

Malformed files (type errors, missing or extra columns, empty values) are refused at ingestion,
before any stage runs. Well-formed but bad data goes through the run's gates with the functions
their components use (`pipelines.validate.validate_frames`: TFDV schema, the GX suite, drift and
skew), against a baseline of the clean data's train split, as `dlforge validate` does. Each
corruption must fail the right check, for the right feature, with the right reason; the clean
data must pass every check. `dlforge validate` writes only into its temporary folder, and a run
never starts, so nothing is trained or pushed (the end-to-end test shows a real run stopping).
"""

import os

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv

from models.data import digits, ingest
from pipelines import validate
from tests.files import snapshot

COLUMNS = list(validate.COLUMNS)
SCHEMA, SUITE, DRIFT, SKEW = (
    validate.SCHEMA_CHECK,
    validate.SUITE_CHECK,
    validate.DRIFT_CHECK,
    validate.SKEW_CHECK,
)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    pixels, labels = digits.load_digits_arrays()
    return np.column_stack([pixels, labels])


@pytest.fixture(scope="module")
def baseline(rows) -> validate.Baseline:
    """The train split of the clean data, split as span 0 was: what the blessed model saw."""
    from components.drift_gate.executor import load_schema

    train = validate.split_rows(rows, seed=0)["train"]
    statistics = tfdv.generate_statistics_from_dataframe(
        pd.DataFrame(train, columns=COLUMNS),
        stats_options=tfdv.StatsOptions(schema=load_schema(validate.SCHEMA_FILE)),
    )
    return validate.Baseline(statistics, "the clean data")


def _validate(rows: np.ndarray, baseline, folder) -> validate.Report:
    # Another split seed than the baseline's: a new span of the same data differs this much.
    frames = {
        split: pd.DataFrame(part, columns=COLUMNS)
        for split, part in validate.split_rows(rows, seed=1).items()
    }
    return validate.validate_frames(
        frames, baseline, str(folder), source="corrupted", data_docs=False
    )


def _failures(report: validate.Report) -> set[tuple[str, str, str]]:
    return {
        (check.name, finding.feature, finding.anomaly)
        for check in report.checks
        for finding in check.findings
    }


def _out_of_range(rows):
    rows[5, 17] = 99
    return rows


def _unknown_label(rows):
    rows[3, -1] = 10
    return rows


def _collapsed_labels(rows):
    rows[:, -1] = 3
    return rows


def _shifted_pixel(rows):
    rows[:, 20] = np.minimum(digits.PIXEL_MAX, rows[:, 20] + 3)
    return rows


def _duplicate_flood(rows):
    # 150 images exported twice, across every label: the label distribution barely moves.
    again = np.random.default_rng(0).choice(len(rows), size=150, replace=False)
    return np.concatenate([rows, rows[again]])


def _empty_split(rows):
    # One image per label: the 70/15/15 split leaves eval and test empty.
    return rows[[int(np.flatnonzero(rows[:, -1] == label)[0]) for label in range(10)]]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (
            _out_of_range,
            {
                (SCHEMA, "pixel_17", "Out-of-range values"),
                (SUITE, "pixel_17", "values out of range"),
            },
        ),
        (
            _unknown_label,
            {
                (SCHEMA, "label", "Out-of-range values"),
                (SUITE, "label", "values outside the vocabulary"),
            },
        ),
        (
            _collapsed_labels,
            {
                (SUITE, "label", "degenerate distribution"),
                (DRIFT, "label", "drift from the clean data"),
            },
        ),
        (_shifted_pixel, {(DRIFT, "pixel_20", "drift from the clean data")}),
        (_duplicate_flood, {(SUITE, "<dataset>", "duplicated rows")}),
        # Ten training rows also drift from the baseline on many pixels: not asserted.
        (_empty_split, {(SUITE, "<dataset>", "row count out of bounds")}),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] if callable(value) else "",
)
def test_each_corruption_fails_the_right_check_for_the_right_feature(
    rows, baseline, tmp_path, corrupt, expected
):
    report = _validate(corrupt(rows.copy()), baseline, tmp_path)
    assert not report.passed
    failures = _failures(report)
    assert expected <= failures, sorted(failures)
    if corrupt is not _empty_split:
        # No check blames a feature the corruption did not touch.
        assert {feature for _, feature, _ in failures} == {feature for _, feature, _ in expected}
    else:
        (suite,) = [check for check in report.checks if check.name == SUITE]
        assert {(item.split, item.description) for item in suite.findings} == {
            ("train", "10 rows, expected 100..1000000"),
            ("eval", "0 rows, expected 100..1000000"),
            ("test", "0 rows, expected 100..1000000"),
        }


@pytest.mark.slow
def test_clean_data_passes_every_gate(rows, baseline, tmp_path):
    report = _validate(rows.copy(), baseline, tmp_path)
    assert [check.name for check in report.checks] == [SCHEMA, SUITE, DRIFT, SKEW]
    assert report.passed, validate.format_report(report)
    assert report.rows == {"train": 1258, "eval": 269, "test": 270}


def _csv(path, rows, header=COLUMNS) -> str:
    with open(path, "w") as handle:
        handle.write(",".join(header) + "\n")
        for row in rows:
            handle.write(",".join(str(value) for value in row) + "\n")
    return str(path)


def _set_cell(lines: list[str], line: int, column: int, value: str) -> list[str]:
    values = lines[line - 1].split(",")
    values[column] = value
    return [*lines[: line - 1], ",".join(values), *lines[line:]]


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (
            lambda lines: _set_cell(lines, 6, 1, "x0"),
            r"bad\.csv, line 6, column 'pixel_01': expected an integer, found 'x0'",
        ),
        (
            lambda lines: _set_cell(lines, 4, 30, ""),
            r"bad\.csv, line 4, column 'pixel_30': expected an integer, found an empty value",
        ),
        (
            lambda lines: [line.split(",", 1)[1] for line in lines],
            r"bad\.csv, line 1: the header has missing column\(s\) pixel_00",
        ),
        (
            lambda lines: [lines[0] + ",extra"] + [line + ",1" for line in lines[1:]],
            r"bad\.csv, line 1: the header has unexpected column\(s\) extra",
        ),
    ],
    ids=["type_error", "empty_value", "missing_column", "extra_column"],
)
def test_malformed_files_stop_at_ingestion_naming_line_and_column(rows, tmp_path, corrupt, message):
    _csv(tmp_path / "clean.csv", rows[:50])
    lines = (tmp_path / "clean.csv").read_text().splitlines()
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(corrupt(lines)) + "\n")
    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(ingest.IngestError, match=message):
        validate.validate_path(str(path), str(home), str(tmp_path / "out"))
    assert snapshot(home) == {}
    assert not os.path.exists(tmp_path / "out")
