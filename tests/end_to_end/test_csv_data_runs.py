"""DATA.DATASET csv end to end: a Kaggle CSV trains, predicts and names its rows."""
from __future__ import annotations

import csv
import json

import torch

import main
from tests.data.test_csv_data import TEST_ORDER, train, write_kaggle_layout


def test_a_kaggle_csv_trains_and_its_submission_names_rows_by_id_and_classes_by_name(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    assert train(tmp_path, "DATA.DATASET", "csv", "DATA.DATA_PATH", str(root), "DATA.IMAGE_EXT", ".jpg",
                 "DATA.VAL_SPLIT", "0.25", "DATA.TEST_CSV", "sample_submission.csv", "SUBMISSION.ID", "file",
                 "SUBMISSION.LABELS", "name", "SUBMISSION.HEADER", "id,label") == 0
    run = tmp_path / "runs" / "lenet_csv" / "run"
    assert json.loads((run / "summary.json").read_text())["best_val_acc1"] > 60.0  # chance is 33%
    with open(run / "submission.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "label"] and [row[0] for row in rows[1:]] == TEST_ORDER
    assert {row[1] for row in rows[1:]} <= {"cat", "dog", "zebra"}
    assert json.loads((run / "classes.json").read_text()) == ["cat", "dog", "zebra"]
    assert torch.load(run / "best.pth", weights_only=True)["class_names"] == ["cat", "dog", "zebra"]


def test_predicting_with_a_checkpoint_of_other_classes_is_refused(tmp_path, capsys):
    root = write_kaggle_layout(tmp_path / "data")
    opts = ["DATA.DATASET", "csv", "DATA.DATA_PATH", str(root), "DATA.IMAGE_EXT", ".jpg", "DATA.VAL_SPLIT", "0.25"]
    assert train(tmp_path, *opts, "TRAIN.EPOCHS", "1") == 0
    (root / "train.csv").write_text((root / "train.csv").read_text().replace("zebra", "horse"))
    capsys.readouterr()
    checkpoint = tmp_path / "runs" / "lenet_csv" / "run" / "best.pth"
    assert main.main(["--predict", "--resume", str(checkpoint), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was trained on the classes cat, dog, zebra but" in err
    assert "holds cat, dog, horse; point DATA.DATA_PATH at the data the checkpoint was trained on" in err
