"""Resume: what may change when a run continues from its checkpoint, where it continues, and
restoring the optimizer, schedule, scaler, RNG and best-so-far to that point.

Continuing a run (or forking it into a new folder) keeps the config stored in its checkpoint:
the optimizer, scheduler and model states in the file only make sense with it. A few keys only
say how or where the run executes, or how long it goes on, and may differ; anything else means
a different experiment, which starts from the weights with MODEL.PRETRAINED instead.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from config import flatten, get_config
from engine.checkpoint import restore_rng_state
from engine.launch import restart_count
from engine.loop import EpochProgress
from engine.parts import TrainingParts
from engine.run_dir import experiment_dir, fold_label, new_run_dir, plan_run_dir, tag_with_fold
from evaluation.selection import BestSoFar, format_score
from optimizer import load_scheduler_state, lr_at_current_step
from utils.checkpoint_io import load_checkpoint
from utils.distributed import broadcast_from_main, is_main_process
from utils.errors import UserError

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
    "SUBMISSION.FORMAT", "SUBMISSION.TOPK", "TEST.TEMPERATURE",  # likewise, and the saved probabilities
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


@dataclass
class RunPlan:
    """Where a training run goes and what it starts from, decided before anything is written."""
    cfg: object
    run_dir: str
    resume_path: str = ""  # "" for a run from scratch
    checkpoint: dict | None = None
    notes: list[str] = field(default_factory=list)  # what resuming changed or ignored, for the log


def plan_run(cfg, cfg_file: str | None, checkpoint_opts: list[str]) -> RunPlan:
    """Rank 0 picks the folder and the checkpoint (`--resume`, or this run's last.pth when torchrun
    restarted the group); every rank then loads the checkpoint and derives the same config.

    `cfg_file` is the --cfg file `cfg` was read from (None without one), and `checkpoint_opts` the
    command's flags and --opts as KEY VALUE pairs to lay over a checkpoint's own config."""
    restarted = not cfg.MODEL.RESUME and restart_count() > 0
    resume = "auto" if restarted else cfg.MODEL.RESUME
    parent = experiment_dir(cfg.OUTPUT, cfg.MODEL.NAME, cfg.DATA.DATASET)
    fold = fold_label(cfg.DATA.FOLDS, cfg.DATA.FOLD)
    run_dir, resume_path = decided_on_main(lambda: plan_run_dir(cfg.OUTPUT, parent, cfg.TAG, resume, restarted,
                                                                fold))
    if not resume_path:
        return RunPlan(cfg, run_dir)
    checkpoint = load_checkpoint(resume_path)
    resumed, notes = config_for_resume(cfg, cfg_file, checkpoint_opts, checkpoint, resume_path)
    if not run_dir:  # a fork: a new folder, named for the model and data it goes on training
        run_dir = decided_on_main(lambda: new_run_dir(
            experiment_dir(cfg.OUTPUT, resumed.MODEL.NAME, resumed.DATA.DATASET), cfg.TAG,
            fold_label(resumed.DATA.FOLDS, resumed.DATA.FOLD)))
    elif cfg.TAG and tag_with_fold(cfg.TAG, fold) != os.path.basename(run_dir):
        notes.append(f"--tag {cfg.TAG} is not used: {resume_path} continues the run in {run_dir}")
    # config.yaml then says where the run lives, wherever its checkpoint was first written.
    resumed.defrost()
    resumed.OUTPUT, resumed.TAG = os.path.dirname(os.path.dirname(run_dir)), os.path.basename(run_dir)
    resumed.freeze()
    return RunPlan(resumed, run_dir, resume_path, checkpoint, notes)


def decided_on_main(decide: Callable[[], Any]) -> Any:
    """What `decide()` returns on rank 0, on every rank; its UserError is raised on every rank."""
    try:
        chosen, error = (decide() if is_main_process() else None), None
    except UserError as e:
        chosen, error = None, str(e)
    chosen, error = broadcast_from_main((chosen, error))
    if error:
        raise UserError(error)
    return chosen


def config_for_resume(cfg, cfg_file: str | None, checkpoint_opts: list[str], checkpoint: dict, path: str):
    """(the checkpoint's config with this command's flags and --opts, `checkpoint_opts`, applied,
    log notes).

    Only RESUMABLE_KEYS may differ; any other difference is one UserError line.
    What --cfg's file says is not applied (a run keeps its own config), only noted.
    """
    stored = get_config(base_yaml=checkpoint["config"])
    resumed = get_config(None, checkpoint_opts, base_yaml=checkpoint["config"])
    stored_keys, resumed_keys = flatten(stored), flatten(resumed)
    changed = differing_keys(stored_keys, resumed_keys)
    refused = [key for key in changed if not may_change_on_resume(key)]
    if refused:
        listed = ", ".join(f"{key} ({resumed_keys[key]!r}; the run has {stored_keys[key]!r})" for key in refused)
        raise UserError(f"{path} continues with the config it was trained with, and this command changes {listed}; "
                        f"only {', '.join(RESUMABLE_KEYS)} and WANDB.* may change on resume. To train from those "
                        f"weights with other settings, start a new run with --opts MODEL.PRETRAINED {path}")
    start_epoch = checkpoint["epoch"] + 1
    if start_epoch >= resumed.TRAIN.EPOCHS:
        raise UserError(f"{path} has already trained {start_epoch} of {resumed.TRAIN.EPOCHS} epochs, so there is "
                        f"nothing left to train; raise TRAIN.EPOCHS (--opts TRAIN.EPOCHS N) to train longer, or "
                        f"score it with --eval / --predict")
    notes = [f"resume changes {describe_change(key, stored_keys, resumed_keys)}" for key in changed]
    if cfg_file:
        from_file = flatten(cfg)
        ignored = [key for key in differing_keys(stored_keys, from_file) if key not in changed]
        if ignored:
            notes.append(f"the run keeps its own config, not {cfg_file}'s " + ", ".join(
                f"{key} {from_file[key]!r} (the run has {stored_keys[key]!r})" for key in ignored)
                + "; pass --opts to change a key that may change on resume")
    return resumed, notes


@dataclass
class StartingPoint:
    """Where training starts: from a checkpoint, or from TRAIN.START_EPOCH."""
    epoch: int
    best: BestSoFar = field(default_factory=BestSoFar)
    wandb_id: str | None = None
    progress: EpochProgress = field(default_factory=EpochProgress)


def restore_training_state(plan: RunPlan, parts: TrainingParts, scheduler, steps_per_epoch: int,
                           logger) -> StartingPoint:
    """From the checkpoint, whose optimizer, scheduler, scaler and RNG states are restored, or
    else TRAIN.START_EPOCH, with the LR schedule moved to where that epoch would have it. A
    checkpoint of another run folder starts a new run: no best yet and a W&B run of its own.
    """
    checkpoint, cfg = plan.checkpoint, plan.cfg
    if checkpoint is None:
        # Stepping the schedule without optimizer updates is the point here, so torch's warning
        # about that order does not apply.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(cfg.TRAIN.START_EPOCH * steps_per_epoch):
                scheduler.step()
        return StartingPoint(cfg.TRAIN.START_EPOCH, BestSoFar(cfg.TEST.SELECT_METRIC))
    parts.optimizer.load_state_dict(checkpoint["optimizer"])
    parts.train_criterion.load_state_dict(checkpoint.get("loss") or {})
    load_scheduler_state(scheduler, checkpoint["scheduler"])
    # The schedule is this config's (TRAIN.EPOCHS may have changed): apply it from the current step.
    for group, lr in zip(parts.optimizer.param_groups, lr_at_current_step(scheduler) or []):
        group["lr"] = lr
    if parts.scaler.is_enabled() and checkpoint["scaler"]:
        parts.scaler.load_state_dict(checkpoint["scaler"])
    elif parts.scaler.is_enabled():
        logger.info("fp16 loss scaling starts afresh: the checkpoint was trained without it (bf16, fp32 or CPU)")
    restore_rng_state(checkpoint["rng"])
    progress = EpochProgress(**checkpoint["progress"]) if checkpoint.get("progress") else EpochProgress()
    epoch = checkpoint["epoch"] + 1
    where = f"epoch {epoch + 1}" + (f" at batch {progress.batches_done + 1}" if progress.batches_done else "")
    if os.path.dirname(os.path.abspath(plan.resume_path)) != os.path.abspath(plan.run_dir):
        logger.info("started from %s as a new run (its own best.pth and W&B run): continuing with %s",
                    plan.resume_path, where)
        return StartingPoint(epoch, BestSoFar(cfg.TEST.SELECT_METRIC), progress=progress)
    best = BestSoFar.from_checkpoint(checkpoint)
    logger.info("resumed from %s: continuing with %s (best %s so far %s)", plan.resume_path, where, best.label,
                format_score(best.score, best.metric) if best.score is not None else "none yet")
    return StartingPoint(epoch, best, checkpoint["wandb_id"], progress)
