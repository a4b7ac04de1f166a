"""The learning-rate range test (Smith, 2015; fastai's and Lightning's `lr_find`).

Train for a short while with the learning rate growing exponentially from `min_lr` to
`max_lr`, one step each, and record the loss. The loss first stalls (LR too small), then
falls, then blows up (LR too large); the suggested LR is where the smoothed loss falls
fastest. `run_lr_find` is `main.py --lr-find`: the test on the configured run, written as
lr_find.csv and lr_find.png.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from engine.build import build_training_parts, run_title, seed_everything
from engine.run_dir import log_outputs, study_dir
from engine.train_step import train_step
from evaluation.plots import lr_find_figure, save_figure
from utils.device import DeviceSetup
from utils.logger import create_logger

MIN_LR = 1e-7
MAX_LR = 10.0
NUM_STEPS = 100
# Weight of the running average in the smoothed loss (the bias-corrected EMA fastai uses).
SMOOTHING = 0.98
# The test stops once the smoothed loss exceeds this many times its lowest value.
DIVERGENCE_FACTOR = 4.0
# Points at the start (the average is still settling) and the end (divergence) that the
# suggestion skips, as Lightning does.
SKIP_START, SKIP_END = 10, 5


@dataclass
class LrFindResult:
    lrs: list[float]
    losses: list[float]  # raw loss per step
    smoothed: list[float]
    suggestion: float | None  # None when too few steps ran to suggest one


def lr_at_step(step: int, num_steps: int, min_lr: float, max_lr: float) -> float:
    """Exponential interpolation: min_lr at step 0, max_lr at step num_steps - 1."""
    return min_lr * (max_lr / min_lr) ** (step / max(1, num_steps - 1))


def suggest_lr(lrs: list[float], smoothed: list[float], skip_start: int = SKIP_START,
               skip_end: int = SKIP_END) -> float | None:
    """The LR where the smoothed loss descends most steeply (per step, i.e. per log-LR)."""
    stop = len(smoothed) - skip_end
    if stop - skip_start < 3:
        return None
    slopes = np.gradient(np.asarray(smoothed[skip_start:stop]))
    return float(lrs[skip_start + int(np.argmin(slopes))])


def _endless(loader: Iterable) -> Iterator:
    pass_number = 0
    while True:
        if hasattr(getattr(loader, "sampler", None), "set_epoch"):
            loader.sampler.set_epoch(pass_number)
        yield from loader
        pass_number += 1


def lr_range_test(model: nn.Module, normalize: nn.Module, loader: Iterable, criterion,
                  optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, setup: DeviceSetup,
                  min_lr: float = MIN_LR, max_lr: float = MAX_LR, num_steps: int = NUM_STEPS) -> LrFindResult:
    """Run the range test; the model and optimizer are changed, so pass throwaway ones."""
    model.train()
    lrs, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    batches = _endless(loader)
    for step in range(num_steps):
        lr = lr_at_step(step, num_steps, min_lr, max_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        images, targets = next(batches)
        loss = train_step(model, normalize, images, targets, criterion, optimizer, scaler, setup).item()
        if not math.isfinite(loss):
            break
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        value = average / (1 - SMOOTHING ** (step + 1))
        lrs.append(lr)
        losses.append(loss)
        smoothed.append(value)
        best = min(best, value)
        if value > DIVERGENCE_FACTOR * best:
            break
    return LrFindResult(lrs, losses, smoothed, suggest_lr(lrs, smoothed))


def run_lr_find(cfg, device: torch.device) -> float | None:
    """--lr-find: the LR range test on the run's model, optimizer and data; saves nothing of the model."""
    logger = create_logger(None)
    seed_everything(cfg.SEED)
    parts = build_training_parts(cfg, device)
    out_dir = study_dir(cfg, "lr-find")
    result = lr_range_test(parts.forward_model, parts.normalize, parts.loaders.train_loader, parts.criterion,
                           parts.optimizer, parts.scaler, parts.setup)
    pd.DataFrame({"lr": result.lrs, "loss": result.losses, "smoothed_loss": result.smoothed}).to_csv(
        os.path.join(out_dir, "lr_find.csv"), index=False)
    save_figure(lr_find_figure(result.lrs, result.smoothed, result.suggestion,
                               f"{run_title(cfg, out_dir, parts.loaders.subsets)} | LR range test"),
                os.path.join(out_dir, "lr_find.png"))
    if result.suggestion is None:
        logger.info("no suggestion: the loss diverged after only %d steps of the range %.0e to %.0e; check "
                    "that the model trains at all with a short run at a small TRAIN.LR", len(result.lrs),
                    MIN_LR, MAX_LR)
    else:
        logger.info("suggested LR: %.2e (steepest descent of the smoothed loss); train with --opts TRAIN.LR %.2e",
                    result.suggestion, result.suggestion)
    log_outputs(logger, out_dir)
    return result.suggestion
