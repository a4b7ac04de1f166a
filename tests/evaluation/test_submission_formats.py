"""submission.csv in the formats competitions ask for (label, probs, topk), checked against
hand-written files, and the check of a submission against a sample_submission.csv."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from evaluation.submission import (SampleSubmission, first_difference, read_sample_submission, top_k_classes,
                                   write_checked_submission, write_probs_submission, write_submission,
                                   write_topk_submission)
from utils.errors import UserError

CLASSES = ["cat", "dog", "zebra"]
PROBS = np.array([[0.1, 0.2, 0.7],
                  [0.5, 0.25, 0.25],  # a tie between dog and zebra: the lower index first
                  [0.05, 0.9, 0.05]], dtype=np.float32)
IDS = ["t7", "t2", "t9"]


def read(path) -> str:
    return open(path, encoding="utf-8").read()


def test_label_format_is_id_then_predicted_class(tmp_path):
    path = tmp_path / "submission.csv"
    write_submission(str(path), PROBS.argmax(axis=1), "Id,Category", ids=IDS, class_names=CLASSES)
    assert read(path) == "Id,Category\nt7,zebra\nt2,cat\nt9,dog\n"


def test_probs_format_names_the_id_column_as_the_header_and_each_class_column_by_its_name(tmp_path):
    path = tmp_path / "submission.csv"
    write_probs_submission(str(path), PROBS, CLASSES, id_column="image_id", ids=IDS)
    assert read(path) == ("image_id,cat,dog,zebra\n"
                          "t7,0.100000001,0.200000003,0.699999988\n"
                          "t2,0.5,0.25,0.25\n"
                          "t9,0.0500000007,0.899999976,0.0500000007\n")


def test_probs_format_rows_sum_to_one_and_ids_default_to_the_row_index(tmp_path):
    path = tmp_path / "submission.csv"
    logits = np.random.default_rng(0).normal(size=(50, 7)) * 4
    probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    write_probs_submission(str(path), probs, [f"c{i}" for i in range(7)], id_column="Id")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Id", *[f"c{i}" for i in range(7)]]
    assert [row[0] for row in rows[1:]] == [str(i) for i in range(50)]
    sums = np.array([[float(cell) for cell in row[1:]] for row in rows[1:]]).sum(axis=1)
    assert np.all(np.abs(sums - 1) <= 1e-5)


def test_topk_format_lists_the_k_most_probable_classes_best_first_separated_by_spaces(tmp_path):
    by_name, by_index = tmp_path / "names.csv", tmp_path / "indices.csv"
    write_topk_submission(str(by_name), PROBS, 2, "Id,Predicted", ids=IDS, class_names=CLASSES)
    write_topk_submission(str(by_index), PROBS, 3, "Id,Predicted")
    assert read(by_name) == "Id,Predicted\nt7,zebra dog\nt2,cat dog\nt9,dog cat\n"
    assert read(by_index) == "Id,Predicted\n0,2 1 0\n1,0 1 2\n2,1 0 2\n"


def test_top_k_classes_breaks_ties_by_class_index():
    assert top_k_classes(np.array([[0.25, 0.25, 0.25, 0.25]]), 4).tolist() == [[0, 1, 2, 3]]


def sample(ids, header=("Id", "Category")) -> SampleSubmission:
    return SampleSubmission("sample_submission.csv", list(header), list(ids))


@pytest.mark.parametrize("written, expected, names", [
    (sample(["a", "b"]), sample(["a", "b", "c"]), ("missing", "'c'", "row 3")),
    (sample(["b", "a", "c"]), sample(["a", "b", "c"]), ("row 1", "'b'", "'a'")),
    (sample(["a", "b"], ("Id", "Category")), sample(["a", "b"], ("id", "label")), ("Id,Category", "id,label")),
    (sample(["a", "x", "b"]), sample(["a", "b"]), ("row 2", "'x'")),
    (sample(["a", "b", "b"]), sample(["a", "b"]), ("3 rows", "2")),
])
def test_the_first_difference_from_the_sample_is_named(written, expected, names):
    difference = first_difference(written, expected)
    for name in names:
        assert name in difference


def test_a_submission_that_matches_the_sample_is_none_different():
    assert first_difference(sample(["a", "b"]), sample(["a", "b"])) is None


def write_sample(tmp_path, text: str):
    path = tmp_path / "sample_submission.csv"
    path.write_text(text)
    return read_sample_submission(str(path))


def test_a_checked_submission_that_matches_replaces_the_old_one(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text("old\n")
    expected = write_sample(tmp_path, "Id,Category\nt7,cat\nt2,cat\nt9,cat\n")
    write_checked_submission(str(path), lambda target: write_submission(target, [2, 0, 1], ids=IDS), expected)
    assert read(path) == "Id,Category\nt7,2\nt2,0\nt9,1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample_submission.csv", "submission.csv"]


def test_a_checked_submission_that_differs_is_kept_aside_and_the_old_one_stays(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text("an earlier good submission\n")
    expected = write_sample(tmp_path, "Id,Category\nt2,cat\nt7,cat\nt9,cat\n")
    with pytest.raises(UserError) as error:
        write_checked_submission(str(path), lambda target: write_submission(target, [2, 0, 1], ids=IDS), expected)
    message = str(error.value)
    assert "sample_submission.csv" in message and "'t7'" in message and "'t2'" in message and "row 1" in message
    assert "submission.csv.rejected" in message
    assert read(path) == "an earlier good submission\n"
    assert read(tmp_path / "submission.csv.rejected") == "Id,Category\nt7,2\nt2,0\nt9,1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample_submission.csv", "submission.csv",
                                                         "submission.csv.rejected"]


def test_a_sample_submission_that_is_missing_or_empty_is_refused_naming_it(tmp_path):
    with pytest.raises(UserError, match="nosuch.csv does not exist"):
        read_sample_submission(str(tmp_path / "nosuch.csv"))
    with pytest.raises(UserError, match="sample_submission.csv is empty"):
        write_sample(tmp_path, "")
