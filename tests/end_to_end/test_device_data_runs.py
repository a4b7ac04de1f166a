"""DATA.AUG_DEVICE and DATA.CACHE end to end: training reaches the same accuracy in every mode."""
from __future__ import annotations

import json
import os

import pytest

import main
from tests.data.test_device_data import QUICKSTART, REPO


def train_quickstart(tmp_path, tag: str, *opts: str) -> dict:
    assert main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--tag", tag, "--device", "cpu",
                      "--opts", "WANDB.MODE", "disabled", *opts]) == 0
    return json.loads((tmp_path / "lenet_digits" / tag / "summary.json").read_text())


def test_the_quickstart_reaches_the_same_accuracy_band_with_each_aug_device_and_cache(tmp_path):
    # DATA.CACHE device trains below, on a CIFAR config; it gives the batches of ram (tested above).
    modes = {"aug_cpu": ["DATA.AUG_DEVICE", "cpu"], "aug_device": ["DATA.AUG_DEVICE", "device"],
             "cache_ram": ["DATA.CACHE", "ram"]}
    best = {mode: train_quickstart(tmp_path, mode, *opts)["best_val_acc1"] for mode, opts in modes.items()}
    assert all(acc > 97.0 for acc in best.values()), best
    # Batches augmented on the device are the same with or without a cache: so is the run.
    assert best["aug_device"] == best["cache_ram"]
    log = (tmp_path / "lenet_digits" / "cache_ram" / "log.txt").read_text()
    assert "DATA.CACHE ram: 1438 train + 359 val + 359 test images (0.01 GiB) cached on cpu in" in log
    assert "train images cached in host memory, augmented as whole batches on cpu" in log


@pytest.mark.parametrize("mode", [["DATA.AUG_DEVICE", "cpu"], ["DATA.AUG_DEVICE", "device"], ["DATA.CACHE", "device"]])
def test_a_cifar_config_with_colour_jitter_trains_on_digits_in_every_mode(tmp_path, mode):
    # configs/lenet_cifar10.yaml with the base's colour jitter back on, and no flips for digits.
    opts = ["DATA.DATASET", "digits", "DATA.NUM_WORKERS", "0", "TRAIN.EPOCHS", "6", "TRAIN.WARMUP_EPOCHS", "1",
            "AUG.COLOR_JITTER", "0.4", "AUG.HFLIP_PROB", "0", "WANDB.MODE", "disabled", *mode]
    assert main.main(["--cfg", os.path.join(REPO, "configs/lenet_cifar10.yaml"), "--output", str(tmp_path),
                      "--tag", "run", "--device", "cpu", "--opts", *opts]) == 0
    summary = json.loads((tmp_path / "lenet_digits" / "run" / "summary.json").read_text())
    assert summary["best_val_acc1"] > 90.0
