"""Model size and cost: parameter counts and multiply-accumulates (MACs) per image.

MACs are counted with torch.utils.flop_counter on the meta device, so even the largest
models are measured without memory or compute; one MAC is two FLOPs.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, img_size: int, in_chans: int = 3) -> int:
    """MACs of one eval-mode forward pass of a single img_size x img_size image.

    `model` should live on the meta device (build it under `with torch.device("meta"):`).
    """
    device = next(model.parameters()).device
    images = torch.empty(1, in_chans, img_size, img_size, device=device)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    model.train(was_training)
    return counter.get_total_flops() // 2


def format_count(value: float) -> str:
    """1234567 -> '1.23M', 4.1e9 -> '4.10G'."""
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= threshold:
            return f"{value / threshold:.2f}{suffix}"
    return str(int(value))
