"""scripts/sample_submission.py: the sample_submission.csv of the digits test split, in each
SUBMISSION.FORMAT, as a competition would publish it. (That a run's and an ensemble's
submission.csv match it: tests/end_to_end/test_ensemble_script.py.)"""
from __future__ import annotations

import csv
import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")
DIGITS_TEST_IMAGES = 359  # 20% of scikit-learn's 1,797 digits


def sample_main(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("script_sample", os.path.join(REPO, "scripts", "sample_submission.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def rows_of(path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("submission_format, header, first_row", [
    ("label", ["Id", "Category"], ["0", "0"]),
    ("topk", ["Id", "Category"], ["0", "0 1 2"]),
    ("probs", ["Id", *map(str, range(10))], ["0", *["0.100000001"] * 10]),
])
def test_every_test_image_in_order_with_placeholder_values(tmp_path, submission_format, header, first_row):
    out = tmp_path / "sample_submission.csv"
    assert sample_main(["--cfg", QUICKSTART, "--out", str(out), "--opts", "SUBMISSION.FORMAT", submission_format,
                        "SUBMISSION.TOPK", "3"]) == 0
    rows = rows_of(out)
    assert rows[0] == header
    assert [row[0] for row in rows[1:]] == [str(index) for index in range(DIGITS_TEST_IMAGES)]
    assert all(row[1:] == first_row[1:] for row in rows[1:])


def test_the_header_follows_submission_header(tmp_path):
    out = tmp_path / "sample.csv"
    assert sample_main(["--cfg", QUICKSTART, "--out", str(out), "--opts", "SUBMISSION.HEADER", "ImageId,Label"]) == 0
    assert rows_of(out)[0] == ["ImageId", "Label"]


def test_an_existing_file_is_kept(tmp_path, capsys):
    out = tmp_path / "sample_submission.csv"
    out.write_text("mine\n")
    assert sample_main(["--cfg", QUICKSTART, "--out", str(out)]) == 2
    assert out.read_text() == "mine\n"
    assert capsys.readouterr().err.startswith(f"error: {out} exists")
