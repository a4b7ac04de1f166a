"""Out-of-fold (OOF) predictions: the K fold runs of DATA.FOLDS put back together.

Fold run i validated on fold i of the train split, so its val_probs.csv holds its out-of-fold
rows; the K files together predict every train image exactly once, each by the one model that
never trained on it, and their accuracy is a cross-validated score of the whole train split.
The folds' test_probs.csv, averaged, are the test probabilities of the K models as an ensemble.

`assemble_oof` reads and checks the runs; `write_oof_outputs` writes oof_probs.csv,
test_probs.csv and submission.csv. scripts/folds.py is the command line around both.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import yaml

from config import flatten
from evaluation.probabilities import ProbTable, read_probs, write_probs
from evaluation.submission import submission_writer
from utils.bounded_yaml import load_yaml
from utils.errors import UserError

# Keys that fix which images each fold holds: fold runs that differ in one were cut from other folds.
SPLIT_KEYS = ("DATA.FOLDS", "SEED", "DATA.DATASET", "DATA.HOLDOUT_CLASSES")


@dataclass
class FoldRun:
    """One fold run as the assembly reads it."""
    run_dir: str
    fold: int
    config: dict[str, Any]  # flat, from its config.yaml
    val: ProbTable  # its val_probs.csv: the out-of-fold rows of fold `fold`
    test: ProbTable | None  # its test_probs.csv, None when it wrote none

    @property
    def accuracy(self) -> float:
        return accuracy(self.val)


@dataclass
class OutOfFold:
    """The folds put together: every train image's out-of-fold row, and the folds' mean test
    probabilities (None when the folds wrote no test_probs.csv)."""
    folds: list[FoldRun]  # in fold order
    oof: ProbTable  # fold 0's rows, then fold 1's, ...
    test: ProbTable | None

    @property
    def accuracy(self) -> float:
        return accuracy(self.oof)


def accuracy(table: ProbTable) -> float:
    """acc@1 of a val probability table, in [0, 1]: how often its most probable class is the true one."""
    return float(np.mean(table.probs.argmax(axis=1) == table.targets)) if len(table.ids) else float("nan")


def assemble_oof(fold_run_dirs: Sequence[str], probability_files: Sequence[tuple[str, str]] | None = None
                 ) -> tuple[OutOfFold, list[str]]:
    """(the out-of-fold predictions of `fold_run_dirs`, the report's lines: each fold's val acc@1
    and the OOF acc@1). Each run's probabilities are its own val_probs.csv and test_probs.csv, or
    the (val, test) files of `probability_files`, one pair per run (scripts/ensemble.py's, made
    with another TTA).

    Refused in one UserError line naming the run, fold or id: a run that is no fold run or wrote
    no val_probs.csv; runs of other DATA.FOLDS, SEED or data; a fold missing or given twice; class
    lists that differ; an image in two folds' rows; a fold short of rows, seen as a class whose
    count in one fold is more than one image from another fold's (the folds are stratified);
    test_probs.csv in some folds only, or of other test ids."""
    if not fold_run_dirs:
        raise UserError("no fold runs given; pass the sweep folder of scripts/sweep.py --folds K, or its K run folders")
    files = probability_files if probability_files is not None else [None] * len(fold_run_dirs)
    runs = [read_fold_run(run_dir, pair) for run_dir, pair in zip(fold_run_dirs, files)]
    runs = check_fold_set(runs)
    oof = join_out_of_fold(runs)
    check_stratified(runs, oof)
    test = mean_test_probs(runs)
    report = [f"fold {run.fold}: val acc@1 {100 * run.accuracy:.2f}% on {len(run.val.ids):,} images ({run.run_dir})"
              for run in runs]
    report.append(f"out-of-fold acc@1 {100 * accuracy(oof):.2f}% on {len(oof.ids):,} train images "
                  f"({len(runs)} folds)")
    return OutOfFold(runs, oof, test), report


def read_fold_run(run_dir: str, probability_files: tuple[str, str] | None = None) -> FoldRun:
    """The fold run in `run_dir`: its config.yaml, val_probs.csv and (if written) test_probs.csv,
    or the (val, test) files of `probability_files`."""
    config_path = os.path.join(run_dir, "config.yaml")
    try:
        with open(config_path, encoding="utf-8") as f:
            stored = load_yaml(f)
    except OSError:
        raise UserError(f"{run_dir} is not a run folder (no readable config.yaml); pass the fold runs' folders "
                        f"or their sweep folder") from None
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise UserError(f"{config_path} cannot be read as YAML ({e.__class__.__name__}); it says which fold the "
                        f"run trained, so the run cannot be assembled") from None
    config = flatten(stored) if isinstance(stored, dict) else {}
    if not config.get("DATA.FOLDS"):
        raise UserError(f"{run_dir} is not a fold run (its DATA.FOLDS is 0): its val rows are no fold of train; "
                        f"train the folds with scripts/sweep.py --folds K")
    val_path, test_path = probability_files or (os.path.join(run_dir, "val_probs.csv"),
                                                os.path.join(run_dir, "test_probs.csv"))
    if not os.path.isfile(val_path):
        raise UserError(f"fold {config['DATA.FOLD']} ({run_dir}) has no val_probs.csv, which a run writes when it "
                        f"finishes; finish it (running the sweep again resumes it)")
    val = read_probs(val_path)
    if val.targets is None:
        raise UserError(f"{val_path} has no 'true' column, so its rows cannot be scored; it is not a run's "
                        f"val_probs.csv")
    test = read_probs(test_path, val.class_names) if os.path.isfile(test_path) else None
    return FoldRun(run_dir, int(config["DATA.FOLD"]), config, val, test)


def check_fold_set(runs: list[FoldRun]) -> list[FoldRun]:
    """`runs` in fold order, once checked to be the folds 0..K-1 of one split, each once, of one
    class list."""
    first = runs[0]
    for run in runs[1:]:
        for key in SPLIT_KEYS:
            if run.config.get(key) != first.config.get(key):
                raise UserError(f"{run.run_dir} has {key} {run.config.get(key)!r} and {first.run_dir} has "
                                f"{first.config.get(key)!r}: their folds are cut from different splits; assemble "
                                f"the runs of one scripts/sweep.py --folds")
        if run.val.class_names != first.val.class_names:
            raise UserError(f"{run.run_dir}'s val_probs.csv has other classes than {first.run_dir}'s; assemble runs "
                            f"of one data set")
    num_folds = int(first.config["DATA.FOLDS"])
    by_fold: dict[int, FoldRun] = {}
    for run in runs:
        if run.fold in by_fold:
            raise UserError(f"fold {run.fold} is given twice, by {by_fold[run.fold].run_dir} and {run.run_dir}; "
                            f"pass each fold's run once")
        by_fold[run.fold] = run
    missing = [fold for fold in range(num_folds) if fold not in by_fold]
    if missing:
        raise UserError(f"fold {missing[0]} of {num_folds} is missing (folds given: "
                        f"{', '.join(map(str, sorted(by_fold)))}); train it with --opts DATA.FOLDS {num_folds} "
                        f"DATA.FOLD {missing[0]}, or run the sweep again")
    return [by_fold[fold] for fold in range(num_folds)]


def join_out_of_fold(runs: list[FoldRun]) -> ProbTable:
    """The folds' val rows as one table, each image once: an id in two folds is refused."""
    fold_of: dict[str, int] = {}
    for run in runs:
        for image_id in run.val.ids:
            if image_id in fold_of:
                raise UserError(f"image {image_id!r} is in the val rows of fold {fold_of[image_id]} "
                                f"({runs[fold_of[image_id]].run_dir}) and of fold {run.fold} ({run.run_dir}): folds "
                                f"hold each train image once, so these runs were not cut from one split")
            fold_of[image_id] = run.fold
    return ProbTable([image_id for run in runs for image_id in run.val.ids],
                     np.concatenate([run.val.probs for run in runs]), list(runs[0].val.class_names),
                     np.concatenate([run.val.targets for run in runs]))


def check_stratified(runs: list[FoldRun], oof: ProbTable) -> None:
    """Every class's count in every fold within one image of its share of the OOF rows (its
    total / K), as the stratified split deals them out: a fold whose val_probs.csv lost rows
    falls short of it (one lost row of a class where the fold held the larger share cannot be told)."""
    num_folds, num_classes = len(runs), len(oof.class_names)
    totals = np.bincount(oof.targets, minlength=num_classes)
    low, high = totals // num_folds, -(-totals // num_folds)
    for run in runs:
        counts = np.bincount(run.val.targets, minlength=num_classes)
        off = np.flatnonzero((counts < low) | (counts > high))
        if off.size:
            cls = off[0]
            raise UserError(f"fold {run.fold} ({run.run_dir}) holds {counts[cls]} images of class "
                            f"{oof.class_names[cls]!r} where a stratified fold of the {totals[cls]} out-of-fold "
                            f"images of it holds {low[cls]} to {high[cls]}: its val_probs.csv is missing rows, or "
                            f"the folds come from other runs; train that fold again")


def mean_test_probs(runs: list[FoldRun]) -> ProbTable | None:
    """The folds' test probabilities averaged image by image; None when no fold wrote test_probs.csv."""
    written = [run for run in runs if run.test is not None]
    if not written:
        return None
    if len(written) < len(runs):
        lacking = next(run for run in runs if run.test is None)
        raise UserError(f"fold {lacking.fold} ({lacking.run_dir}) wrote no test_probs.csv and other folds did, so "
                        f"the folds' test predictions cannot be averaged; predict with that fold's best.pth "
                        f"(main.py --predict) into its folder")
    first = written[0].test
    for run in written[1:]:
        if run.test.ids != first.ids:
            row = next((row for row, (a, b) in enumerate(zip(run.test.ids, first.ids)) if a != b),
                       min(len(run.test.ids), len(first.ids)))
            theirs = repr(run.test.ids[row]) if row < len(run.test.ids) else "no row"
            ours = repr(first.ids[row]) if row < len(first.ids) else "no row"
            raise UserError(f"fold {run.fold}'s test_probs.csv ({run.run_dir}) holds {theirs} at row {row + 1} "
                            f"where fold {written[0].fold}'s holds {ours}: the folds predicted other test images")
    mean = np.mean(np.stack([run.test.probs for run in written]), axis=0, dtype=np.float64)
    return ProbTable(list(first.ids), mean.astype(np.float32), list(first.class_names), None)


def write_oof_outputs(result: OutOfFold, out_dir: str) -> list[str]:
    """Write oof_probs.csv (every train image's out-of-fold row), and, when the folds predicted
    the test split, test_probs.csv (their mean) and submission.csv (from that mean, as the fold
    runs' SUBMISSION keys ask) into `out_dir`; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    oof = result.oof
    written = [os.path.join(out_dir, "oof_probs.csv")]
    write_probs(written[0], oof.ids, oof.probs, oof.class_names, oof.targets)
    if result.test is not None:
        test = result.test
        written.append(os.path.join(out_dir, "test_probs.csv"))
        write_probs(written[-1], test.ids, test.probs, test.class_names)
        written.append(os.path.join(out_dir, "submission.csv"))
        write_averaged_submission(written[-1], test, result.folds[0].config)
    return written


def write_averaged_submission(path: str, test: ProbTable, config: dict[str, Any]) -> None:
    """submission.csv from the averaged `test` probabilities, in SUBMISSION.FORMAT of the fold
    runs' flat `config`, with its header, ids (SUBMISSION.ID) and labels (SUBMISSION.LABELS)."""
    header = config.get("SUBMISSION.HEADER", "Id,Category")
    ids = test.ids if config.get("SUBMISSION.ID") == "file" else None
    names = test.class_names if config.get("SUBMISSION.LABELS") == "name" else None
    submission_writer(config.get("SUBMISSION.FORMAT", "label"), test.probs, test.class_names, header, ids, names,
                      int(config.get("SUBMISSION.TOPK", 5)))(path)
