"""The text data: real labelled passages, stratified disjoint splits, one-line CSV rows."""

import csv

import numpy as np
import pytest

from models.data import text


@pytest.fixture(scope="module")
def passages():
    return text.load_passages()


def _passage_containing(texts, labels, fragment):
    matches = [index for index, passage in enumerate(texts) if fragment in passage]
    assert len(matches) == 1, f"{fragment!r} is in {len(matches)} passages"
    return text.LABEL_NAMES[labels[matches[0]]]


def test_passages_carry_the_chapter_of_their_topic(passages):
    texts, labels = passages
    assert _passage_containing(texts, labels, "Assert statements are a convenient way") == (
        "simple_statements"
    )
    assert _passage_containing(texts, labels, "defines an interactive source code debugger") == (
        "library_modules"
    )
    assert _passage_containing(texts, labels, "with its first character capitalized") == (
        "builtin_types"
    )
    assert _passage_containing(texts, labels, 'The operators "in" and "not in" test') == (
        "expressions"
    )


def test_every_class_has_enough_passages_and_none_dominates(passages):
    _, labels = passages
    counts = np.bincount(labels, minlength=text.NUM_CLASSES)
    assert len(labels) > 1500
    assert counts.min() >= 60, dict(zip(text.LABEL_NAMES, counts, strict=True))
    assert counts.max() / len(labels) < 0.35


def test_passages_are_unique_one_line_and_long_enough(passages):
    texts, _ = passages
    assert len(set(texts)) == len(texts)
    assert all("\n" not in passage and passage == passage.strip() for passage in texts)
    assert min(len(passage) for passage in texts) >= text.MIN_CHARS


def test_a_passage_of_two_chapters_is_dropped_and_one_of_one_chapter_kept():
    shared = "A paragraph that two topics of different chapters both contain, word for word."
    own = "A paragraph that only the assert topic contains, long enough to be kept."
    topics = {name: "" for names in text.CHAPTERS.values() for name in names}
    topics["assert"] = f"{shared}\n\n{own}"
    topics["if"] = f"{shared}\n\n{own}".replace("assert", "if")
    topics["compound"] = topics["if"]  # Same chapter twice: kept, once.
    texts, labels = text.load_passages(topics)
    assert shared not in texts
    assert texts == [own, own.replace("assert", "if")]
    assert [text.LABEL_NAMES[label] for label in labels] == [
        "simple_statements",
        "compound_statements",
    ]


def test_missing_topic_is_named():
    with pytest.raises(ValueError, match="missing \\['assert'"):
        text.load_passages({"if": "x"})


def test_long_paragraphs_are_cut_between_sentences_and_headings_dropped():
    sentence = "This sentence is about forty characters. "
    topic = (
        "A heading\n*********\n\n"
        + sentence * 20
        + "\n\nShort.\n\n   code_line ::= first_part second_part third_part"
    )
    pieces = text.passages_of(topic)
    assert "*" not in " ".join(pieces)
    body = [piece for piece in pieces if piece.startswith("This")]
    assert " ".join(body) == (sentence * 20).strip()
    # Runs of whole sentences up to the target length; only the tail may be shorter.
    assert all(text.TARGET_CHARS <= len(piece) <= text.MAX_CHARS for piece in body[:-1])
    assert text.MIN_CHARS <= len(body[-1]) < text.TARGET_CHARS
    assert all(piece.endswith(".") for piece in body)
    assert "Short." not in pieces
    assert pieces[-1] == "code_line ::= first_part second_part third_part"


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text") / "data"
    counts = text.write_splits(str(folder), seed=0)
    return folder, counts


def test_splits_are_disjoint_cover_everything_and_stratified(splits, passages):
    folder, counts = splits
    read = {name: text.read_csv(str(folder / name / text.FILE_NAME)) for name in text.SPLIT_NAMES}
    assert {name: len(rows[0]) for name, rows in read.items()} == counts
    all_texts = [passage for rows in read.values() for passage in rows[0]]
    assert sorted(all_texts) == sorted(passages[0])
    totals = np.bincount(passages[1], minlength=text.NUM_CLASSES)
    for name, share in (("train", 0.7), ("eval", 0.15), ("test", 0.15)):
        per_class = np.bincount(read[name][1], minlength=text.NUM_CLASSES)
        np.testing.assert_allclose(per_class, totals * share, atol=1.0)


def test_csv_has_a_header_and_one_passage_per_line(splits):
    folder, counts = splits
    with open(folder / "test" / text.FILE_NAME) as handle:
        lines = handle.read().splitlines()
    assert lines[0] == "text,label"
    assert len(lines) == counts["test"] + 1
    for line in lines[1:]:
        (passage, label), *rest = csv.reader([line])
        assert not rest and passage and 0 <= int(label) < text.NUM_CLASSES


def test_same_seed_same_splits_other_seed_other_splits(splits, tmp_path):
    folder, _ = splits
    text.write_splits(str(tmp_path / "same"), seed=0)
    text.write_splits(str(tmp_path / "other"), seed=1)
    first = (folder / "test" / text.FILE_NAME).read_text()
    assert (tmp_path / "same" / "test" / text.FILE_NAME).read_text() == first
    assert (tmp_path / "other" / "test" / text.FILE_NAME).read_text() != first


def test_majority_baseline_is_the_test_share_of_the_most_frequent_train_label():
    train = np.array([0, 1, 1, 2, 1])
    assert text.majority_baseline(train, np.array([1, 0, 1, 2])) == 0.5
