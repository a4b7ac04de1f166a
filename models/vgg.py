"""VGG (Simonyan & Zisserman, 2015): configurations A, B, D and E of the paper's Table 1, plain or
with batch norm.

    convs per stage              A (vgg11)  B (vgg13)  D (vgg16)  E (vgg19)
    stage1   64 channels             1          2          2          2     then max-pool 2/2
    stage2  128 channels             1          2          2          2     then max-pool 2/2
    stage3  256 channels             2          2          3          4     then max-pool 2/2
    stage4  512 channels             2          2          3          4     then max-pool 2/2
    stage5  512 channels             2          2          3          4     then max-pool 2/2
    adaptive avg-pool 7x7 -> flatten 25088
    fc 4096 -> ReLU -> dropout(drop_rate) -> fc 4096 -> ReLU -> dropout(drop_rate)   (the embedding)
    fc num_classes

Every conv is 3x3, padding 1, with a bias, then ReLU; the _bn variants put BatchNorm between
the two (the conv keeps its bias, as in torchvision). `drop_rate` is the paper's two dropouts
(0.5, Section 3.1); `act` names the activation (layers.ACTIVATIONS) in place of every ReLU.

There is no `stem` option, because none is needed for CIFAR: a 32x32 input leaves the five
max-pools as 512 x 1 x 1, and the adaptive avg-pool repeats that vector over the 7x7 grid the
classifier expects. Inputs must be at least 32x32; anything smaller is pooled to nothing.

Module names follow torchvision's VGG (`features.<i>`, `classifier.<i>`) so that its weights
load one to one.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from models.classifier import ImageClassifier
from models.init import init_conv_and_batchnorm
from models.layers import ACTIVATIONS, get_activation
from models.registry import register_model

STAGE_WIDTHS = (64, 128, 256, 512, 512)

# Convs per stage for each configuration of the paper's Table 1.
VGG_CONFIGS: dict[str, tuple[int, int, int, int, int]] = {
    "A": (1, 1, 2, 2, 2),
    "B": (2, 2, 2, 2, 2),
    "D": (2, 2, 3, 3, 3),
    "E": (2, 2, 4, 4, 4),
}

VGG_VARIANTS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def make_features(stage_depths: Sequence[int], batch_norm: bool, in_chans: int,
                  act_layer: Callable[[], nn.Module] = ACTIVATIONS["relu"]) -> nn.Sequential:
    """The convolutional trunk as one flat Sequential, so its indices match torchvision's `features`.

    (layers.ConvNormAct would nest each conv in its own Sequential and drop the conv bias under
    batch norm, so neither the names nor the parameter count would match torchvision.)
    """
    layers: list[nn.Module] = []
    in_channels = in_chans
    for depth, width in zip(stage_depths, STAGE_WIDTHS):
        for _ in range(depth):
            layers.append(nn.Conv2d(in_channels, width, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(act_layer())
            in_channels = width
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class VGG(ImageClassifier):
    """A VGG network with `stage_depths[i]` 3x3 convs in stage i (see the module docstring)."""

    def __init__(self, stage_depths: Sequence[int], batch_norm: bool = False, num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.5,
                 act_layer: Callable[[], nn.Module] = ACTIVATIONS["relu"]):
        super().__init__()
        self.features = make_features(stage_depths, batch_norm, in_chans, act_layer)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.num_features = 4096  # the embedding is the second hidden fc's output
        self.classifier = nn.Sequential(
            nn.Linear(STAGE_WIDTHS[-1] * 7 * 7, self.num_features), act_layer(), nn.Dropout(drop_rate),
            nn.Linear(self.num_features, self.num_features), act_layer(), nn.Dropout(drop_rate),
            nn.Linear(self.num_features, num_classes),
        )
        init_conv_and_batchnorm(self)
        for module in self.classifier:
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def get_classifier(self) -> nn.Linear:
        return self.classifier[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 4096-d embedding after the second hidden fc."""
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[:-1](x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier[-1](features)


def _register(name: str, config: str, batch_norm: bool) -> None:
    def constructor(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5, act: str = "relu") -> VGG:
        return VGG(VGG_CONFIGS[config], batch_norm, num_classes, in_chans, drop_rate, get_activation(act))

    constructor.__name__ = name
    constructor.__doc__ = (f"{name}: VGG configuration {config}, convs per stage {list(VGG_CONFIGS[config])}"
                           f"{', with batch norm' if batch_norm else ''}.")
    register_model(constructor)


for _name, _config in VGG_VARIANTS.items():
    _register(_name, _config, batch_norm=False)
    _register(f"{_name}_bn", _config, batch_norm=True)
