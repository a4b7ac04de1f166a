"""Ensembles: the weighted mean of the members' class probabilities, scored on val against each
member's.

The members (studies.ensemble_members: runs, checkpoints, fold sweeps) must predict the same
classes, the same test ids in the same order and the same val images (in any order; they are
matched by id), so that every val row scores an image that no member trained on. Weights are
normalised to sum to 1, or fitted on the val rows (`fit_weights`), which makes the ensemble's val
score optimistic.

`ensemble_members` checks, blends and scores them, `write_ensemble_outputs` writes the files;
scripts/ensemble.py is the command line around studies.ensemble_members.find_members and the two.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from evaluation.competition_metrics import macro_f1, multiclass_log_loss
from evaluation.ensemble_figure import ensemble_figure
from evaluation.plots import save_figure
from evaluation.probabilities import ProbTable, write_probs
from evaluation.submission import SUBMISSION_FORMATS, SampleSubmission, write_checked_submission
from studies.ensemble_members import Member
from studies.folds import write_averaged_submission
from utils.errors import UserError

# The true-class probability the weight fit takes the log of is kept above this, so that a member
# certain of a wrong class gives a large, finite loss rather than infinity.
MIN_PROBABILITY = 1e-15
TABLE_COLUMNS = ("name", "weight", "val_images", "val_acc1", "val_macro_f1", "val_log_loss")


@dataclass
class Ensemble:
    """The members blended: their weights (summing to 1), the ensemble's val rows (in the first
    member's val order) and test rows, and the score table (one row per member, then the ensemble)."""
    members: list[Member]
    weights: np.ndarray
    val: ProbTable
    test: ProbTable
    table: pd.DataFrame
    fitted: bool  # the weights were fitted on the val rows the table scores


def first_difference(theirs: Sequence[str], ours: Sequence[str], missing: str) -> tuple[int, str, str]:
    """(position, their item, our item) where two different lists first differ; a list that ends
    first shows `missing` there."""
    at = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
    return (at, repr(theirs[at]) if at < len(theirs) else missing, repr(ours[at]) if at < len(ours) else missing)


def check_members(members: Sequence[Member]) -> None:
    """UserError, naming the members and the first difference, unless every member predicts the
    classes, test ids (in order) and val images (by id, with the same true classes) of the first."""
    first = members[0]
    for member in members[1:]:
        if member.val.class_names != first.val.class_names:
            at, theirs, ours = first_difference(member.val.class_names, first.val.class_names, "no class")
            raise UserError(f"{member.name} has {theirs} as class {at + 1} where {first.name} has {ours}: "
                            f"ensemble members must predict the same classes, in the same order")
        if member.test.ids != first.test.ids:
            at, theirs, ours = first_difference(member.test.ids, first.test.ids, "no row")
            raise UserError(f"{member.name}'s test_probs.csv holds {theirs} at row {at + 1} where {first.name}'s "
                            f"holds {ours}: ensemble members must predict the same test ids in the same order")
        check_same_val_images(first, member)


def check_same_val_images(first: Member, member: Member) -> None:
    """UserError unless `member` holds the val images of `first`, each with the same true class."""
    theirs = dict(zip(member.val.ids, member.val.targets.tolist()))
    ours = dict(zip(first.val.ids, first.val.targets.tolist()))
    missing = next((image_id for image_id in first.val.ids if image_id not in theirs), None)
    extra = next((image_id for image_id in member.val.ids if image_id not in ours), None)
    if missing is not None or extra is not None:
        lacking, holder = (member, first) if missing is not None else (first, member)
        raise UserError(f"{holder.name} has val image {missing if missing is not None else extra!r} and "
                        f"{lacking.name} does not ({len(first.val.ids):,} and {len(member.val.ids):,} val images): "
                        f"members are scored on the same val images, so ensemble runs of one val split, or fold "
                        f"sweeps of the same DATA.FOLDS and SEED")
    differing = next((image_id for image_id in first.val.ids if theirs[image_id] != ours[image_id]), None)
    if differing is not None:
        names = first.val.class_names
        raise UserError(f"val image {differing!r} is {names[theirs[differing]]!r} to {member.name} and "
                        f"{names[ours[differing]]!r} to {first.name}: the members were trained on other labels")


def parse_weights(text: str | None, count: int) -> np.ndarray | None:
    """--weights: None for "auto" (fit them); equal weights when `text` is None; else the `count`
    comma-separated non-negative numbers of `text`, normalised to sum to 1."""
    if text is None:
        return np.full(count, 1.0 / count)
    if text.strip() == "auto":
        return None
    cells = text.split(",")
    if len(cells) != count:
        raise UserError(f"--weights {text} gives {len(cells)} weights for {count} members; give one per member, "
                        f"in the order the members are listed, or auto")
    weights = []
    for cell in cells:
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise UserError(f"--weights {text}: {cell.strip()!r} is not a weight; each is a number of 0 or more "
                            f"(they are normalised to sum to 1)")
        weights.append(value)
    total = math.fsum(weights)
    if total <= 0:
        raise UserError(f"--weights {text} are all 0; give at least one member a positive weight")
    return np.array(weights) / total


def blend(probabilities: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The weighted mean of the members' (N, C) probabilities, float32: the exact probabilities of
    a member given all the weight, and of copies of one member."""
    total = np.zeros(probabilities[0].shape, dtype=np.float64)
    for probs, weight in zip(probabilities, weights):
        total += weight * probs.astype(np.float64)
    return total.astype(np.float32)


def fit_weights(probabilities: Sequence[np.ndarray], targets: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to 1 that minimise the log-loss of the blend of `probabilities`
    (one (N, C) array per member) on the rows' true classes `targets` (SLSQP from equal weights)."""
    count = len(probabilities)
    rows = np.arange(len(targets))
    # The log-loss depends only on each member's probability of the true class: (N, members).
    true_class = np.stack([probs[rows, targets].astype(np.float64) for probs in probabilities], axis=1)

    def loss_and_gradient(weights: np.ndarray) -> tuple[float, np.ndarray]:
        mixed = np.maximum(true_class @ weights, MIN_PROBABILITY)
        return float(-np.mean(np.log(mixed))), -np.mean(true_class / mixed[:, None], axis=0)

    result = minimize(loss_and_gradient, np.full(count, 1.0 / count), jac=True, method="SLSQP",
                      bounds=[(0.0, 1.0)] * count,
                      constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones(count)}],
                      options={"ftol": 1e-12, "maxiter": 500})
    weights = np.clip(result.x, 0.0, None)  # SLSQP may step a hair below its bounds
    return weights / weights.sum()


def score(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """val acc@1 (%), macro-F1 and log-loss of (N, C) probabilities."""
    return {"val_acc1": 100.0 * float(np.mean(probabilities.argmax(axis=1) == targets)),
            "val_macro_f1": macro_f1(probabilities, targets),
            "val_log_loss": multiclass_log_loss(probabilities, targets)}


def ensemble_members(members: Sequence[Member], weights: np.ndarray | None) -> Ensemble:
    """The members, checked (check_members), blended with `weights` (normalised; None: fitted on
    val, fit_weights) and scored on their val images, each member and the ensemble."""
    check_members(members)
    first = members[0]
    targets = first.val.targets
    val_probs = []
    for member in members:  # each member's val rows in the first member's order
        row_of = {image_id: row for row, image_id in enumerate(member.val.ids)}
        val_probs.append(member.val.probs[[row_of[image_id] for image_id in first.val.ids]])
    fitted = weights is None
    weights = fit_weights(val_probs, targets) if fitted else np.asarray(weights, dtype=np.float64)
    val = ProbTable(list(first.val.ids), blend(val_probs, weights), list(first.val.class_names), targets)
    test = ProbTable(list(first.test.ids), blend([member.test.probs for member in members], weights),
                     list(first.test.class_names), None)
    rows = [{"name": member.name, "weight": float(weight), "val_images": len(targets), **score(probs, targets)}
            for member, weight, probs in zip(members, weights, val_probs)]
    rows.append({"name": "ensemble", "weight": float(weights.sum()), "val_images": len(targets),
                 **score(val.probs, targets)})
    return Ensemble(list(members), weights, val, test, pd.DataFrame(rows, columns=list(TABLE_COLUMNS)),
                    fitted=fitted)


def write_ensemble_outputs(result: Ensemble, out_dir: str, submission_format: str | None = None,
                           top_k: int | None = None, sample: SampleSubmission | None = None) -> list[str]:
    """Write into `out_dir` submission.csv (in `submission_format`, with `top_k` labels for topk;
    None: as the first member's SUBMISSION keys ask, which also give its header, ids and labels;
    checked against `sample` when given, evaluation.submission.write_checked_submission), test_probs.csv, val_probs.csv, ensemble.csv (the score table) and ensemble.png (the members
    against the ensemble); returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name)
             for name in ("submission.csv", "test_probs.csv", "val_probs.csv", "ensemble.csv", "ensemble.png")}
    config = dict(result.members[0].config)
    if submission_format is not None:
        config["SUBMISSION.FORMAT"] = submission_format
    if top_k is not None:
        config["SUBMISSION.TOPK"] = top_k
    write_checked_submission(paths["submission.csv"], partial(write_averaged_submission, test=result.test,
                                                              config=config), sample)
    write_probs(paths["test_probs.csv"], result.test.ids, result.test.probs, result.test.class_names)
    write_probs(paths["val_probs.csv"], result.val.ids, result.val.probs, result.val.class_names, result.val.targets)
    result.table.to_csv(paths["ensemble.csv"], index=False, float_format="%.6g")
    table = result.table
    title = (f"ensemble of {len(result.members)} members on {len(result.val.ids):,} val images"
             + (" (weights fitted on them: optimistic)" if result.fitted else ""))
    save_figure(ensemble_figure(list(table["name"]), list(table["val_acc1"]), list(table["val_log_loss"]), title),
                paths["ensemble.png"])
    return list(paths.values())


def check_submission_choice(submission_format: str | None, top_k: int | None, members: Sequence[Member]) -> None:
    """UserError when `top_k` (or the first member's SUBMISSION.TOPK, for topk) is more than the classes."""
    config = members[0].config
    chosen = submission_format or config.get("SUBMISSION.FORMAT", "label")
    if chosen not in SUBMISSION_FORMATS:
        raise UserError(f"{members[0].name} asks for SUBMISSION.FORMAT {chosen!r}; pass --format, one of "
                        f"{', '.join(SUBMISSION_FORMATS)}")
    k = top_k if top_k is not None else int(config.get("SUBMISSION.TOPK", 5))
    num_classes = len(members[0].val.class_names)
    if chosen == "topk" and k > num_classes:
        raise UserError(f"--topk {k} is more than the {num_classes} classes; give at most {num_classes}")
