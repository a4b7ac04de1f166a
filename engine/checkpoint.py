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
from models.embedding import EmbeddingClassifier
from utils.checkpoint_io import eval_weights, load_user_file, save_checkpoint
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


def load_model_weights(model: nn.Module, checkpoint: dict, path: str, cfg, best_scoring: bool = False,
                       class_names: list[str] | None = None) -> str:
    """Load the checkpoint's weights into `model`, built from `cfg`; a misfit names both sides.

    The trained weights ("model"), or with `best_scoring` whichever of them, their EMA and their
    SWA scored best on val when the checkpoint was written. Returns the name of those loaded.
    Given the data's `class_names`, weights trained on other classes are refused first (check_classes_match).
    """
    if class_names is not None:
        check_classes_match(checkpoint, path, cfg.DATA.DATA_PATH, class_names)
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
        raise UserError(f"{path} was trained on the classes {listed_names(trained_classes)} but {data_path} "
                        f"holds {listed_names(class_names)}; point DATA.DATA_PATH at the data the checkpoint was "
                        f"trained on ({first_difference(trained_classes, class_names)})")


def check_pretrained_classes(path: str, model: nn.Module, data_path: str, class_names: list[str]) -> str | None:
    """MODEL.PRETRAINED `path` against the data's `class_names`, once `model` holds its weights.

    A vision-zoo checkpoint trained on other classes is refused where `model` kept its classifier
    (as many classes: each label would mean another class); where the classifier was rebuilt
    (another number of classes) the fine-tune goes on, and the returned note says so for the log.
    Weights that name no classes (torchvision's, a plain state_dict) are not checked.
    """
    if path == "torchvision":
        return None
    stored = load_user_file(path, "MODEL.PRETRAINED file", "pass a checkpoint or a state_dict file")
    trained_classes = stored.get("class_names") if isinstance(stored, dict) else None
    if not isinstance(trained_classes, list) or trained_classes == class_names:
        return None
    if classifier_kept(model, eval_weights(stored)[0] if isinstance(stored.get("model"), dict) else stored):
        raise UserError(f"MODEL.PRETRAINED {path} was trained on the classes {listed_names(trained_classes)} but "
                        f"{data_path} holds {listed_names(class_names)}; with as many classes its classifier is "
                        f"kept, so each label would mean another class: point DATA.DATA_PATH at the data it was "
                        f"trained on ({first_difference(trained_classes, class_names)})")
    return (f"fine-tuning from {path}, trained on other classes ({listed_names(trained_classes)}): its "
            f"classifier starts afresh for the {len(class_names)} classes of {data_path}")


def classifier_kept(model: nn.Module, weights: dict) -> bool:
    """Whether models.pretrained.load_pretrained loaded `weights`' classifier into `model`'s: it
    does where the shapes agree, and never into an embedding model's own classifier from the
    weights of a plain one (those fit its backbone)."""
    if isinstance(model, EmbeddingClassifier) and not any(key.startswith("backbone.") for key in weights):
        return False
    classifier = model.get_classifier()
    prefix = next(name for name, module in model.named_modules() if module is classifier)
    return getattr(weights.get(f"{prefix}.weight"), "shape", None) == classifier.weight.shape


def listed_names(names: list[str]) -> str:
    """The first four class names, for a one-line message."""
    return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")


def first_difference(trained_classes: list[str], class_names: list[str]) -> str:
    """Where two class lists part, for a one-line message: "label 3 was cat, here dog"."""
    for label, (trained, named) in enumerate(zip(trained_classes, class_names)):
        if trained != named:
            return f"label {label} was {trained}, here {named}"
    return f"{len(trained_classes)} classes then, {len(class_names)} here"


def remove_resume_checkpoint(run_dir: str, keep: str) -> None:
    """Remove last.pth at the end of a run unless SAVE.CHECKPOINTS (`keep`) keeps it: it was
    written only so that the run could resume."""
    last_path = os.path.join(run_dir, LAST_CHECKPOINT)
    if keep in ("best", "none") and os.path.isfile(last_path):
        os.remove(last_path)
