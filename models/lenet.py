"""LeNet-5 (LeCun et al., 1998) for 32x32 images, in its 1998 form and in the modern reading.

    input 3x32x32
    C1  conv 5x5, 6    -> act -> S2 pool 2x2     6x14x14
    C3  conv 5x5, 16   -> act -> S4 pool 2x2     16x5x5
    C5  conv 5x5, 120  -> act                    120x1x1   (a conv, as in the paper: it is a
                                                            fully connected layer at 32 px)
    F6  fc 84          -> act                    (the embedding)
    dropout(drop_rate) -> fc num_classes

    lenet:  ReLU and max-pooling (the modern reading)
    lenet5: tanh and average pooling (the 1998 form; the paper's scaled tanh, trainable
            sub-sampling, sparse C3 connections and RBF output are left out)

`act` names the activation (layers.ACTIVATIONS) in place of ReLU or tanh.

Inputs other than 32x32 are average-pooled to 16x5x5 before C5 (a no-op at 32x32), so any
size from 32 px up works.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from models.classifier import ImageClassifier
from models.layers import get_activation
from models.registry import register_model


class LeNet(ImageClassifier):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0,
                 act_layer: Callable[[], nn.Module] = nn.ReLU, pool_layer: type[nn.Module] = nn.MaxPool2d):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, kernel_size=5), act_layer(), pool_layer(2),
            nn.Conv2d(6, 16, kernel_size=5), act_layer(), pool_layer(2),
            nn.AdaptiveAvgPool2d((5, 5)),
            nn.Conv2d(16, 120, kernel_size=5), act_layer(),
            nn.Flatten(),
            nn.Linear(120, 84), act_layer(),
        )
        self.num_features = 84
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(84, num_classes)

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 84-d F6 embedding."""
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head_drop(features))


@register_model
def lenet(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, act: str = "relu") -> LeNet:
    """LeNet-5 with ReLU and max-pooling."""
    return LeNet(num_classes, in_chans, drop_rate, get_activation(act), nn.MaxPool2d)


@register_model
def lenet5(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, act: str = "tanh") -> LeNet:
    """LeNet-5 as in 1998: tanh and average pooling."""
    return LeNet(num_classes, in_chans, drop_rate, get_activation(act), nn.AvgPool2d)
