"""Build the optimizer and the learning-rate scheduler from the config."""
from __future__ import annotations

import torch
from torch import nn

from utils.choices import resolve_choice
from utils.lr_scheduler import ConstantSchedule, CosineSchedule, StepSchedule

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "radam")
SCHEDULERS = ("cosine", "step", "constant")


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


def build_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """TRAIN.OPTIMIZER.NAME over the model's trainable parameters, at TRAIN.LR."""
    opt = cfg.TRAIN.OPTIMIZER
    name = resolve_choice("TRAIN.OPTIMIZER.NAME", opt.NAME, OPTIMIZERS)
    groups = parameter_groups(model, cfg.TRAIN.WEIGHT_DECAY, cfg.TRAIN.DECAY_NORM_AND_BIAS)
    lr, betas = cfg.TRAIN.LR, tuple(opt.BETAS)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=opt.MOMENTUM, nesterov=opt.NESTEROV and opt.MOMENTUM > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, eps=opt.EPS)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=opt.EPS)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=opt.MOMENTUM, eps=opt.EPS)
    return torch.optim.RAdam(groups, lr=lr, betas=betas, eps=opt.EPS)


def build_scheduler(cfg, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-update LambdaLR following TRAIN.LR_SCHEDULER with TRAIN.WARMUP_EPOCHS of warmup."""
    train = cfg.TRAIN
    common = dict(base_lr=train.LR, warmup_lr=train.WARMUP_LR, warmup_steps=train.WARMUP_EPOCHS * steps_per_epoch)
    name = resolve_choice("TRAIN.LR_SCHEDULER.NAME", train.LR_SCHEDULER.NAME, SCHEDULERS)
    if name == "cosine":
        schedule = CosineSchedule(**common, min_lr=train.MIN_LR, total_steps=train.EPOCHS * steps_per_epoch)
    elif name == "step":
        schedule = StepSchedule(**common, decay_steps=train.LR_SCHEDULER.DECAY_EPOCHS * steps_per_epoch,
                                decay_rate=train.LR_SCHEDULER.DECAY_RATE)
    else:
        schedule = ConstantSchedule(**common)
    # LambdaLR multiplies each group's initial lr (TRAIN.LR) by the factor.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step) / train.LR)
