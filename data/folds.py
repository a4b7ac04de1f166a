"""DATA.FOLDS and DATA.FOLD: K-fold cross-validation of the train split.

The train split (after DATA.HOLDOUT_CLASSES) is cut into K stratified folds, shuffled from
SEED, so every fold run of one SEED draws the same folds; fold i validates and the other K-1
train. Each class's images are dealt out over the folds in turn (scikit-learn's
StratifiedKFold), so a class's count in any fold is within one image of its share (its total / K),
and the K folds' val images together are every train image exactly once: their predictions are
the out-of-fold (OOF) predictions of the whole train split.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.model_selection import StratifiedKFold

from utils.errors import UserError


def fold_split(labels: np.ndarray, num_folds: int, fold: int, seed: int,
               class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) positions into `labels` for fold `fold` (0-based) of a stratified
    `num_folds`-fold split shuffled from `seed`. A class with images but fewer than `num_folds`
    of them cannot reach every fold: one UserError line names it."""
    classes, counts = np.unique(labels, return_counts=True)
    short = counts < num_folds
    if short.any():
        label, count = int(classes[short][0]), int(counts[short][0])
        raise UserError(f"DATA.FOLDS {num_folds} needs at least {num_folds} train images of every class, and class "
                        f"{class_names[label]!r} has {count}; lower DATA.FOLDS, or leave the class out with "
                        f"DATA.HOLDOUT_CLASSES")
    folds = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    train, val = list(folds.split(np.zeros(len(labels)), labels))[fold]
    return np.sort(train), np.sort(val)


def fold_log_line(fold: int, num_folds: int, num_images: int) -> str:
    """The log's line for a fold run, e.g. `val: fold 2 of 5 (288 images)`."""
    return f"val: fold {fold} of {num_folds} ({num_images:,} images)"
