"""Turn uint8 image batches into normalised floats on the training device.

Images cross the host-to-device link as uint8 (a quarter of the bytes of float32) and are
converted here, where the arithmetic is nearly free.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """uint8 (B, 3, H, W) in [0, 255] -> float (x / 255 - mean) / std, per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels_last: bool = False):
        super().__init__()
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std).view(1, -1, 1, 1)), persistent=False)
        self.register_buffer("shift", torch.tensor(mean).view(1, -1, 1, 1) / torch.tensor(std).view(1, -1, 1, 1),
                             persistent=False)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(memory_format=self.memory_format)
        return images.float().mul_(self.scale).sub_(self.shift)
