"""Where a run's files go, which checkpoint `--resume auto` continues from, and the files every
run folder starts with (config.yaml, log.txt, classes.json)."""
from __future__ import annotations

import json
import logging
import os
import time

import torch

from data import Loaders
from engine.summary import SUMMARY_FILE, read_summary
from utils.errors import UserError
from utils.logger import create_logger

LAST_CHECKPOINT = "last.pth"
BEST_CHECKPOINT = "best.pth"


def experiment_dir(output: str, model_name: str, dataset: str) -> str:
    """OUTPUT/<model>_<dataset>: the parent of every run of one model on one data set."""
    return os.path.join(output, f"{model_name}_{dataset}")


def latest_run_with_checkpoint(parent: str) -> str | None:
    """The most recently written run folder under `parent` that holds a last.pth."""
    if not os.path.isdir(parent):
        return None
    candidates = [os.path.join(parent, name) for name in os.listdir(parent)
                  if os.path.isfile(os.path.join(parent, name, LAST_CHECKPOINT))]
    if not candidates:
        return None
    return max(candidates, key=lambda run: os.path.getmtime(os.path.join(run, LAST_CHECKPOINT)))


def plan_run_dir(parent: str, tag: str, resume: str) -> tuple[str, str]:
    """Choose the run folder (without creating it) and return (run_dir, checkpoint to resume or "").

    - resume "auto": continue the run named by `tag`, or without a tag the newest run that has a
      checkpoint; a run with no checkpoint yet starts from scratch in that folder, unless it
      finished (its SAVE.CHECKPOINTS kept no last.pth), which is refused.
    - resume PATH: a new run folder (or the `tag` one) that starts from PATH.
    - otherwise a new folder; an existing `tag` folder that already holds a run (checkpoints or
      a summary.json) is refused, so that re-running never overwrites a previous run.
    """
    if resume == "auto":
        run_dir = os.path.join(parent, tag) if tag else latest_run_with_checkpoint(parent)
        if run_dir is None:
            run_dir = new_timestamped_dir(parent)
        last = os.path.join(run_dir, LAST_CHECKPOINT)
        if os.path.isfile(last):
            return run_dir, last
        if (read_summary(run_dir) or {}).get("status") == "finished":
            raise UserError(f"run {run_dir} has finished and kept no last.pth to continue from; start "
                            f"another with a different --tag")
        return run_dir, ""
    if tag:
        run_dir = os.path.join(parent, tag)
        if any(os.path.isfile(os.path.join(run_dir, name)) for name in (LAST_CHECKPOINT, BEST_CHECKPOINT,
                                                                         SUMMARY_FILE)):
            raise UserError(f"run folder {run_dir} already holds a run; continue it with --resume auto "
                            f"or start another with a different --tag")
    else:
        run_dir = new_timestamped_dir(parent)
    return run_dir, resume


def new_timestamped_dir(parent: str, prefix: str = "") -> str:
    """parent/<prefix>YYYYmmdd-HHMMSS (not created), with a -2, -3 ... suffix if that name is taken."""
    stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
    run_dir, suffix = os.path.join(parent, stamp), 1
    while os.path.exists(run_dir):
        suffix += 1
        run_dir = os.path.join(parent, f"{stamp}-{suffix}")
    return run_dir


def open_run_dir(cfg, run_dir: str, device: torch.device) -> logging.Logger:
    """Create the run folder with its config.yaml and log.txt; returns the logger, which has said
    where the run lives and what of the config it cannot honour."""
    os.makedirs(run_dir, exist_ok=True)
    logger = create_logger(run_dir)
    with open(os.path.join(run_dir, "config.yaml"), "w", encoding="utf-8") as f:
        f.write(cfg.dump())
    logger.info("run folder: %s", run_dir)
    if device.type != "cuda":
        logger.info("running on %s: TRAIN.MIXED_PRECISION, CHANNELS_LAST, COMPILE and CUDNN_BENCHMARK "
                    "apply on CUDA only, so this run is plain fp32", device)
    if cfg.TRAIN.WARMUP_EPOCHS and 2 * cfg.TRAIN.WARMUP_EPOCHS >= cfg.TRAIN.EPOCHS:
        logger.warning("warning: TRAIN.WARMUP_EPOCHS is %d of %d epochs, so the LR schedule barely starts before "
                       "the run ends; lower TRAIN.WARMUP_EPOCHS for short runs", cfg.TRAIN.WARMUP_EPOCHS,
                       cfg.TRAIN.EPOCHS)
    return logger


def record_data(logger, run_dir: str | None, loaders: Loaders) -> None:
    """Log what opening the data noted (images left out, the cache), and write classes.json into
    `run_dir` (None on torchrun's ranks other than 0): the class names in label order, so that a
    label index can be read back."""
    for note in loaders.notes:
        logger.info(note)
    if run_dir is None:
        return
    tmp_path = os.path.join(run_dir, f"classes.json.tmp-{os.getpid()}")
    with open(tmp_path, "w", encoding="utf-8") as f:
        json.dump(loaders.class_names, f, ensure_ascii=False, indent=0)
    os.replace(tmp_path, os.path.join(run_dir, "classes.json"))


def study_dir(cfg, kind: str) -> str:
    """A fresh OUTPUT/<model>_<dataset>/<kind>-<time> folder for a study that is not a run."""
    folder = new_timestamped_dir(experiment_dir(cfg.OUTPUT, cfg.MODEL.NAME, cfg.DATA.DATASET), prefix=f"{kind}-")
    os.makedirs(folder)
    return folder


def log_outputs(logger, folder: str) -> None:
    """The last line of every mode: where its files are (hidden files and W&B's folder left out)."""
    names = sorted(name for name in os.listdir(folder) if not name.startswith(".") and name != "wandb")
    logger.info("outputs in %s: %s", folder, ", ".join(names))
