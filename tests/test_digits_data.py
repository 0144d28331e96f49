"""Tests of the digits data set: stratified splits and the atomic CSV writer.

The writer is checked on small synthetic arrays so that the tests stay fast; the bundled
scikit-learn data set is used where its size matters (stratification, row count).
"""

import csv
import os

import numpy as np
import pytest

from models.data import digits
from tests.files import snapshot

EXPECTED_HEADER = [f"pixel_{index:02d}" for index in range(64)] + ["label"]


def _small_arrays(num_rows: int = 60, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pixels in 0..16 that differ per row, and labels 0..2 in equal numbers."""
    pixels = (np.arange(num_rows * 64).reshape(num_rows, 64) + offset) % 17
    labels = np.arange(num_rows) % 3
    return pixels.astype(np.int64), labels.astype(np.int64)


def test_load_digits_arrays_returns_the_bundled_1797_images():
    pixels, labels = digits.load_digits_arrays()

    assert pixels.shape == (1797, 64)
    assert labels.shape == (1797,)
    assert pixels.min() >= 0 and pixels.max() <= 16
    assert set(labels.tolist()) == set(range(10))


def test_split_indices_are_disjoint_and_cover_every_row():
    _, labels = digits.load_digits_arrays()

    splits = digits.split_indices(labels, digits.SplitFractions(), seed=0)

    all_rows = np.concatenate([splits[name] for name in ("train", "eval", "test")])
    assert len(all_rows) == len(labels)
    assert sorted(all_rows.tolist()) == list(range(len(labels)))


def test_split_indices_keep_each_label_share_close_to_the_fractions():
    _, labels = digits.load_digits_arrays()
    fractions = digits.SplitFractions(train=0.6, eval=0.25, test=0.15)

    splits = digits.split_indices(labels, fractions, seed=3)

    for label in range(10):
        label_rows = np.flatnonzero(labels == label)
        for name, fraction in (("train", 0.6), ("eval", 0.25), ("test", 0.15)):
            share = np.isin(label_rows, splits[name]).mean()
            assert share == pytest.approx(fraction, abs=0.01), (label, name)


def test_split_indices_are_the_same_for_the_same_seed():
    _, labels = digits.load_digits_arrays()

    first = digits.split_indices(labels, digits.SplitFractions(), seed=7)
    second = digits.split_indices(labels, digits.SplitFractions(), seed=7)

    for name in ("train", "eval", "test"):
        np.testing.assert_array_equal(first[name], second[name])


def test_split_indices_differ_for_another_seed():
    _, labels = digits.load_digits_arrays()

    first = digits.split_indices(labels, digits.SplitFractions(), seed=0)
    second = digits.split_indices(labels, digits.SplitFractions(), seed=1)

    assert not np.array_equal(first["train"], second["train"])


@pytest.mark.parametrize(
    ("train", "eval_", "test", "named"),
    [
        (0.5, 0.3, 0.3, "train=0.5, eval=0.3, test=0.3"),
        (0.8, 0.2, 0.0, "train=0.8, eval=0.2, test=0.0"),
        (1.2, -0.1, -0.1, "train=1.2, eval=-0.1, test=-0.1"),
    ],
)
def test_split_fractions_reject_bad_values_naming_them(train, eval_, test, named):
    with pytest.raises(ValueError, match=named):
        digits.SplitFractions(train=train, eval=eval_, test=test)


def test_write_splits_writes_one_csv_per_split_with_pixel_and_label_header(tmp_path):
    output_dir = tmp_path / "data"

    digits.write_splits(str(output_dir), arrays=_small_arrays())

    for name in ("train", "eval", "test"):
        with open(output_dir / name / "digits.csv", newline="") as handle:
            assert next(csv.reader(handle)) == EXPECTED_HEADER


def test_write_splits_rows_round_trip_through_read_csv(tmp_path):
    pixels, labels = _small_arrays()
    output_dir = tmp_path / "data"

    counts = digits.write_splits(str(output_dir), seed=5, arrays=(pixels, labels))

    expected = digits.split_indices(labels, digits.SplitFractions(), seed=5)
    for name in ("train", "eval", "test"):
        read_pixels, read_labels = digits.read_csv(str(output_dir / name / "digits.csv"))
        np.testing.assert_array_equal(read_pixels, pixels[expected[name]])
        np.testing.assert_array_equal(read_labels, labels[expected[name]])
        assert counts[name] == len(expected[name])


def test_write_splits_of_the_bundled_data_writes_all_1797_rows(tmp_path):
    counts = digits.write_splits(str(tmp_path / "data"))

    assert sum(counts.values()) == 1797
    read_back = sum(
        len(digits.read_csv(str(tmp_path / "data" / name / "digits.csv"))[1])
        for name in ("train", "eval", "test")
    )
    assert read_back == 1797


def test_write_splits_rejects_pixels_of_the_wrong_width_naming_the_shape(tmp_path):
    pixels = np.zeros((10, 63), dtype=np.int64)
    labels = np.zeros(10, dtype=np.int64)

    with pytest.raises(ValueError, match=r"received pixels of shape \[10, 63\] and 10 labels"):
        digits.write_splits(str(tmp_path / "data"), arrays=(pixels, labels))


def test_write_splits_rejects_a_label_count_that_differs_from_the_rows(tmp_path):
    pixels, labels = _small_arrays(num_rows=12)

    with pytest.raises(ValueError, match=r"received pixels of shape \[12, 64\] and 11 labels"):
        digits.write_splits(str(tmp_path / "data"), arrays=(pixels, labels[:11]))


def _fail_on_second_call(monkeypatch) -> None:
    """Makes `digits.write_csv` write the first split and raise on the second."""
    real_write_csv = digits.write_csv
    calls = []

    def failing_write_csv(path, pixels, labels):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write_csv(path, pixels, labels)

    monkeypatch.setattr(digits, "write_csv", failing_write_csv)


def test_write_splits_failing_midway_leaves_the_existing_output_intact(tmp_path, monkeypatch):
    output_dir = tmp_path / "data"
    digits.write_splits(str(output_dir), arrays=_small_arrays())
    before = snapshot(output_dir)
    _fail_on_second_call(monkeypatch)

    with pytest.raises(OSError, match="disk full"):
        digits.write_splits(str(output_dir), arrays=_small_arrays(offset=5))

    assert snapshot(output_dir) == before


def test_write_splits_failing_midway_removes_its_staging_dir(tmp_path, monkeypatch):
    output_dir = tmp_path / "data"
    digits.write_splits(str(output_dir), arrays=_small_arrays())
    _fail_on_second_call(monkeypatch)

    with pytest.raises(OSError, match="disk full"):
        digits.write_splits(str(output_dir), arrays=_small_arrays(offset=5))

    assert not [name for name in os.listdir(tmp_path) if name.startswith(".digits-")]
    assert os.listdir(tmp_path) == ["data"]


def test_write_splits_rewrite_replaces_the_old_content(tmp_path):
    output_dir = tmp_path / "data"
    digits.write_splits(str(output_dir), arrays=_small_arrays())
    (output_dir / "stale.txt").write_text("from the first write")
    new_pixels, new_labels = _small_arrays(offset=5)

    digits.write_splits(str(output_dir), arrays=(new_pixels, new_labels))

    assert sorted(os.listdir(output_dir)) == ["eval", "test", "train"]
    assert os.listdir(tmp_path) == ["data"]
    expected = digits.split_indices(new_labels, digits.SplitFractions(), seed=0)
    read_pixels, _ = digits.read_csv(str(output_dir / "train" / "digits.csv"))
    np.testing.assert_array_equal(read_pixels, new_pixels[expected["train"]])
