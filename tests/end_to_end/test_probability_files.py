"""End to end: every run writes val_probs.csv and test_probs.csv (with probs.json, what made
them), --eval and --predict write them too, TEST.TEMPERATURE auto scales them, and
--sample-submission checks submission.csv."""
from __future__ import annotations

import csv
import json
import os
import re

import numpy as np
import pytest

import main
from config import get_config
from data import build_loader
from evaluation.probabilities import read_probs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = ["DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "PRINT_FREQ", "5", "TRAIN.EPOCHS", "1"]
CLASSES = [str(digit) for digit in range(10)]
NUM_TEST = 359


def train(root, tag: str, *opts: str, flags=()) -> int:
    return main.main(["--cfg", os.path.join(REPO, "configs/quickstart.yaml"), "--output", str(root), "--tag", tag,
                      "--device", "cpu", *flags, "--opts", *FAST, *opts])


def write_sample(path, header: list[str], ids) -> str:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *[[image_id, *["0"] * (len(header) - 1)] for image_id in ids]])
    return str(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A one-epoch quickstart run with DATA.VAL_SPLIT, TEST.TEMPERATURE auto and a probs submission,
    checked against a matching sample submission."""
    root = tmp_path_factory.mktemp("probs")
    sample = write_sample(root / "sample_submission.csv", ["Id", *CLASSES], range(NUM_TEST))
    assert train(root, "run", "DATA.VAL_SPLIT", "0.2", "TEST.TEMPERATURE", "auto", "SUBMISSION.FORMAT", "probs",
                 flags=("--sample-submission", sample)) == 0
    return root / "lenet_digits" / "run"


def test_val_probs_holds_every_val_image_by_id_with_its_true_class(run):
    table = read_probs(str(run / "val_probs.csv"), class_names=CLASSES)
    loaders = build_loader(get_config(os.path.join(REPO, "configs/quickstart.yaml"),
                                      ["DATA.NUM_WORKERS", "0", "DATA.VAL_SPLIT", "0.2", "DEVICE", "cpu"]))
    assert table.ids == loaders.val_ids and table.ids[0].startswith("train-")
    val = loaders.val_dataset
    assert table.targets.tolist() == val.labels[val.indices].tolist()
    with open(run / "val_predictions.csv") as f:
        predicted = [int(row["predicted"]) for row in csv.DictReader(f)]
    assert table.probs.argmax(axis=1).tolist() == predicted  # a temperature changes no label


def test_temperature_auto_is_logged_and_lowers_the_nll_of_the_saved_val_probabilities(run):
    log = (run / "log.txt").read_text()
    fitted = re.search(r"TEST.TEMPERATURE auto: temperature ([0-9.]+) fitted on (\d+) val images", log)
    assert fitted and float(fitted.group(1)) > 0 and int(fitted.group(2)) == 288
    table = read_probs(str(run / "val_probs.csv"))
    nll = -np.log(table.probs[np.arange(len(table.ids)), table.targets].astype(np.float64)).mean()
    val_loss = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["val_loss"]
    assert nll <= val_loss + 1e-5


def test_test_probs_and_the_probs_submission_hold_the_same_probabilities(run):
    table = read_probs(str(run / "test_probs.csv"), class_names=CLASSES)
    assert table.ids == [f"test-{i}" for i in range(NUM_TEST)] and table.targets is None
    assert np.all(np.abs(table.probs.astype(np.float64).sum(axis=1) - 1) <= 1e-5)
    with open(run / "submission.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Id", *CLASSES]  # SUBMISSION.HEADER's id column, then the class names
    assert [row[0] for row in rows[1:]] == [str(i) for i in range(NUM_TEST)]  # SUBMISSION.ID index
    assert np.array_equal(np.array([row[1:] for row in rows[1:]], dtype=np.float64).astype(np.float32), table.probs)
    assert not (run / "submission.csv.rejected").exists()


def test_eval_and_predict_write_the_same_probability_files_as_the_run(run):
    before = set(os.listdir(run))
    assert main.main(["--eval", "--predict", "--resume", str(run / "best.pth"), "--device", "cpu",
                      "--sample-submission", str(run.parent.parent / "sample_submission.csv"),
                      "--opts", "DATA.NUM_WORKERS", "0"]) == 0
    (eval_dir,) = [run / name for name in set(os.listdir(run)) - before]
    for name in ("val_probs.csv", "test_probs.csv", "submission.csv"):
        assert (eval_dir / name).read_bytes() == (run / name).read_bytes(), name
    # probs.json names the checkpoint relative to its own folder, so both name the run's best.pth.
    records = [json.loads((folder / "probs.json").read_text()) for folder in (run, eval_dir)]
    assert [record.pop("checkpoint") for record in records] == ["best.pth", "../best.pth"]
    assert records[0] == records[1] and records[0]["tta"] == "none" and records[0]["temperature"] != 1.0


def test_a_test_subset_run_writes_no_test_probabilities(tmp_path):
    assert train(tmp_path, "subset", "DATA.TRAIN_SUBSET", "128", "DATA.TEST_SUBSET", "50") == 0
    files = set(os.listdir(tmp_path / "lenet_digits" / "subset"))
    assert "val_probs.csv" in files and not {"test_probs.csv", "submission.csv"} & files


def test_a_training_run_whose_submission_differs_from_the_sample_fails_and_keeps_it_aside(tmp_path, capsys):
    sample = write_sample(tmp_path / "sample_submission.csv", ["ImageId", "Label"], range(NUM_TEST))
    assert train(tmp_path, "topk", "DATA.TRAIN_SUBSET", "128", "SUBMISSION.FORMAT", "topk", "SUBMISSION.TOPK", "3",
                 flags=("--sample-submission", sample)) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "sample_submission.csv" in lines[0] and "Id,Category" in lines[0] and "ImageId,Label" in lines[0]
    folder = tmp_path / "lenet_digits" / "topk"
    assert not (folder / "submission.csv").exists()
    rows = (folder / "submission.csv.rejected").read_text().splitlines()
    assert rows[0] == "Id,Category" and len(rows) == NUM_TEST + 1
    assert all(len(row.split(",")[1].split(" ")) == 3 for row in rows[1:])  # three classes per row
    assert (folder / "test_probs.csv").exists() and (folder / "val_probs.csv").exists()


@pytest.mark.parametrize("flags", [["--eval"], ["--throughput"], ["--list-models"]])
def test_sample_submission_belongs_to_predict_or_training(flags, capsys):
    with pytest.raises(SystemExit) as stop:
        main.main([*flags, "--sample-submission", "sample.csv"])
    assert stop.value.code == 2 and "--sample-submission" in capsys.readouterr().err
