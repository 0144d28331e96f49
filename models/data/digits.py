"""The scikit-learn digits data set written as a pipeline's raw CSV input.

The 1,797 8x8 images ship inside scikit-learn, so no download happens. Each image becomes one CSV
row of 64 integer pixel columns (0..16) and an integer label (0..9). The rows are split once,
stratified by label and with a fixed seed, into train/eval/test folders, which ExampleGen reads as
three splits; the test split is used only by the Evaluator.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np

PIXEL_KEYS: tuple[str, ...] = tuple(f"pixel_{index:02d}" for index in range(64))
LABEL_KEY = "label"
# The columns of a raw CSV row, in order.
COLUMNS: tuple[str, ...] = (*PIXEL_KEYS, LABEL_KEY)
NUM_CLASSES = 10
IMAGE_SHAPE = (8, 8, 1)
PIXEL_MAX = 16
SPLIT_NAMES = ("train", "eval", "test")


@dataclass(frozen=True)
class SplitFractions:
    """Fractions of the rows that go to each split; they must sum to 1."""

    train: float = 0.7
    eval: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        values = (self.train, self.eval, self.test)
        if any(value <= 0 for value in values) or abs(sum(values) - 1.0) > 1e-9:
            raise ValueError(
                "Expected three positive split fractions that sum to 1, "
                f"received train={self.train}, eval={self.eval}, test={self.test}."
            )


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Returns the embedded digits data as (pixels int64 [n, 64], labels int64 [n])."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.int64), bunch.target.astype(np.int64)


def split_indices(
    labels: np.ndarray, fractions: SplitFractions, seed: int
) -> dict[str, np.ndarray]:
    """Splits row indices per label in the given fractions, the same way for the same seed.

    Args:
        labels: One integer label per row.
        fractions: The share of each split.
        seed: Seed of the shuffle inside each label.

    Returns:
        A dict from split name to the sorted row indices of that split; the splits are disjoint
        and cover every row.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_NAMES}
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        rng.shuffle(rows)
        num_train = round(len(rows) * fractions.train)
        num_eval = round(len(rows) * fractions.eval)
        parts["train"].append(rows[:num_train])
        parts["eval"].append(rows[num_train : num_train + num_eval])
        parts["test"].append(rows[num_train + num_eval :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def write_csv(path: str, pixels: np.ndarray, labels: np.ndarray) -> None:
    """Writes rows of pixels and labels to a CSV file with a header line."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row, label in zip(pixels, labels, strict=True):
            writer.writerow([*(int(value) for value in row), int(label)])


def write_splits(
    output_dir: str,
    *,
    seed: int = 0,
    fractions: SplitFractions | None = None,
    arrays: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, int]:
    """Writes `<output_dir>/<split>/digits.csv` for each split, atomically.

    The folder is built under a temporary name beside `output_dir` and renamed into place, so a
    reader never sees a half-written split. An existing `output_dir` is replaced only after the
    new one is complete.

    Args:
        output_dir: Folder that receives one sub-folder per split.
        seed: Seed of the stratified split.
        fractions: Split fractions; 70/15/15 by default.
        arrays: (pixels, labels) to write instead of the embedded data set, e.g. a small sample.

    Returns:
        The number of rows written per split.
    """
    pixels, labels = arrays if arrays is not None else load_digits_arrays()
    if pixels.ndim != 2 or pixels.shape[1] != len(PIXEL_KEYS) or len(pixels) != len(labels):
        raise ValueError(
            f"Expected pixels of shape [n, {len(PIXEL_KEYS)}] and n labels, "
            f"received pixels of shape {list(pixels.shape)} and {len(labels)} labels."
        )
    indices = split_indices(labels, fractions or SplitFractions(), seed)
    output_dir = os.path.abspath(output_dir)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".digits-", dir=parent)
    try:
        for name in SPLIT_NAMES:
            os.makedirs(os.path.join(staging, name))
            rows = indices[name]
            write_csv(os.path.join(staging, name, "digits.csv"), pixels[rows], labels[rows])
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the data is not.
        _replace_dir(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {name: len(indices[name]) for name in SPLIT_NAMES}


def _replace_dir(source: str, destination: str) -> None:
    """Moves `source` to `destination`, replacing an existing folder only once `source` is whole."""
    if not os.path.exists(destination):
        os.rename(source, destination)
        return
    retired = destination + ".old"
    shutil.rmtree(retired, ignore_errors=True)
    os.rename(destination, retired)
    try:
        os.rename(source, destination)
    except OSError:
        os.rename(retired, destination)
        raise
    shutil.rmtree(retired)


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads a digits CSV written by `write_csv` back into (pixels, labels)."""
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    return table[:, : len(PIXEL_KEYS)], table[:, len(PIXEL_KEYS)]
