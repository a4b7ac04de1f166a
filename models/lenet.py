"""LeNet for 32x32 RGB images, with ReLU and max-pooling (the modern reading of LeCun et al., 1998).

    input 3x32x32
    conv 5x5, 6   -> ReLU -> max-pool 2x2   6x14x14
    conv 5x5, 16  -> ReLU -> max-pool 2x2   16x5x5
    flatten 400 -> fc 120 -> ReLU -> fc 84 -> ReLU   (the embedding)
    dropout(drop_rate) -> fc num_classes

Other input sizes are average-pooled to 16x5x5 before the flatten (a no-op at 32x32).
"""
from __future__ import annotations

import torch
from torch import nn

from models.registry import register_model


class LeNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, kernel_size=5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d((5, 5)),
        )
        self.embedding = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True), nn.Linear(120, 84), nn.ReLU(inplace=True),
        )
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(84, num_classes)

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 84-d embedding."""
        return self.embedding(self.features(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head_drop(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def lenet(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> LeNet:
    """LeNet with ReLU and max-pooling, for 32x32 inputs."""
    return LeNet(num_classes, in_chans, drop_rate)
