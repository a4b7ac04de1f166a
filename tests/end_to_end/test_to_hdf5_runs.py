"""scripts/to_hdf5.py end to end: the converted file trains through the MediumImageNet path."""
from __future__ import annotations

import json
import os

import main
from tests.conftest import IMAGE_FOLDER_CLASSES, write_image_folder
from tests.data.test_to_hdf5 import REPO


def test_the_converted_file_trains_through_the_medium_imagenet_path(tmp_path, to_hdf5):
    root = write_image_folder(tmp_path / "data", val_per_class=4)
    out = tmp_path / "faces-16.hdf5"
    assert to_hdf5.main(["--src", str(root), "--out", str(out), "--size", "16"]) == 0
    assert main.main(["--cfg", os.path.join(REPO, "configs/quickstart.yaml"), "--output", str(tmp_path / "runs"),
                      "--tag", "run", "--device", "cpu", "--opts", "WANDB.MODE", "disabled",
                      "DATA.DATASET", "medium_imagenet", "DATA.DATA_PATH", str(out), "DATA.IMG_SIZE", "16",
                      "DATA.BATCH_SIZE", "8", "TRAIN.EPOCHS", "4", "SUBMISSION.ID", "file",
                      "SUBMISSION.LABELS", "name"]) == 0
    run = tmp_path / "runs" / "lenet_medium_imagenet" / "run"
    assert json.loads((run / "summary.json").read_text())["best_val_acc1"] > 60.0  # chance is 33%
    rows = (run / "submission.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == [f"img_{i:02d}" for i in range(1, 8)]
    assert {row.split(",")[1] for row in rows} <= set(IMAGE_FOLDER_CLASSES)
