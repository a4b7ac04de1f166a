"""TEST.TTA end to end: --eval and --predict from a trained checkpoint say which views they average,
and write what they say."""
import csv
import json
import os

import pytest

import main
from tests.end_to_end.test_main import run_dir, train


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """best.pth of a one-epoch quickstart run (LeNet on digits)."""
    output = tmp_path_factory.mktemp("tta")
    assert train(output, epochs=1) == 0
    return run_dir(output) / "best.pth"


def run_from(checkpoint, mode_flag: str, tta: str):
    """main.main on `checkpoint` with --eval or --predict and TEST.TTA; returns its new eval-<time> folder."""
    before = set(os.listdir(checkpoint.parent))
    assert main.main([mode_flag, "--resume", str(checkpoint), "--device", "cpu",
                      "--opts", "TEST.TTA", tta, "DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled"]) == 0
    (eval_dir,) = set(os.listdir(checkpoint.parent)) - before
    return checkpoint.parent / eval_dir


def test_eval_with_tta_says_so_and_writes_the_report(checkpoint, capsys):
    eval_dir = run_from(checkpoint, "--eval", "hflip")
    assert "digits val (359 images) with TTA hflip (2 views): loss" in capsys.readouterr().out
    assert sorted(os.listdir(eval_dir)) == ["calibration.png", "confusion.png", "per_class.csv", "predictions.png",
                                            "probs.json", "val_predictions.csv", "val_probs.csv"]
    assert json.loads((eval_dir / "probs.json").read_text())["tta"] == "hflip"  # what made val_probs.csv


def test_predict_with_five_crop_writes_one_row_per_test_image(checkpoint, capsys):
    eval_dir = run_from(checkpoint, "--predict", "five_crop")
    out = capsys.readouterr().out
    assert "359 test predictions of" in out and "written with TTA five_crop (5 views)" in out
    with open(eval_dir / "submission.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Id", "Category"] and [int(row[0]) for row in rows[1:]] == list(range(359))
