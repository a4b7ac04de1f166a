"""Build the optimizer and the learning-rate scheduler from the config."""
from __future__ import annotations

import warnings

import torch
from torch import nn

from utils.choices import resolve_choice

from utils.lr_scheduler import (ConstantSchedule, CosineSchedule, ExponentialSchedule, MultiStepSchedule,
                                PolynomialSchedule, StepSchedule, WarmupOnly)

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
