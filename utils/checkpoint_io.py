"""Checkpoint files: written atomically, loaded safely (weights_only), and the weights read back.

A checkpoint is a dict holding the model, optimizer, scheduler and AMP-scaler states, the epoch
just finished, the best val score so far (of TEST.SELECT_METRIC), the config as YAML text, and the
RNG states (engine/checkpoint.py says what a run saves); with TRAIN.EMA / TRAIN.SWA also their
averages, and in "eval_weights" which weights scored best (engine/weight_averaging.py).
"""
from __future__ import annotations

import os
from typing import Any

import torch

from utils.errors import UserError

CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "scaler", "epoch", "best_score", "config", "rng", "wandb_id")


def save_checkpoint(path: str, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: a temporary file in the same folder, then a rename.

    A crash or kill at any moment leaves either the previous file or the new one, never a
    truncated one. A write that fails (disk full, read-only or vanished folder) removes its
    temporary file, leaves the previous checkpoint as it was, and raises UserError in one line.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp_path = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp_path, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        # Make the rename itself durable.
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        previous = "the previous one is unchanged" if os.path.isfile(path) else "no earlier one exists"
        raise UserError(f"could not write checkpoint {path} ({e.strerror or e}); {previous}. Free disk space or "
                        f"make {folder} writable, then continue with --resume auto") from None
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def load_user_file(path: str, what: str, hint: str) -> Any:
    """torch.load a file the user named, with weights_only=True (no code runs), onto the CPU.

    A missing, truncated, corrupt or code-carrying file raises one UserError line naming
    `what` the file was for, followed by `hint`.
    """
    if not os.path.isfile(path):
        raise UserError(f"{what} not found: {path}; {hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any parse failure of a user's file means it is damaged or foreign
        reason = str(e).strip().split(".")[0].splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise UserError(f"{what} {path} is truncated, corrupt or unsafe to load ({reason[:100]}); {hint}") from None


def load_checkpoint(path: str) -> dict[str, Any]:
    """Load a vision-zoo checkpoint with weights_only=True, or raise UserError in one line."""
    state = load_user_file(path, "checkpoint", "pass a last.pth or best.pth written by main.py")
    if isinstance(state, dict) and "best_acc1" in state and "best_score" not in state:
        # Written before TEST.SELECT_METRIC, when the best checkpoint was always the best val acc@1.
        state["best_score"], state["best_metric"] = state.pop("best_acc1"), "val_acc1"
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise UserError(f"{path} is not a vision-zoo checkpoint (missing: {', '.join(missing)}); "
                        f"pass a last.pth or best.pth written by main.py")
    return state


def averaged_weights(averaged_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model state_dict inside an AveragedModel.state_dict()."""
    return {key.removeprefix("module."): value for key, value in averaged_state.items() if key != "n_averaged"}


def eval_weights(checkpoint: dict) -> tuple[dict[str, torch.Tensor], str]:
    """(the state_dict of the weights that scored best when `checkpoint` was written, their name).
    Checkpoints from before EMA and SWA hold only "model"."""
    name = checkpoint.get("eval_weights") or "model"
    if name == "model":
        return checkpoint["model"], name
    state = checkpoint[name]["average"] if name == "swa" else checkpoint[name]
    return averaged_weights(state), name
