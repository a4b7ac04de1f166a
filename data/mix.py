"""Mixup and CutMix on whole device batches, with torchvision's `transforms.v2.MixUp` / `CutMix`.

They run after normalisation, on the batch already on the device, and turn the integer labels
into soft targets (rows summing to 1) that the cross-entropy loss takes as they are.
"""
from __future__ import annotations

import torch
from torchvision.transforms import v2


class BatchMixer:
    """With probability `prob`, mix a batch: CutMix with probability `switch_prob` when both are
    on, else Mixup. Returns (images, targets): soft (B, num_classes) targets whenever a mixer is
    on, so that every batch of a run has the same target type; one-hot for an unmixed batch."""

    def __init__(self, mixup_alpha: float, cutmix_alpha: float, prob: float, switch_prob: float, num_classes: int):
        mixers, weights = [], []
        if mixup_alpha > 0:
            mixers.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
            weights.append(1.0 - switch_prob if cutmix_alpha > 0 else 1.0)
        if cutmix_alpha > 0:
            mixers.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
            weights.append(switch_prob if mixup_alpha > 0 else 1.0)
        self.mix = v2.RandomChoice(mixers, p=weights)
        self.prob = prob
        self.num_classes = num_classes

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # One draw per batch from torch's CPU generator, which checkpoints capture, so a resumed
        # run mixes the same batches the same way.
        if torch.rand(()).item() < self.prob:
            return self.mix(images, targets)
        return images, torch.nn.functional.one_hot(targets, self.num_classes).to(images.dtype)


def build_batch_mixer(mixup_alpha: float, cutmix_alpha: float, prob: float, switch_prob: float,
                      num_classes: int) -> BatchMixer | None:
    """A BatchMixer, or None when both alphas are 0 (the default: no mixing)."""
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return None
    return BatchMixer(mixup_alpha, cutmix_alpha, prob, switch_prob, num_classes)
