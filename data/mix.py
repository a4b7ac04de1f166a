"""Mixup and CutMix on whole device batches, with torchvision's `transforms.v2.MixUp` / `CutMix`.

They run after normalisation, on the batch already on the device, and turn the integer labels
into soft targets (rows summing to 1) that the cross-entropy loss takes as they are.

Every draw of a batch (whether to mix, which mixer, its lambda and box) comes from a stream
seeded by `data.sampler.mix_seed(seed, epoch, batch index)`, as the batched augmentation's do:
a batch is mixed the same way whatever ran before it, in a resumed run as in an uninterrupted one.
"""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from data.sampler import mix_seed


class BatchMixer:
    """With probability `prob`, mix a batch: CutMix with probability `switch_prob` when both are
    on, else Mixup. Returns (images, targets): soft (B, num_classes) targets whenever a mixer is
    on, so that every batch of a run has the same target type; one-hot for an unmixed batch.

    Call it as `mixer(images, targets, epoch, batch_index)`; the draws of batch `batch_index` of
    `epoch` depend on (`seed`, epoch, batch_index) alone.
    """

    def __init__(self, mixup_alpha: float, cutmix_alpha: float, prob: float, switch_prob: float, num_classes: int,
                 seed: int = 0):
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
        self.seed = seed

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, epoch: int,
                 batch_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        # torchvision's mixers draw from torch's global CPU generator, and take no other. It is
        # seeded for this batch inside fork_rng, which gives the training its own state back:
        # what the run drew before (a loader, dropout) cannot shift the mixing, nor the mixing them.
        with torch.random.fork_rng(devices=[]):
            # Not torch.manual_seed: that would reseed the CUDA generators too.
            torch.default_generator.manual_seed(mix_seed(self.seed, epoch, batch_index))
            if torch.rand(()).item() < self.prob:
                return self.mix(images, targets)
        return images, torch.nn.functional.one_hot(targets, self.num_classes).to(images.dtype)


def build_batch_mixer(mixup_alpha: float, cutmix_alpha: float, prob: float, switch_prob: float,
                      num_classes: int, seed: int = 0) -> BatchMixer | None:
    """A BatchMixer whose draws follow `seed`, or None when both alphas are 0 (the default: no mixing)."""
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return None
    return BatchMixer(mixup_alpha, cutmix_alpha, prob, switch_prob, num_classes, seed)
