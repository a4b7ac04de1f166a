"""DATA.HOLDOUT_CLASSES: an open-set split of any labelled data set.

The held-out classes never reach training: their images leave the train, val and (labelled)
test splits, and the remaining classes are renumbered 0..K-1 in their original order, so the
model has K outputs. The held-out classes' train images become a split of their own ("holdout"),
on which verification measures how well the embedding separates identities it has never seen,
as a face-verification test set does.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from data.dataset import NO_LABEL
from utils.errors import UserError


def held_out_mask(class_names: Sequence[str], holdout: Sequence) -> np.ndarray:
    """A bool per class of `class_names`: True for the classes `holdout` names. Entries match the
    names as text, so the digits' class 7 may be written 7 or "7"."""
    wanted = [str(name) for name in holdout]
    unknown = [name for name in wanted if name not in class_names]
    if unknown:
        listed = ", ".join(list(class_names)[:8]) + (", ..." if len(class_names) > 8 else "")
        raise UserError(f"DATA.HOLDOUT_CLASSES names {unknown[0]!r}, which is not a class of the data set; its "
                        f"classes are {listed}")
    mask = np.isin(np.asarray(class_names, dtype=object), wanted)
    if mask.sum() >= len(class_names) - 1:
        raise UserError(f"DATA.HOLDOUT_CLASSES holds out {int(mask.sum())} of {len(class_names)} classes, which "
                        f"leaves fewer than 2 to train on; hold out fewer")
    return mask


def kept_class_labels(labels: np.ndarray, held_out: np.ndarray) -> np.ndarray:
    """`labels` renumbered over the kept classes (in their order), NO_LABEL for held-out ones."""
    new_index = np.cumsum(~held_out) - 1
    return np.where(held_out[labels], NO_LABEL, new_index[labels]).astype(np.int64)


def kept_positions(positions: np.ndarray, labels: np.ndarray, held_out: np.ndarray) -> np.ndarray:
    """The entries of `positions` (indices into `labels`) whose class is kept."""
    return positions[~held_out[labels[positions]]]
