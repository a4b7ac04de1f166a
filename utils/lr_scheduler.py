"""Learning-rate schedules as plain functions of the optimizer step, with linear warmup.

Each schedule maps a step (one optimizer update) to a learning rate. `optimizer.build_scheduler`
wraps one in torch's LambdaLR, which is stepped after every update, so warmup rises smoothly
instead of jumping once per epoch. Being a pure function of the step, a schedule resumes exactly
and re-plans for a new TRAIN.EPOCHS from the step it has reached. One-cycle (torch's OneCycleLR,
which also cycles momentum) and plateau (torch's ReduceLROnPlateau, which depends on the val
metric) are torch's own; see `optimizer.py`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


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
