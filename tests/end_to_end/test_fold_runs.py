"""K-fold cross-validation end to end: scripts/sweep.py --folds 3 trains the quickstart's three
folds, and scripts/folds.py puts their out-of-fold rows together (every train image exactly once)
and averages their test probabilities into one submission."""
from __future__ import annotations

import csv
import importlib.util
import os
import re

import numpy as np
import pytest

from config import get_config
from data import build_loader
from evaluation.probabilities import read_probs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")
FAST = ["DATA.NUM_WORKERS", "0", "WANDB.MODE", "disabled", "PRINT_FREQ", "5"]
NUM_FOLDS = 3


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", os.path.join(REPO, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sweep_argv(output, *flags, opts=()):
    return ["--cfg", QUICKSTART, "--output", str(output), "--device", "cpu", *flags,
            "--opts", *FAST, "TRAIN.EPOCHS", "2", *opts]


@pytest.fixture(scope="module")
def fold_sweep(tmp_path_factory):
    """The sweep folder of the quickstart's 3 folds, 2 epochs each."""
    output = tmp_path_factory.mktemp("folds")
    assert load_script("sweep").main(sweep_argv(output, "--folds", str(NUM_FOLDS))) == 0
    return output / "sweeps" / f"lenet_digits-folds{NUM_FOLDS}"


@pytest.fixture(scope="module")
def train_ids():
    """The id of every image of the quickstart's train split, from the data, not from any fold run."""
    loaders = build_loader(get_config(QUICKSTART, ["DATA.NUM_WORKERS", "0"]))
    return {f"train-{index}" for index in loaders.train_dataset.indices}


def test_folds_is_a_grid_over_the_fold_with_the_folds_set_and_a_plain_grid_matches_it(tmp_path):
    sweep = load_script("sweep")
    shortcut_dir, shortcut = sweep.plan(sweep.parse_args(sweep_argv(tmp_path, "--folds", "3")))
    grid_dir, grid = sweep.plan(sweep.parse_args(sweep_argv(tmp_path, "--grid", "DATA.FOLD=0,1,2",
                                                            opts=("DATA.FOLDS", "3"))))
    assert os.path.basename(shortcut_dir) == os.path.basename(grid_dir) == "lenet_digits-folds3"
    assert [os.path.basename(folder) for folder, _, _ in shortcut] == ["fold0", "fold1", "fold2"]
    assert [folder for folder, _, _ in shortcut] == [folder for folder, _, _ in grid]
    assert [(config["DATA.FOLDS"], config["DATA.FOLD"]) for _, _, config in shortcut] == [(3, 0), (3, 1), (3, 2)]


def test_a_sweep_over_another_key_of_one_fold_names_each_run_for_the_fold(tmp_path):
    sweep = load_script("sweep")
    _, runs = sweep.plan(sweep.parse_args(sweep_argv(tmp_path, "--grid", "TRAIN.LR=1e-3,3e-3",
                                                     opts=("DATA.FOLDS", "5", "DATA.FOLD", "2"))))
    assert [os.path.basename(folder) for folder, _, _ in runs] == ["lr1e-3-fold2", "lr3e-3-fold2"]


def test_each_fold_run_validates_on_its_stratified_fold_and_says_so(fold_sweep, train_ids):
    folds = [read_probs(str(fold_sweep / "lenet_digits" / f"fold{fold}" / "val_probs.csv"))
             for fold in range(NUM_FOLDS)]
    totals = np.bincount(np.concatenate([fold.targets for fold in folds]))
    for fold, table in enumerate(folds):
        log = (fold_sweep / "lenet_digits" / f"fold{fold}" / "log.txt").read_text()
        assert re.search(rf"val: fold {fold} of {NUM_FOLDS} \({len(table.ids)} images\)", log)
        counts = np.bincount(table.targets, minlength=len(totals))
        assert np.all(np.abs(counts - totals / NUM_FOLDS) < 1)  # each class within one image of its share
    assert sum(len(table.ids) for table in folds) == len(train_ids)


def test_the_oof_file_holds_every_train_image_once_as_its_fold_predicted_it(fold_sweep, train_ids, capsys):
    assert load_script("folds").main([str(fold_sweep)]) == 0
    printed = capsys.readouterr().out
    oof = read_probs(str(fold_sweep / "oof_probs.csv"))
    assert len(oof.ids) == len(set(oof.ids)) and set(oof.ids) == train_ids
    folds = [read_probs(str(fold_sweep / "lenet_digits" / f"fold{fold}" / "val_probs.csv"))
             for fold in range(NUM_FOLDS)]
    row_of = {image_id: row for row, image_id in enumerate(oof.ids)}
    for fold, table in enumerate(folds):
        rows = [row_of[image_id] for image_id in table.ids]
        assert np.array_equal(oof.probs[rows], table.probs) and np.array_equal(oof.targets[rows], table.targets)
        accuracy = np.mean(table.probs.argmax(axis=1) == table.targets)
        assert f"fold {fold}: val acc@1 {100 * accuracy:.2f}%" in printed
    oof_accuracy = np.mean(oof.probs.argmax(axis=1) == oof.targets)
    assert f"out-of-fold acc@1 {100 * oof_accuracy:.2f}% on {len(train_ids):,} train images" in printed


def test_the_submission_is_the_argmax_of_the_folds_mean_test_probabilities(fold_sweep):
    out = fold_sweep / "assembled"
    assert load_script("folds").main([str(fold_sweep), "--out", str(out)]) == 0
    folds = [read_probs(str(fold_sweep / "lenet_digits" / f"fold{fold}" / "test_probs.csv"))
             for fold in range(NUM_FOLDS)]
    mean = read_probs(str(out / "test_probs.csv"))
    assert mean.ids == folds[0].ids and len(mean.ids) == 359
    np.testing.assert_allclose(mean.probs, np.mean([fold.probs for fold in folds], axis=0), atol=1e-7)
    np.testing.assert_allclose(mean.probs.sum(axis=1), 1, atol=1e-5)
    with open(out / "submission.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Id", "Category"]
    assert rows[1:] == [[str(row), str(label)] for row, label in enumerate(mean.probs.argmax(axis=1))]
