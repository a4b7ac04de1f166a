"""A fold run's folder (and so its W&B name, the folder relative to OUTPUT) carries its fold: a
tag gets -fold<i> unless it already names that fold, a timestamp ends in -fold<i>, and --resume
auto finds the fold's own run."""
from __future__ import annotations

import os

import pytest

from engine.run_dir import LAST_CHECKPOINT, fold_label, plan_run_dir, tag_with_fold


def test_the_fold_label_is_empty_without_folds():
    assert fold_label(0, 0) == ""
    assert fold_label(5, 2) == "fold2"


@pytest.mark.parametrize("tag, expected", [
    ("baseline", "baseline-fold2"),
    ("fold2", "fold2"),  # scripts/sweep.py --folds tags
    ("lr0.01-fold2", "lr0.01-fold2"),  # a grid over DATA.FOLD and another key
    ("fold2-lr0.01", "fold2-lr0.01"),
    ("fold12", "fold12-fold2"),  # another fold's number is no name of this one
    ("", ""),
])
def test_a_tag_gets_the_fold_unless_one_of_its_parts_names_it(tag, expected):
    assert tag_with_fold(tag, "fold2") == expected
    assert tag_with_fold(tag, "") == tag


def test_a_new_fold_run_is_named_for_its_fold_tagged_or_timestamped(tmp_path):
    parent = str(tmp_path / "lenet_digits")
    run_dir, _ = plan_run_dir(str(tmp_path), parent, "baseline", "", fold="fold1")
    assert run_dir == os.path.join(parent, "baseline-fold1")
    stamped, _ = plan_run_dir(str(tmp_path), parent, "", "", fold="fold1")
    assert os.path.dirname(stamped) == parent and os.path.basename(stamped).endswith("-fold1")
    os.makedirs(stamped)  # a second run in the same second keeps the fold last
    again, _ = plan_run_dir(str(tmp_path), parent, "", "", fold="fold1")
    assert again != stamped and again.endswith("-2-fold1")


def test_resume_auto_continues_the_run_of_its_own_fold(tmp_path):
    parent = tmp_path / "lenet_digits"
    for name in ("a-fold0", "a-fold1"):
        (parent / name).mkdir(parents=True)
        (parent / name / "config.yaml").write_text("{}\n")
        (parent / name / LAST_CHECKPOINT).write_bytes(b"")
    os.utime(parent / "a-fold0" / LAST_CHECKPOINT, (1e9, 1e9))  # fold 1's is the newer
    assert plan_run_dir(str(tmp_path), str(parent), "a", "auto", fold="fold0")[0] == str(parent / "a-fold0")
    assert plan_run_dir(str(tmp_path), str(parent), "", "auto", fold="fold0")[0] == str(parent / "a-fold0")
    assert plan_run_dir(str(tmp_path), str(parent), "a-fold0", "auto", fold="fold0")[0] == str(parent / "a-fold0")
