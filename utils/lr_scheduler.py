"""Learning-rate schedules as plain functions of the optimizer step, with linear warmup.

Each schedule maps a step (one optimizer update) to a learning rate. `optimizer.build_scheduler`
wraps one in torch's LambdaLR, which is stepped after every update, so warmup rises smoothly
instead of jumping once per epoch.
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
