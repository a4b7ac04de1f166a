"""Build the optimizer and the learning-rate scheduler from the config.

The schedules at the end of this file are plain functions of the optimizer step, with linear
warmup. `build_scheduler` wraps one in torch's LambdaLR, which is stepped after every update, so
warmup rises smoothly instead of jumping once per epoch. Being a pure function of the step, a
schedule resumes exactly and re-plans for a new TRAIN.EPOCHS from the step it has reached.
One-cycle (torch's OneCycleLR, which also cycles momentum) and plateau (torch's
ReduceLROnPlateau, which depends on the val metric) are torch's own.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from utils.choices import resolve_choice

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "radam")
SCHEDULERS = ("cosine", "step", "multistep", "exponential", "polynomial", "constant", "onecycle", "plateau")
PLATEAU_METRICS = ("val_loss", "val_acc1")


def parameter_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    """Two groups: weights that decay, and those that don't: norm parameters and biases (1-d
    tensors), plus whatever the model lists in its `no_weight_decay()` (e.g. layer scales).

    Decaying a norm's scale or a bias only pulls it towards zero without regularising anything.
    """
    exempt = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        skip = parameter.ndim <= 1 or name in exempt
        (no_decay if skip and not decay_norm_and_bias else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(cfg, model: nn.Module, loss: nn.Module | None = None) -> torch.optim.Optimizer:
    """TRAIN.OPTIMIZER.NAME over the model's trainable parameters, and those of `loss` (ArcFace's
    class centres, say), at TRAIN.LR."""
    opt = cfg.TRAIN.OPTIMIZER
    name = resolve_choice("TRAIN.OPTIMIZER.NAME", opt.NAME, OPTIMIZERS)
    groups = parameter_groups(model, cfg.TRAIN.WEIGHT_DECAY, cfg.TRAIN.DECAY_NORM_AND_BIAS)
    # Class centres are weight matrices, and decay like the classifier they stand in for. Plain
    # cross-entropy has none, so its optimizer state is what it was before losses had parameters.
    groups[0]["params"] += [p for p in (loss.parameters() if loss is not None else ()) if p.requires_grad]
    lr, betas = cfg.TRAIN.LR, tuple(opt.BETAS)
    # The fastest implementation of each, measured on ResNet-18's parameters on the CPU
    # (BENCHMARKS.md): fused kernels where torch has them (on CUDA and CPU alike), foreach for
    # RAdam; RMSprop keeps torch's default, whose foreach form is slower on the CPU.
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=opt.MOMENTUM, nesterov=opt.NESTEROV and opt.MOMENTUM > 0,
                               fused=True)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, eps=opt.EPS, fused=True)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=opt.EPS, fused=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=opt.MOMENTUM, eps=opt.EPS)
    return torch.optim.RAdam(groups, lr=lr, betas=betas, eps=opt.EPS, foreach=True)


def build_scheduler(cfg, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """TRAIN.LR_SCHEDULER, stepped after every optimizer update (`.step()`); the plateau schedule
    also takes the val metrics once per epoch (`.step_epoch(metrics)`).

    Every schedule starts with TRAIN.WARMUP_EPOCHS of linear warmup except one-cycle, whose
    first ONECYCLE_PCT_START of the run is its own warmup.
    """
    train, sched = cfg.TRAIN, cfg.TRAIN.LR_SCHEDULER
    warmup_steps = train.WARMUP_EPOCHS * steps_per_epoch
    total_steps = train.EPOCHS * steps_per_epoch
    common = dict(base_lr=train.LR, warmup_lr=train.WARMUP_LR, warmup_steps=warmup_steps)
    name = resolve_choice("TRAIN.LR_SCHEDULER.NAME", sched.NAME, SCHEDULERS)
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=train.LR, total_steps=total_steps,
                                                   pct_start=sched.ONECYCLE_PCT_START)
    if name == "plateau":
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: WarmupOnly(**common)(step) / train.LR)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min" if sched.PLATEAU_METRIC == "val_loss" else "max", factor=sched.DECAY_RATE,
            patience=sched.PATIENCE, min_lr=train.MIN_LR)
        return PlateauAfterWarmup(warmup, plateau, warmup_steps, sched.PLATEAU_METRIC)
    schedules = {
        "cosine": lambda: CosineSchedule(**common, min_lr=train.MIN_LR, total_steps=total_steps),
        "step": lambda: StepSchedule(**common, decay_steps=sched.DECAY_EPOCHS * steps_per_epoch,
                                     decay_rate=sched.DECAY_RATE),
        "multistep": lambda: MultiStepSchedule(
            **common, milestones=tuple(epoch * steps_per_epoch - warmup_steps for epoch in sched.MILESTONES),
            decay_rate=sched.DECAY_RATE),
        "exponential": lambda: ExponentialSchedule(**common, decay_rate=sched.DECAY_RATE,
                                                   steps_per_epoch=steps_per_epoch),
        "polynomial": lambda: PolynomialSchedule(**common, min_lr=train.MIN_LR, total_steps=total_steps,
                                                 power=sched.POWER),
        "constant": lambda: ConstantSchedule(**common),
    }
    schedule = schedules[name]()
    # LambdaLR multiplies each group's initial lr (TRAIN.LR) by the factor.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step) / train.LR)


class PlateauAfterWarmup:
    """Linear warmup per update, then ReduceLROnPlateau on a val metric once per epoch.

    torch's ReduceLROnPlateau lowers the optimizer's LR in place, so the warmup stops being
    stepped once it is over, and the two never fight over the LR.
    """

    def __init__(self, warmup: torch.optim.lr_scheduler.LambdaLR,
                 plateau: torch.optim.lr_scheduler.ReduceLROnPlateau, warmup_steps: int, metric: str):
        self.warmup, self.plateau, self.warmup_steps, self.metric = warmup, plateau, warmup_steps, metric

    def step(self) -> None:
        if self.warmup.last_epoch < self.warmup_steps:
            self.warmup.step()

    def step_epoch(self, metrics: dict[str, float]) -> None:
        if self.warmup.last_epoch >= self.warmup_steps:
            self.plateau.step(metrics[self.metric])

    def state_dict(self) -> dict:
        return {"warmup": self.warmup.state_dict(), "plateau": self.plateau.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.warmup.load_state_dict(state["warmup"])
        self.plateau.load_state_dict(state["plateau"])


def load_scheduler_state(scheduler, state: dict) -> None:
    """Restore a scheduler's position from a checkpoint. One-cycle keeps this config's plan (its
    total steps) and takes only the step reached, so that a new TRAIN.EPOCHS re-plans it."""
    if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
        scheduler.last_epoch = state["last_epoch"]
    else:
        scheduler.load_state_dict(state)


def lr_at_current_step(scheduler) -> list[float] | None:
    """Each group's LR that this scheduler's plan gives at the step it has reached, or None when
    the LR depends on more than the step (plateau): used to apply a re-planned schedule (a
    resumed run with another TRAIN.EPOCHS) from the current step."""
    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        return [base_lr * factor(scheduler.last_epoch)
                for base_lr, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
        with warnings.catch_warnings():  # get_lr() outside step() warns, but is the closed form we want
            warnings.simplefilter("ignore", UserWarning)
            return scheduler.get_lr()
    return None


# Learning-rate schedules: each maps an optimizer step to a learning rate.

@dataclass(frozen=True)
class WarmupSchedule:
    """Linear warmup from warmup_lr to base_lr over warmup_steps, then `decay` takes over.

    `decay(step_after_warmup)` returns the learning rate for the remaining steps.
    """
    base_lr: float
    warmup_lr: float
    warmup_steps: int

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_lr + (self.base_lr - self.warmup_lr) * step / self.warmup_steps
        return self.decay(step - self.warmup_steps)

    def decay(self, step: int) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class CosineSchedule(WarmupSchedule):
    """Cosine decay from base_lr to min_lr over the steps after warmup."""
    min_lr: float
    total_steps: int

    def decay(self, step: int) -> float:
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(step, span) / span
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class StepSchedule(WarmupSchedule):
    """base_lr multiplied by decay_rate every decay_steps steps after warmup."""
    decay_steps: int
    decay_rate: float

    def decay(self, step: int) -> float:
        return self.base_lr * self.decay_rate ** (step // max(1, self.decay_steps))


@dataclass(frozen=True)
class ConstantSchedule(WarmupSchedule):
    """base_lr after warmup."""

    def decay(self, step: int) -> float:
        return self.base_lr


@dataclass(frozen=True)
class MultiStepSchedule(WarmupSchedule):
    """base_lr multiplied by decay_rate at each milestone (a step count after warmup)."""
    milestones: tuple[int, ...]
    decay_rate: float

    def decay(self, step: int) -> float:
        return self.base_lr * self.decay_rate ** sum(step >= milestone for milestone in self.milestones)


@dataclass(frozen=True)
class ExponentialSchedule(WarmupSchedule):
    """base_lr multiplied by decay_rate once per epoch, spread smoothly over its steps."""
    decay_rate: float
    steps_per_epoch: int

    def decay(self, step: int) -> float:
        return self.base_lr * self.decay_rate ** (step / max(1, self.steps_per_epoch))


@dataclass(frozen=True)
class PolynomialSchedule(WarmupSchedule):
    """From base_lr to min_lr along (1 - progress) ** power over the steps after warmup (power 1
    is linear decay)."""
    min_lr: float
    total_steps: int
    power: float

    def decay(self, step: int) -> float:
        span = max(1, self.total_steps - self.warmup_steps)
        remaining = 1.0 - min(step, span) / span
        return self.min_lr + (self.base_lr - self.min_lr) * remaining ** self.power


@dataclass(frozen=True)
class WarmupOnly(WarmupSchedule):
    """The warmup, then base_lr: what the plateau schedule steps per update, before
    ReduceLROnPlateau takes over per epoch."""

    def decay(self, step: int) -> float:
        return self.base_lr
