"""scripts/ensemble.py end to end: a trained quickstart run and a copy of it, blended from the
val_probs.csv and test_probs.csv the run wrote when it finished, give back that run's
probabilities and submission, and a table and picture of the members against the ensemble;
members without matching files (another --tta, no files) are predicted with their own config,
once; the submission can be checked against a sample submission."""
from __future__ import annotations

import csv
import json
import importlib.util
import os
import shutil

import numpy as np
import pytest

import main
from evaluation.probabilities import read_probs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")
FAST = ["DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "PRINT_FREQ", "5"]


def script_main(name: str, argv: list[str]) -> int:
    """scripts/<name>.py's main(argv)."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", os.path.join(REPO, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def ensemble_main(argv: list[str]) -> int:
    return script_main("ensemble", argv)


@pytest.fixture(scope="module")
def two_copies(tmp_path_factory):
    """runs/first, a one-epoch quickstart run on 128 train images, and runs/second, a copy of it."""
    output = tmp_path_factory.mktemp("ensemble")
    assert main.main(["--cfg", QUICKSTART, "--output", str(output / "out"), "--tag", "first", "--device", "cpu",
                      "--opts", *FAST, "TRAIN.EPOCHS", "1", "DATA.TRAIN_SUBSET", "128"]) == 0
    runs = output / "runs"
    shutil.copytree(output / "out" / "lenet_digits" / "first", runs / "first")
    shutil.copytree(runs / "first", runs / "second")
    return runs


def test_two_copies_of_a_trained_run_ensemble_into_that_run(two_copies, tmp_path, capsys):
    out = tmp_path / "ensemble"
    assert ensemble_main([str(two_copies), "--out", str(out)]) == 0
    run = two_copies / "first"
    for name in ("val_probs.csv", "test_probs.csv", "submission.csv"):
        assert (out / name).read_bytes() == (run / name).read_bytes(), name
    with open(out / "ensemble.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(row["name"], float(row["weight"])) for row in rows] == [("first", 0.5), ("second", 0.5),
                                                                     ("ensemble", 1.0)]
    assert len({row["val_acc1"] for row in rows}) == len({row["val_log_loss"] for row in rows}) == 1
    assert (out / "ensemble.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "| ensemble" in printed and str(out / "submission.csv") in printed


def test_auto_weights_are_printed_with_a_warning_that_the_val_score_is_optimistic(two_copies, tmp_path, capsys,
                                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ensemble_main([str(two_copies / "first"), str(two_copies / "second"), "--weights", "auto",
                          "--format", "probs"]) == 0
    captured = capsys.readouterr()
    [fitted] = [line for line in captured.out.splitlines() if line.startswith("fitted weights")]
    assert "first" in fitted and "second" in fitted
    assert "optimistic" in captured.err
    [out] = [name for name in os.listdir(tmp_path) if name.startswith("ensemble-")]  # the default --out
    with open(tmp_path / out / "submission.csv", newline="") as f:
        header = next(csv.reader(f))
    with open(two_copies / "first" / "classes.json") as f:
        assert header[1:] == json.load(f)


def eval_folders(run) -> list[str]:
    return sorted(name for name in os.listdir(run) if name.startswith("eval-"))


def test_members_without_matching_files_are_predicted_with_their_own_config_once(two_copies, tmp_path):
    runs = tmp_path / "runs"
    with_files = shutil.copytree(two_copies / "first", runs / "with_files")
    without = shutil.copytree(two_copies / "first", runs / "without")
    for name in ("val_probs.csv", "test_probs.csv", "probs.json"):
        os.remove(without / name)
    # No TTA asked for: the checkpoint's own run files serve it, the other run is predicted as it was
    # trained, and the probabilities come out as those the run wrote at its end.
    assert ensemble_main([str(with_files / "best.pth"), str(without), "--out", str(tmp_path / "plain")]) == 0
    assert eval_folders(with_files) == [] and len(eval_folders(without)) == 1
    saved, predicted = (read_probs(str(folder / "val_probs.csv")) for folder in
                        (with_files, without / eval_folders(without)[0]))
    assert predicted.ids == saved.ids
    np.testing.assert_allclose(predicted.probs, saved.probs, atol=1e-6)
    # With --tta hflip neither run's files match: both are predicted with it, once.
    argv = [str(with_files / "best.pth"), str(without), "--tta", "hflip"]
    assert ensemble_main([*argv, "--out", str(tmp_path / "hflip")]) == 0
    assert len(eval_folders(with_files)) == 1 and len(eval_folders(without)) == 2
    flipped = with_files / eval_folders(with_files)[0]
    with open(flipped / "probs.json") as f:
        assert json.load(f) == {"checkpoint": "../best.pth", "tta": "hflip", "temperature": 1.0}
    flipped_val = read_probs(str(flipped / "val_probs.csv"))
    assert not np.allclose(flipped_val.probs, saved.probs, atol=1e-4)
    assert (tmp_path / "hflip" / "val_probs.csv").read_bytes() == (flipped / "val_probs.csv").read_bytes()
    assert ensemble_main([*argv, "--out", str(tmp_path / "again")]) == 0  # read back, not predicted again
    assert len(eval_folders(with_files)) == 1 and len(eval_folders(without)) == 2
    assert (tmp_path / "again" / "test_probs.csv").read_bytes() == (tmp_path / "hflip" / "test_probs.csv").read_bytes()


def test_the_submission_is_checked_against_a_sample_submission(two_copies, tmp_path, capsys):
    sample = tmp_path / "sample_submission.csv"
    assert script_main("sample_submission", ["--cfg", QUICKSTART, "--out", str(sample)]) == 0
    assert ensemble_main([str(two_copies / "first"), "--sample-submission", str(sample),
                          "--out", str(tmp_path / "good")]) == 0
    run_submission = two_copies / "first" / "submission.csv"
    assert (tmp_path / "good" / "submission.csv").read_bytes() == run_submission.read_bytes()
    assert ensemble_main([str(two_copies / "first"), "--sample-submission", str(sample), "--format", "probs",
                          "--out", str(tmp_path / "bad")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: submission.csv does not match the sample submission") and "header" in error
    assert "\n" not in error
    assert not (tmp_path / "bad" / "submission.csv").exists()
    assert (tmp_path / "bad" / "submission.csv.rejected").is_file()
