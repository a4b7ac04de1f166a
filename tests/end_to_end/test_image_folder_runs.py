"""DATA.DATASET imagefolder end to end: training on class folders and predicting the test folder."""
from __future__ import annotations

import json

import pytest

from tests.conftest import IMAGE_FOLDER_CLASSES as CLASSES
from tests.conftest import write_image_folder
from tests.data.test_image_folder import train_on_folder


@pytest.mark.parametrize("mode", [["DATA.NUM_WORKERS", "2"], ["DATA.CACHE", "ram"]], ids=["workers", "cache"])
def test_main_trains_on_class_folders_and_predicts_the_test_folder(tmp_path, mode):
    root = write_image_folder(tmp_path / "data", val_per_class=4)
    assert train_on_folder(tmp_path, root, *mode) == 0
    run = tmp_path / "runs" / "lenet_imagefolder" / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_val_acc1"] > 60.0  # chance is 33%
    rows = (run / "submission.csv").read_text().splitlines()
    assert rows[0] == "Id,Category" and len(rows) == 1 + 7
    assert [row.split(",")[0] for row in rows[1:]] == [str(i) for i in range(7)]
    assert all(row.split(",")[1] in {"0", "1", "2"} for row in rows[1:])


def test_the_submission_can_name_rows_by_file_and_classes_by_folder(tmp_path):
    root = write_image_folder(tmp_path / "data", val_per_class=4)
    assert train_on_folder(tmp_path, root, "DATA.NUM_WORKERS", "0", "SUBMISSION.ID", "file",
                           "SUBMISSION.LABELS", "name", "SUBMISSION.HEADER", "image,species") == 0
    rows = (tmp_path / "runs" / "lenet_imagefolder" / "run" / "submission.csv").read_text().splitlines()
    assert rows[0] == "image,species"
    assert [row.split(",")[0] for row in rows[1:]] == [f"img_{i:02d}" for i in range(1, 8)]
    assert {row.split(",")[1] for row in rows[1:]} <= set(CLASSES)
