"""Test-time augmentation: score several views of each image and average their probabilities.

    images (B, C, H, W) ──► views: V batches of (B, C, H, W) ──► one model call on (V*B, C, H, W)
        ──► softmax per view ──► mean over the V views ──► log: (B, K) log-probabilities

The views of each mode:
- none: the image itself;
- hflip: the image and its mirror;
- five_crop: the 4 corner crops and the centre crop, each EVAL_CROP_FRACTION of the side (the
  classic ImageNet 224-of-256 ratio), resized back to the full side so the model sees its usual size;
- ten_crop: those 5 and their mirrors.

Probabilities are averaged, not logits, so that one overconfident view cannot outvote the rest.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Callable, ContextManager

import torch
from torch import nn
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from data.transforms import EVAL_CROP_FRACTION

VIEWS_PER_MODE = {"none": 1, "hflip": 2, "five_crop": 5, "ten_crop": 10}
TTA_MODES = tuple(VIEWS_PER_MODE)  # ("none", "hflip", "five_crop", "ten_crop")


def num_views(mode: str) -> int:
    """How many views `mode` scores per image, i.e. how many times the model's eval compute it costs."""
    return VIEWS_PER_MODE[mode]


def _stacked_views(images: torch.Tensor, mode: str) -> torch.Tensor:
    """The views of `images` stacked view by view: (V*B, C, H, W), view v in rows v*B to (v+1)*B."""
    if mode not in VIEWS_PER_MODE:
        raise ValueError(f"unknown TTA mode {mode!r}; choose one of: {', '.join(TTA_MODES)}")
    if mode == "none":
        return images
    if mode == "hflip":
        stacked = torch.cat([images, TF.horizontal_flip(images)])
    else:
        height, width = images.shape[-2:]
        crop = [round(height * EVAL_CROP_FRACTION), round(width * EVAL_CROP_FRACTION)]
        crops = TF.ten_crop(images, crop) if mode == "ten_crop" else TF.five_crop(images, crop)
        # All crops share one size, so a single resize call serves every view.
        stacked = TF.resize(torch.cat(crops), [height, width], interpolation=InterpolationMode.BILINEAR,
                            antialias=True)
    # cat and resize may drop channels_last, which the model was placed in for speed.
    channels_last = images.is_contiguous(memory_format=torch.channels_last)
    return stacked.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def tta_views(images: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The views of a normalised batch (B, C, H, W) that `mode` scores, each (B, C, H, W).

    five_crop's are top-left, top-right, bottom-left, bottom-right, centre; ten_crop's are those,
    then the same five of the mirrored batch (torchvision's order), so that its views 5 to 9 are
    views 1, 0, 3, 2, 4 mirrored: the mirror of a top-left corner is a top-right one.
    """
    return list(_stacked_views(images, mode).chunk(num_views(mode)))


def tta_log_probs(model: nn.Module, images: torch.Tensor, mode: str,
                  autocast: Callable[[], ContextManager] = nullcontext) -> torch.Tensor:
    """log(mean over the views of softmax(model(view))): float32 (B, K) log-probabilities.

    Every view goes through the model in one batch of V*B images, which keeps a GPU busy; call it
    with the model in eval mode (models with auxiliary heads return them only in training).
    `autocast` makes the forward pass's mixed-precision context. For "none" this is
    log_softmax(model(images)), which ranks the classes exactly as the logits do.
    """
    views = num_views(mode)
    with autocast():
        logits = model(_stacked_views(images, mode))
    log_probs = logits.float().log_softmax(dim=1)
    if views == 1:
        return log_probs
    # log(mean(p)) as logsumexp(log p) - log V: exact where a class's probability underflows to 0
    # in every view, where log(mean(softmax)) would give -inf and an infinite NLL.
    return torch.logsumexp(log_probs.view(views, images.shape[0], -1), dim=0) - math.log(views)
