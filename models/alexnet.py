"""AlexNet (Krizhevsky et al., 2012), single-tower, with a ReLU after every conv and hidden fc.

    conv 11x11, 64, stride 4, pad 2 -> max-pool 3/2
    conv 5x5, 192, pad 2            -> max-pool 3/2
    conv 3x3, 384, pad 1
    conv 3x3, 256, pad 1
    conv 3x3, 256, pad 1            -> max-pool 3/2
    adaptive avg-pool 6x6 -> flatten 9216
    dropout(drop_rate) -> fc 4096 -> dropout(drop_rate) -> fc 4096   (the embedding)
    fc num_classes

`drop_rate` is the paper's two dropouts (0.5, Section 4.2). `act` names the activation
(layers.ACTIVATIONS) in place of every ReLU.

Inputs must be at least 63x63 (the three stride-2 pools need something to pool); the CIFAR
config resizes to 64.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from models.classifier import ImageClassifier
from models.layers import ACTIVATIONS, get_activation
from models.registry import register_model


class AlexNet(ImageClassifier):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5,
                 act_layer: Callable[[], nn.Module] = ACTIVATIONS["relu"]):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 64, kernel_size=11, stride=4, padding=2), act_layer(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), act_layer(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), act_layer(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), act_layer(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), act_layer(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        # Same module indices as torchvision's AlexNet, so its weights map one to one.
        self.classifier = nn.Sequential(
            nn.Dropout(drop_rate), nn.Linear(256 * 6 * 6, 4096), act_layer(),
            nn.Dropout(drop_rate), nn.Linear(4096, 4096), act_layer(),
            nn.Linear(4096, num_classes),
        )

    def get_classifier(self) -> nn.Linear:
        return self.classifier[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 4096-d embedding after the second hidden fc."""
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[:-1](x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier[-1](features)


@register_model
def alexnet(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5, act: str = "relu") -> AlexNet:
    """AlexNet, as torchvision lays it out."""
    return AlexNet(num_classes, in_chans, drop_rate, get_activation(act))
