"""scripts/ensemble.py end to end: a trained quickstart run and a copy of it, blended from the
val_probs.csv and test_probs.csv the run wrote when it finished, give back that run's
probabilities and submission, and a table and picture of the members against the ensemble."""
from __future__ import annotations

import csv
import json
import importlib.util
import os
import shutil

import pytest

import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")
FAST = ["DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "PRINT_FREQ", "5"]


def ensemble_main(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("script_ensemble", os.path.join(REPO, "scripts", "ensemble.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


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
