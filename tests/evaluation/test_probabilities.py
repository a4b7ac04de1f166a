"""Probability files (val_probs.csv, test_probs.csv): the layout written, a lossless round trip,
and the one-line refusals of a file that is not that layout."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from evaluation.probabilities import ProbTable, read_probs, write_probs
from utils.errors import UserError

CLASSES = ["cat", "dog", "zebra"]


def write_text(tmp_path, text: str):
    path = tmp_path / "probs.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_val_file_holds_id_true_class_name_then_each_class_with_nine_significant_digits(tmp_path):
    path = str(tmp_path / "val_probs.csv")
    probs = np.array([[0.1, 0.2, 0.7], [1.0, 0.0, 0.0]], dtype=np.float32)
    write_probs(path, ["a", "b,c"], probs, CLASSES, targets=np.array([2, 0]))
    assert open(path, encoding="utf-8").read() == ("id,true,cat,dog,zebra\n"
                                                   "a,zebra,0.100000001,0.200000003,0.699999988\n"
                                                   "\"b,c\",cat,1,0,0\n")


def test_a_test_file_has_no_true_column(tmp_path):
    path = str(tmp_path / "test_probs.csv")
    write_probs(path, ["t1"], np.array([[0.25, 0.25, 0.5]], dtype=np.float32), CLASSES)
    assert open(path).read() == "id,cat,dog,zebra\nt1,0.25,0.25,0.5\n"
    table = read_probs(path)
    assert table.targets is None and table.class_names == CLASSES and table.ids == ["t1"]


# Ids and class names as a user's data may spell them: commas, quotes, line breaks, any script.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@st.composite
def probability_tables(draw) -> ProbTable:
    num_classes = draw(st.integers(1, 6))
    names = draw(st.lists(TEXT.filter(lambda name: name != "true"), min_size=num_classes, max_size=num_classes,
                          unique=True))
    rows = draw(st.integers(0, 8))
    ids = draw(st.lists(TEXT, min_size=rows, max_size=rows, unique=True))
    raw = draw(arrays(np.float32, (rows, num_classes), elements=st.floats(0, 1, width=32)))
    raw[:, 0] += np.float32(0.5)  # every row has something to normalise
    probs = (raw / raw.sum(axis=1, keepdims=True)).astype(np.float32)
    targets = draw(st.none() | st.just(np.arange(rows) % num_classes))
    return ProbTable(ids, probs, names, targets)


@settings(max_examples=60, deadline=None)
@given(table=probability_tables())
def test_writing_then_reading_gives_back_the_same_ids_classes_targets_and_float32_values(tmp_path_factory, table):
    path = str(tmp_path_factory.mktemp("probs") / "probs.csv")
    write_probs(path, table.ids, table.probs, table.class_names, table.targets)
    read = read_probs(path)
    assert read.ids == table.ids and read.class_names == table.class_names
    assert read.probs.dtype == np.float32
    assert read.probs.tobytes() == table.probs.tobytes()  # bit for bit
    if table.targets is None:
        assert read.targets is None
    else:
        assert read.targets.tolist() == table.targets.tolist()


def test_every_float32_probability_survives_nine_digits():
    values = np.random.default_rng(0).random(100_000).astype(np.float32)
    values = np.concatenate([values, np.array([1e-45, 1.17549435e-38, 1 - 2**-24, 2**-24], dtype=np.float32)])
    assert np.array_equal(np.array([float(f"{v:.9g}") for v in values.tolist()], dtype=np.float32), values)


def test_the_expected_classes_are_checked_and_a_first_class_named_true_is_not_a_true_column(tmp_path):
    path = str(tmp_path / "probs.csv")
    write_probs(path, ["a"], np.array([[0.5, 0.5]], dtype=np.float32), ["true", "false"])
    assert read_probs(path, class_names=["true", "false"]).targets is None
    with pytest.raises(UserError, match=r"probs\.csv:1: .*class column 2 is 'dog' where 'zebra'"):
        write_probs(path, ["a"], np.array([[0.5, 0.5]], dtype=np.float32), ["cat", "dog"])
        read_probs(path, class_names=["cat", "zebra"])


@pytest.mark.parametrize("text, names", [
    ("image,cat,dog\na,0.5,0.5\n", ("probs.csv:1", "'id'", "'image'")),
    ("", ("probs.csv:1", "'id'")),
    ("id,cat,dog\na,0.5,0.5\nb,0.5,0.5\na,0.2,0.8\n", ("probs.csv", "lines 2 and 4", "'a'")),
    ("id,cat,dog\na,0.5,0.5\nb,half,0.5\n", ("probs.csv:3", "'cat'", "'half'")),
    ("id,cat,dog\na,nan,0.5\n", ("probs.csv:2", "'cat'", "'nan'")),
    ("id,cat,dog\na,-0.5,1.5\n", ("probs.csv:2", "'cat'", "'-0.5'")),
    ("id,cat,dog\na,0.5,0.5\nb,0.6,0.5\n", ("probs.csv:3", "1.1")),
    ("id,cat,dog\na,0.5\n", ("probs.csv:2", "2 cells", "3")),
    ("id,true,cat,dog\na,cow,0.5,0.5\n", ("probs.csv:2", "'cow'")),
    ("id,cat,cat\na,0.5,0.5\n", ("probs.csv:1", "'cat'", "twice")),
    ("id\na\n", ("probs.csv:1", "no class columns")),
    ("id,cat,dog\n\"a,0.5,0.5\n", ("probs.csv",)),
])
def test_a_file_that_is_not_a_probability_file_is_refused_in_one_line_naming_where(tmp_path, text, names):
    with pytest.raises(UserError) as error:
        read_probs(write_text(tmp_path, text))
    message = str(error.value)
    assert "\n" not in message
    for name in names:
        assert name in message


def test_a_row_within_a_thousandth_of_one_is_accepted(tmp_path):
    table = read_probs(write_text(tmp_path, "id,cat,dog\na,0.5,0.5009\n"))
    assert table.probs.tolist() == [[0.5, np.float32(0.5009)]]


def test_a_missing_or_non_utf8_file_is_refused_naming_it(tmp_path):
    with pytest.raises(UserError, match="nosuch.csv does not exist"):
        read_probs(str(tmp_path / "nosuch.csv"))
    path = tmp_path / "latin.csv"
    path.write_bytes("id,caf\xe9\na,1\n".encode("latin-1"))
    with pytest.raises(UserError, match="latin.csv is not a UTF-8"):
        read_probs(str(path))
