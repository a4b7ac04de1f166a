"""Averages of the weights over training, on torch.optim.swa_utils.

- An exponential moving average (EMA) of the parameters and BatchNorm buffers, updated after
  every optimizer update and scored on val every epoch beside the raw weights.
- Stochastic weight averaging (SWA, Izmailov et al., 2018): an equal average of the weights at
  the end of each epoch from a start epoch on, while SWALR holds the LR near a constant; its
  BatchNorm statistics are recomputed over the train split at the end (update_bn).

A checkpoint keeps each average's AveragedModel.state_dict() (the module's weights under
"module." and the count under "n_averaged"), and says in "eval_weights" which weights scored
best on val: "model", "ema" or "swa". --eval, --predict and the submission use those.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn, update_bn


def ema_decay(decay: float, updates: int, warmup: bool) -> float:
    """The decay of the update that follows `updates` averaged ones. With warmup it is
    min(decay, (1 + updates) / (10 + updates)), TensorFlow's ExponentialMovingAverage with
    num_updates: the first averages follow the fast-moving early weights instead of holding on
    to the random initialisation for thousands of updates."""
    return min(decay, (1 + updates) / (10 + updates)) if warmup else decay


class ExponentialMovingAverage(AveragedModel):
    """EMA of `model`'s parameters and buffers: after each update, ema = d * ema + (1 - d) * model
    with d = ema_decay(...); the first update copies the model. Integer buffers (BatchNorm's
    num_batches_tracked) are copied, not averaged.

    AveragedModel's own update_parameters reads its count with a host-device comparison on
    every call; here the count stays on the CPU, so an update never waits for the GPU.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool):
        super().__init__(model, use_buffers=True)
        self.module.eval().requires_grad_(False)
        self.decay, self.warmup = decay, warmup

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        averaged = [*self.module.parameters(), *self.module.buffers()]
        current = [*model.parameters(), *model.buffers()]
        updates = int(self.n_averaged)  # a CPU tensor: no device sync
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()]
        if updates == 0:
            for a, c in floats:
                a.copy_(c)
        elif floats:
            ema_lists = [list(column) for column in zip(*floats)]
            get_ema_multi_avg_fn(ema_decay(self.decay, updates, self.warmup))(*ema_lists, None)
        for a, c in zip(averaged, current, strict=True):
            if not a.is_floating_point():
                a.copy_(c)
        self.n_averaged += 1


class StochasticWeightAveraging:
    """SWA from `start_epoch` on (counted from 0): that epoch starts SWALR, which anneals the LR
    (cosine) to `swa_lr` over `anneal_epochs` epochs, and each of those epochs ends by adding the
    weights to an equal average. The per-update schedule is not stepped meanwhile."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, start_epoch: int, swa_lr: float,
                 anneal_epochs: int):
        self.average = AveragedModel(model)
        self.average.module.requires_grad_(False)
        self.optimizer, self.start_epoch, self.swa_lr, self.anneal_epochs = optimizer, start_epoch, swa_lr, anneal_epochs
        self.scheduler: SWALR | None = None

    def active(self, epoch: int) -> bool:
        return epoch >= self.start_epoch

    def begin_epoch(self, epoch: int) -> None:
        if self.active(epoch) and self.scheduler is None:
            # SWALR's first step leaves the LR where the run's schedule brought it.
            self.scheduler = SWALR(self.optimizer, self.swa_lr, self.anneal_epochs, anneal_strategy="cos")

    def end_epoch(self, epoch: int, model: nn.Module) -> None:
        if self.active(epoch):
            self.average.update_parameters(model)
            self.scheduler.step()

    @property
    def epochs_averaged(self) -> int:
        return int(self.average.n_averaged)

    def recompute_batchnorm(self, batches: Iterable[torch.Tensor]) -> None:
        """update_bn over `batches` (normalised images on the device): BatchNorm statistics of
        the averaged weights, which no forward pass has produced."""
        update_bn(batches, self.average.module)

    def state_dict(self) -> dict:
        return {"average": self.average.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state["average"])
        if state["scheduler"] is not None:
            self.scheduler = SWALR(self.optimizer, self.swa_lr, self.anneal_epochs, anneal_strategy="cos")
            self.scheduler.load_state_dict(state["scheduler"])
            for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr()):
                group["lr"] = lr
