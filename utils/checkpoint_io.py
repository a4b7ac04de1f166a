"""Checkpoint files: written atomically, loaded safely (weights_only) and checked field by field,
and the weights read back.

A checkpoint is a dict holding the model, optimizer, scheduler and AMP-scaler states, the epoch
just finished, the best val score so far (of TEST.SELECT_METRIC), the config as YAML text, and the
RNG states (engine/checkpoint.py says what a run saves); with TRAIN.EMA / TRAIN.SWA also their
averages, and in "eval_weights" which weights scored best (engine/weight_averaging.py).
"""
from __future__ import annotations

import os
from typing import Any

import torch
import yaml

from utils.bounded_yaml import load_yaml
from utils.errors import UserError

CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "scaler", "epoch", "best_score", "config", "rng", "wandb_id")
_NONE = type(None)
# The type each field must have, checked as the file is loaded, so that a crafted or foreign file
# is refused in one line naming the field rather than failing deep inside a resume or an --eval.
# The fields after CHECKPOINT_KEYS came later; checkpoints written before them lack them.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "model": (dict,), "optimizer": (dict,), "scheduler": (dict,), "scaler": (dict,), "epoch": (int,),
    "best_score": (int, float, _NONE), "config": (str,), "rng": (dict,), "wandb_id": (str, _NONE),
    "best_metric": (str,), "best_weights": (str, _NONE), "epochs_since_best": (int,), "eval_weights": (str, _NONE),
    "progress": (dict, _NONE), "ema": (dict, _NONE), "swa": (dict, _NONE), "class_names": (list, _NONE),
    "loss": (dict, _NONE),
}
_TYPE_NAMES = {dict: "a mapping", int: "a whole number", float: "a number", str: "text", list: "a list",
               _NONE: "None", bool: "a boolean"}
# The weights a checkpoint may hold and name as the best-scoring ones (eval_weights).
WEIGHT_FIELDS = ("model", "ema", "swa")
RNG_STREAMS = ("python", "numpy", "torch", "cuda")


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
    """Load a vision-zoo checkpoint with weights_only=True, or raise UserError in one line: for a
    file that is not one, or whose fields do not hold what main.py writes (FIELD_TYPES; a config
    that is not YAML of KEY: value pairs), naming the file and the field."""
    state = load_user_file(path, "checkpoint", "pass a last.pth or best.pth written by main.py")
    if isinstance(state, dict) and "best_acc1" in state and "best_score" not in state:
        # Written before TEST.SELECT_METRIC, when the best checkpoint was always the best val acc@1.
        state["best_score"], state["best_metric"] = state.pop("best_acc1"), "val_acc1"
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise UserError(f"{path} is not a vision-zoo checkpoint (missing: {', '.join(missing)}); "
                        f"pass a last.pth or best.pth written by main.py")
    problem = _field_problem(state)
    if problem:
        field, what = problem
        raise UserError(f"checkpoint {path} is damaged or crafted: its field {field!r} {what}; "
                        f"pass a last.pth or best.pth written by main.py")
    return state


def _field_problem(state: dict[str, Any]) -> tuple[str, str] | None:
    """(the first field of a checkpoint that does not hold what main.py writes there, what is
    wrong with it), or None when every field present is well formed."""
    for field, types in FIELD_TYPES.items():
        value = state.get(field)
        if field in state and (type(value) is bool or not isinstance(value, types)):
            allowed = " or ".join(_TYPE_NAMES[kind] for kind in types)
            return field, f"must be {allowed}, not {_TYPE_NAMES.get(type(value), type(value).__name__)}"
    if state["epoch"] < -1:  # -1: saved inside the first epoch
        return "epoch", f"must be the epoch last finished, counted from 0, not {state['epoch']}"
    if not all(isinstance(value, torch.Tensor) for value in state["model"].values()):
        return "model", "must map parameter names to tensors"
    missing_streams = [stream for stream in RNG_STREAMS if stream not in state["rng"]]
    if missing_streams:
        return "rng", f"lacks the {', '.join(missing_streams)} generator state"
    for field in ("eval_weights", "best_weights"):
        if state.get(field) not in (None, *WEIGHT_FIELDS):
            return field, f"must name one of {', '.join(WEIGHT_FIELDS)}, not {str(state[field])[:40]!r}"
        if state.get(field) in ("ema", "swa") and not isinstance(state.get(state[field]), dict):
            return field, f"names the {state[field]} weights, which the checkpoint does not hold"
    if state.get("swa") is not None and not isinstance(state["swa"].get("average"), dict):
        return "swa", "lacks the averaged weights ('average')"
    if state.get("class_names") is not None and not all(isinstance(name, str) for name in state["class_names"]):
        return "class_names", "must be a list of class names (text)"
    return _config_problem(state["config"])


def _config_problem(text: str) -> tuple[str, str] | None:
    """What is wrong with a checkpoint's config (YAML text of a mapping), or None."""
    try:
        config = load_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        return "config", "is not valid YAML" + (f" (line {mark.line + 1})" if mark else "")
    if not isinstance(config, dict) or not config:
        return "config", f"must be YAML of KEY: value pairs, not of {type(config).__name__}"
    return None


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
