"""Mixup/cutmix and label smoothing end to end."""
import json

import main
from tests.data.test_mix import QUICKSTART


def test_the_quickstart_trains_with_cutmix_and_label_smoothing_and_says_what_train_accuracy_means(tmp_path):
    assert main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--tag", "mix", "--device", "cpu", "--opts",
                      "DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "TRAIN.EPOCHS", "3", "AUG.CUTMIX", "1.0",
                      "AUG.MIXUP", "0.2", "TRAIN.LABEL_SMOOTHING", "0.1"]) == 0
    folder = tmp_path / "lenet_digits" / "mix"
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["val_acc1"] > 50
    assert "train loss" in (folder / "log.txt").read_text() and "acc@1 (dominant label)" in (
        folder / "log.txt").read_text()
