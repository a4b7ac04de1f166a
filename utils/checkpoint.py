"""Checkpoints: written atomically, loaded safely, with everything needed to resume a run.

A checkpoint is a dict holding the model, optimizer, scheduler and AMP-scaler states, the epoch
just finished, the best val score so far (of TEST.SELECT_METRIC), the config as YAML text, and the RNG states; with
TRAIN.EMA / TRAIN.SWA also their averages, and which weights scored best (utils/weight_averaging.py).
"""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
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


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch and CUDA generator states, in types that weights_only loading accepts."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of capture_rng_state."""
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
