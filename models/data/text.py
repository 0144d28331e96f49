"""Passages of the Python documentation labelled by the part of the docs they come from.

The text ships with Python itself: `pydoc_data.topics.topics` holds the help topics that
`help("if")` shows, each a section of the Language Reference or of the Library Reference. Each
topic is assigned to the chapter it is a section of (`CHAPTERS`), split into paragraphs, and long
paragraphs into runs of whole sentences, which gives about two thousand labelled passages. A
passage that occurs in topics of two chapters is dropped (topics overlap, e.g. "compound"
contains "if"), so no text is in two classes or two splits. The passages are split once,
stratified by label and with a fixed seed, into train/eval/test folders of CSV files with the
columns `text` (one line, whitespace normalised) and `label` (an integer index of `LABEL_NAMES`).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import tempfile

import numpy as np

from models.data import digits
from models.data.digits import SplitFractions

TEXT_KEY = "text"
LABEL_KEY = "label"
SPLIT_NAMES = digits.SPLIT_NAMES
FILE_NAME = "text.csv"

# Chapter -> the help topics that are sections of it (Python 3.10 documentation). The Language
# Reference's chapters 3 and 4 (data model, execution model) are one class: the execution model
# alone gives too few passages for a class.
CHAPTERS: dict[str, tuple[str, ...]] = {
    "lexical_analysis": (
        "identifiers",
        "id-classes",
        "strings",
        "numbers",
        "integers",
        "floating",
        "imaginary",
    ),
    "data_and_execution_model": (
        "objects",
        "types",
        "specialnames",
        "customization",
        "attribute-access",
        "callable-types",
        "numeric-types",
        "sequence-types",
        "context-managers",
        "execmodel",
        "naming",
        "dynamic-features",
        "exceptions",
    ),
    "expressions": (
        "conversions",
        "atom-identifiers",
        "atom-literals",
        "lists",
        "dict",
        "attribute-references",
        "subscriptions",
        "slicings",
        "calls",
        "await",
        "power",
        "unary",
        "binary",
        "shifting",
        "bitwise",
        "comparisons",
        "in",
        "booleans",
        "lambda",
        "exprlists",
        "operator-summary",
    ),
    "simple_statements": (
        "assert",
        "assignment",
        "augassign",
        "pass",
        "del",
        "return",
        "yield",
        "raise",
        "break",
        "continue",
        "import",
        "global",
        "nonlocal",
    ),
    "compound_statements": (
        "compound",
        "if",
        "else",
        "while",
        "for",
        "try",
        "with",
        "function",
        "class",
        "async",
    ),
    "builtin_types": (
        "truth",
        "string-methods",
        "typesseq",
        "typesseq-mutable",
        "typesmapping",
        "typesmethods",
        "typesmodules",
        "typesfunctions",
        "bltin-code-objects",
        "bltin-ellipsis-object",
        "bltin-null-object",
        "bltin-type-objects",
        "specialattrs",
    ),
    # Library Reference sections that are modules of their own: `string` and `pdb`.
    "library_modules": ("formatstrings", "debugger"),
}
LABEL_NAMES: tuple[str, ...] = tuple(CHAPTERS)
NUM_CLASSES = len(LABEL_NAMES)

# A paragraph shorter than this is a heading remnant or "See also:", too little to classify.
MIN_CHARS = 40
# A paragraph longer than this is cut into runs of whole sentences of at least TARGET_CHARS.
MAX_CHARS = 300
TARGET_CHARS = 120

_UNDERLINE = re.compile(r"^\s*[*=\-]{3,}\s*$", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“(])")


def normalise(text: str) -> str:
    """Collapses every run of whitespace (newlines included) into one space."""
    return " ".join(text.split())


def passages_of(topic_text: str) -> list[str]:
    """Splits one help topic into passages: paragraphs, long ones cut between sentences.

    Args:
        topic_text: The text of a topic as `pydoc_data.topics.topics` holds it.

    Returns:
        One-line passages of at least `MIN_CHARS` characters, in document order.
    """
    passages = []
    for paragraph in _PARAGRAPH_BREAK.split(_UNDERLINE.sub("", topic_text)):
        paragraph = normalise(paragraph)
        if len(paragraph) <= MAX_CHARS:
            pieces = [paragraph]
        else:
            pieces, current = [], ""
            for sentence in _SENTENCE_END.split(paragraph):
                current = f"{current} {sentence}" if current else sentence
                if len(current) >= TARGET_CHARS:
                    pieces.append(current)
                    current = ""
            # A short tail joins the run before it rather than stand alone.
            if current and pieces and len(current) < MIN_CHARS:
                pieces[-1] = f"{pieces[-1]} {current}"
            elif current:
                pieces.append(current)
        passages.extend(piece for piece in pieces if len(piece) >= MIN_CHARS)
    return passages


def load_passages(topics: dict[str, str] | None = None) -> tuple[list[str], np.ndarray]:
    """Returns the labelled passages: (texts, labels int64 [n]), in a fixed order.

    Args:
        topics: Topic name -> text; `pydoc_data.topics.topics` by default.

    Raises:
        ValueError: If a topic of `CHAPTERS` is missing from `topics`.
    """
    if topics is None:
        from pydoc_data.topics import topics
    missing = sorted(name for names in CHAPTERS.values() for name in names if name not in topics)
    if missing:
        raise ValueError(f"Expected the help topics of CHAPTERS, missing {missing}.")
    labels_of: dict[str, set[int]] = {}
    for label, names in enumerate(CHAPTERS.values()):
        for name in names:
            for passage in passages_of(topics[name]):
                labels_of.setdefault(passage, set()).add(label)
    # Dicts keep insertion order, so the order is that of CHAPTERS and of the topics' text.
    kept = [(passage, labels.pop()) for passage, labels in labels_of.items() if len(labels) == 1]
    return [passage for passage, _ in kept], np.array([label for _, label in kept], np.int64)


def write_csv(path: str, texts: list[str], labels: np.ndarray) -> None:
    """Writes passages and labels to a CSV file with a header line, one passage per line."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow([TEXT_KEY, LABEL_KEY])
        for text, label in zip(texts, labels, strict=True):
            if "\n" in text or "\r" in text:
                raise ValueError(f"Expected one-line passages, received {text[:60]!r}...")
            writer.writerow([text, int(label)])


def read_csv(path: str) -> tuple[list[str], np.ndarray]:
    """Reads a CSV written by `write_csv` back into (texts, labels)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row[TEXT_KEY] for row in rows], np.array([int(row[LABEL_KEY]) for row in rows])


def write_splits(
    output_dir: str,
    *,
    seed: int = 0,
    fractions: SplitFractions | None = None,
    passages: tuple[list[str], np.ndarray] | None = None,
) -> dict[str, int]:
    """Writes `<output_dir>/<split>/text.csv` for each split, atomically.

    The folder is built under a temporary name beside `output_dir` and renamed into place, so a
    reader never sees a half-written split.

    Args:
        output_dir: Folder that receives one sub-folder per split.
        seed: Seed of the stratified split.
        fractions: Split fractions; 70/15/15 by default.
        passages: (texts, labels) to write instead of the documentation passages.

    Returns:
        The number of passages written per split.
    """
    texts, labels = passages if passages is not None else load_passages()
    if len(texts) != len(labels):
        raise ValueError(
            f"Expected one label per passage, received {len(texts)} passages and "
            f"{len(labels)} labels."
        )
    indices = digits.split_indices(np.asarray(labels), fractions or SplitFractions(), seed)
    output_dir = os.path.abspath(output_dir)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".text-", dir=parent)
    try:
        for name in SPLIT_NAMES:
            os.makedirs(os.path.join(staging, name))
            rows = indices[name]
            write_csv(
                os.path.join(staging, name, FILE_NAME),
                [texts[row] for row in rows],
                np.asarray(labels)[rows],
            )
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the data is not.
        digits._replace_dir(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {name: len(indices[name]) for name in SPLIT_NAMES}


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """Test accuracy of always predicting the most frequent training label."""
    majority = np.bincount(train_labels, minlength=NUM_CLASSES).argmax()
    return float(np.mean(np.asarray(test_labels) == majority))
