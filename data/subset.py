"""DATA.TRAIN_SUBSET, DATA.VAL_SUBSET and DATA.TEST_SUBSET: part of a split, chosen from SEED, for
studies of many short runs; and the words that say a score came from such a part, so that nobody
reads it as the whole split's."""
from __future__ import annotations

import numpy as np

from utils.errors import UserError

SUBSET_KEYS = {"train": "DATA.TRAIN_SUBSET", "val": "DATA.VAL_SUBSET", "test": "DATA.TEST_SUBSET"}
# What each split's subset reduces, for the log.
SUBSET_OUTPUTS = {"train": "training", "val": "scores", "test": "predictions"}


def choose_subset(indices: np.ndarray, subset: float, seed: int, split: str) -> np.ndarray:
    """Sorted `indices` of `split` reduced to a fraction (0 < subset < 1) or a count (subset >= 1)
    of them, chosen from `seed` alone (so the same seed keeps the same images, whatever the other
    splits' subsets); all of them for 0. A count larger than the split is an error naming the
    split's key."""
    if subset == 0:
        return indices
    count = int(round(len(indices) * subset)) if subset < 1 else int(subset)
    if count > len(indices):
        raise UserError(f"{SUBSET_KEYS[split]} asks for {count} images but the {split} split has {len(indices)}; "
                        f"lower it, or give a fraction such as 0.1")
    chosen = np.random.default_rng(seed).permutation(len(indices))[:max(1, count)]
    return np.sort(indices[chosen])


def subset_log_line(split: str, chosen: int, total: int) -> str:
    """The log's line for a split read in part, e.g. `val: scores from a subset, 200 of 1,000 images
    (DATA.VAL_SUBSET)`."""
    return f"{split}: {SUBSET_OUTPUTS[split]} from a subset, {chosen:,} of {total:,} images ({SUBSET_KEYS[split]})"


def subset_note(subsets: dict[str, tuple[int, int]]) -> str:
    """A short note for a title from {split: (images chosen, images in the split)}, e.g.
    `val subset 200/1,000`; "" when no split is a subset."""
    return ", ".join(f"{split} subset {chosen:,}/{total:,}" for split, (chosen, total) in subsets.items())
