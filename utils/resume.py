"""What may change when a run continues from its checkpoint, and what may not.

Continuing a run (or forking it into a new folder) keeps the config stored in its checkpoint:
the optimizer, scheduler and model states in the file only make sense with it. A few keys only
say how or where the run executes, or how long it goes on, and may differ; anything else means
a different experiment, which starts from the weights with MODEL.PRETRAINED instead.
"""
from __future__ import annotations

from typing import Any

# Keys a resumed run may change, and why each is safe:
RESUMABLE_KEYS = (
    "TRAIN.EPOCHS",  # the LR schedule is re-planned for the new length from the current step
    "TRAIN.EARLY_STOP_PATIENCE",  # how long the run goes on, like TRAIN.EPOCHS
    "SAVE_FREQ", "PRINT_FREQ", "SAVE.CHECKPOINTS",  # bookkeeping only
    "DATA.NUM_WORKERS", "DATA.PIN_MEMORY", "DATA.PERSISTENT_WORKERS",  # augmentation is seeded per image
    "DATA.DATA_PATH",  # the same data, moved to another disk
    "DATA.CACHE",  # the same batches, read from memory
    "DATA.AUG_DEVICE",  # the same augmentations, drawn per batch instead of per image
    "DEVICE", "TRAIN.MIXED_PRECISION",  # another machine: a GPU without bf16 continues in fp16
    "TRAIN.CHANNELS_LAST", "TRAIN.COMPILE", "TRAIN.CUDNN_BENCHMARK",  # speed, not what is computed
    "TRAIN.MAX_NONFINITE",  # how patient the divergence guard is
    "TEST.TTA",  # how the final report and the submission predict; training is unchanged
    "SUBMISSION.HEADER", "SUBMISSION.ID", "SUBMISSION.LABELS",  # how submission.csv is written
)
RESUMABLE_PREFIXES = ("WANDB.",)
# Keys that name the run and its checkpoint rather than configure it.
BOOKKEEPING_KEYS = ("MODEL.RESUME", "TAG", "OUTPUT", "EVAL_MODE")


def may_change_on_resume(key: str) -> bool:
    return key in RESUMABLE_KEYS or key.startswith(RESUMABLE_PREFIXES)


def differing_keys(stored: dict[str, Any], requested: dict[str, Any]) -> list[str]:
    """Flattened keys (bookkeeping left out) whose values differ between two flattened configs."""
    return [key for key in requested
            if key not in BOOKKEEPING_KEYS and requested[key] != stored.get(key)]


def describe_change(key: str, stored: dict[str, Any], requested: dict[str, Any]) -> str:
    return f"{key} {stored.get(key)!r} -> {requested[key]!r}"
