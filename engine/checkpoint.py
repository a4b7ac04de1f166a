"""What a run's checkpoint holds, and how its weights come back into a model.

utils/checkpoint_io.py writes and reads the file itself (atomically, weights_only); this module
knows the run: the training state to save, the RNG states, the config keys a checkpoint's
weights depend on, and the error lines for a checkpoint that does not fit.
"""
from __future__ import annotations

import os
import random
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from config import flatten, get_config
from engine.loop import EpochProgress
from engine.parts import TrainingParts
from engine.run_dir import BEST_CHECKPOINT, LAST_CHECKPOINT, experiment_dir, latest_run_with_checkpoint
from engine.weight_averaging import StochasticWeightAveraging
from evaluation.selection import BestSoFar
from models.build import resolve_num_classes
from utils.checkpoint_io import eval_weights, save_checkpoint
from utils.errors import UserError

# Keys that fix a checkpoint's architecture and what its outputs mean: --eval and --predict
# refuse a config that changes them.
CHECKPOINT_IDENTITY_KEYS = ("MODEL.NAME", "MODEL.NUM_CLASSES", "MODEL.STEM", "MODEL.WIDTH_MULT", "MODEL.AUX_LOGITS",
                            "MODEL.CONVNEXT.NORM", "MODEL.EMBED_DIM", "DATA.DATASET", "DATA.IMG_SIZE",
                            "DATA.HOLDOUT_CLASSES")


def training_state(cfg, parts: TrainingParts, scheduler, swa: StochasticWeightAveraging | None, epoch: int,
                   best: BestSoFar, wandb_id: str | None, progress: EpochProgress | None) -> dict:
    """What a checkpoint holds (utils/checkpoint_io.py) after `epoch`, or inside the epoch that
    follows it when `progress` says where."""
    return {"model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": parts.scaler.state_dict(), "epoch": epoch,
            "config": cfg.dump(), "rng": capture_rng_state(), "wandb_id": wandb_id,
            "progress": asdict(progress) if progress else None, **best.checkpoint_fields(),
            "ema": parts.ema.state_dict() if parts.ema is not None else None,
            "swa": swa.state_dict() if swa is not None else None, "class_names": parts.loaders.class_names,
            "loss": parts.train_criterion.state_dict()}


class RunCheckpoints:
    """A training run's last.pth and best.pth in `run_dir` (None on torchrun's ranks other than
    0, which write nothing), each holding training_state() at the moment it is saved."""

    def __init__(self, cfg, run_dir: str | None, parts: TrainingParts, scheduler,
                 swa: StochasticWeightAveraging | None, best: BestSoFar, wandb_id: str | None):
        self.cfg, self.run_dir, self.parts, self.scheduler = cfg, run_dir, parts, scheduler
        self.swa, self.best, self.wandb_id = swa, best, wandb_id

    def save(self, name: str, epoch: int, progress: EpochProgress | None = None) -> None:
        """Write `name` (last.pth or best.pth) after `epoch`, or inside the epoch after it when
        `progress` says where."""
        if self.run_dir is not None:
            save_checkpoint(os.path.join(self.run_dir, name), training_state(
                self.cfg, self.parts, self.scheduler, self.swa, epoch, self.best, self.wandb_id, progress))


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


def load_model_weights(model: nn.Module, checkpoint: dict, path: str, cfg, best_scoring: bool = False) -> str:
    """Load the checkpoint's weights into `model`, built from `cfg`; a misfit names both sides.

    The trained weights ("model"), or with `best_scoring` whichever of them, their EMA and their
    SWA scored best on val when the checkpoint was written. Returns the name of those loaded.
    """
    state, name = eval_weights(checkpoint) if best_scoring else (checkpoint["model"], "model")
    try:
        model.load_state_dict(state)
        return name
    except RuntimeError as e:
        # torch's first line only says "Error(s) in loading state_dict"; the next one says what.
        details = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
        detail = details[0][:160] if details else str(e).splitlines()[0]
        try:
            written = get_config(base_yaml=checkpoint["config"])
            holds = (f"{written.MODEL.NAME} for {written.DATA.DATASET} "
                     f"({resolve_num_classes(written)} classes)")
        except UserError:  # a config from another version of this project
            holds = "a model of another shape"
        raise UserError(f"checkpoint {path} holds {holds}, which does not fit {cfg.MODEL.NAME} for "
                        f"{cfg.DATA.DATASET} ({resolve_num_classes(cfg)} classes): {detail}; use a --cfg that "
                        f"matches the checkpoint, or MODEL.PRETRAINED to start a new model from it") from None


def checkpoint_path_from(cfg) -> str:
    """MODEL.RESUME as a file: `auto` is the newest run's best.pth (else last.pth)."""
    path = cfg.MODEL.RESUME
    if path == "auto":
        run_dir = latest_run_with_checkpoint(experiment_dir(cfg.OUTPUT, cfg.MODEL.NAME, cfg.DATA.DATASET))
        if run_dir is None:
            raise UserError("--resume auto found no run with a checkpoint; pass --resume PATH")
        best = os.path.join(run_dir, BEST_CHECKPOINT)
        path = best if os.path.isfile(best) else os.path.join(run_dir, LAST_CHECKPOINT)
    if not path:
        raise UserError("--eval, --predict and --export-embeddings need a checkpoint: pass --resume PATH "
                        "(or --resume auto)")
    return path


def check_config_matches_checkpoint(cfg, stored_cfg, path: str) -> None:
    """UserError naming every CHECKPOINT_IDENTITY_KEYS key on which `cfg` differs from the checkpoint's."""
    given, stored = flatten(cfg), flatten(stored_cfg)
    differing = [f"{key} ({given[key]!r}; the checkpoint has {stored[key]!r})"
                 for key in CHECKPOINT_IDENTITY_KEYS if given[key] != stored[key]]
    if differing:
        raise UserError(f"the config given differs from the one checkpoint {path} was trained with in "
                        f"{', '.join(differing)}; leave out --cfg (and those --opts) to use the checkpoint's own")


def check_classes_match(checkpoint: dict, path: str, data_path: str, class_names: list[str]) -> None:
    """UserError when the checkpoint was trained on other classes than the data's `class_names`."""
    trained_classes = checkpoint.get("class_names")
    if trained_classes is not None and trained_classes != class_names:
        def listed(names: list[str]) -> str:
            return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")

        raise UserError(f"{path} was trained on the classes {listed(trained_classes)} but {data_path} "
                        f"holds {listed(class_names)}; point DATA.DATA_PATH at the data the checkpoint was trained on")


def remove_resume_checkpoint(run_dir: str, keep: str) -> None:
    """Remove last.pth at the end of a run unless SAVE.CHECKPOINTS (`keep`) keeps it: it was
    written only so that the run could resume."""
    last_path = os.path.join(run_dir, LAST_CHECKPOINT)
    if keep in ("best", "none") and os.path.isfile(last_path):
        os.remove(last_path)
