"""DenseNet-BC (Huang et al., 2017): each layer of a dense block sees the concatenation of all
the feature maps before it in the block, and adds `growth_rate` (k) new ones.

    stem            imagenet: conv 7x7, 64, stride 2 -> BN -> ReLU -> max-pool 3/2      (224 -> 56)
                    cifar:    conv 3x3, 64, stride 1 -> BN -> ReLU, no max-pool       (32 -> 32)
    dense block 1   [conv 1x1, bn_size*k ; conv 3x3, k] x blocks[0]                   56
    transition 1    BN -> ReLU -> conv 1x1 (halves the channels) -> avg-pool 2/2      56 -> 28
    dense block 2   [conv 1x1, bn_size*k ; conv 3x3, k] x blocks[1]                   28
    transition 2                                                                      28 -> 14
    dense block 3   [conv 1x1, bn_size*k ; conv 3x3, k] x blocks[2]                   14
    transition 3                                                                      14 -> 7
    dense block 4   [conv 1x1, bn_size*k ; conv 3x3, k] x blocks[3]                   7
    BN -> ReLU -> global avg-pool (the embedding) -> dropout(drop_rate) -> fc num_classes

Dense layer (pre-activation bottleneck, the "B"):
    BN -> ReLU -> conv 1x1, bn_size*k -> BN -> ReLU -> conv 3x3, k; concatenated to its input.
The transitions halve the channels (compression 0.5, the "C"). With the cifar stem a 32 px input
ends at 4x4 instead of 1x1.

The paper's dropout after each dense layer (used only on CIFAR without augmentation) is left
out; `drop_rate` is dropout before the classifier. `act` names the activation
(layers.ACTIVATIONS) in place of every ReLU. Module names follow torchvision's DenseNet
so that its weights load one to one; its memory-efficient checkpointing is left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from models.classifier import ImageClassifier
from models.layers import ACTIVATIONS, get_activation
from models.registry import register_model


class DenseLayer(nn.Module):
    """BN -> ReLU -> conv 1x1 (bn_size * growth_rate) -> BN -> ReLU -> conv 3x3 (growth_rate).

    Takes the concatenation of all earlier feature maps of its block and returns only the
    `growth_rate` new channels; the block does the concatenating.
    """

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int,
                 act_layer: Callable[[], nn.Module] = ACTIVATIONS["relu"]):
        super().__init__()
        bottleneck = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = act_layer()
        self.conv1 = nn.Conv2d(in_channels, bottleneck, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bottleneck)
        self.relu2 = act_layer()
        self.conv2 = nn.Conv2d(bottleneck, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    """`num_layers` dense layers, named denselayer1, denselayer2, ...; outputs
    in_channels + num_layers * growth_rate channels."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int,
                 act_layer: Callable[[], nn.Module] = ACTIVATIONS["relu"]):
        layers = {f"denselayer{i + 1}": DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, act_layer)
                  for i in range(num_layers)}
        super().__init__(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN -> ReLU -> conv 1x1 to `out_channels` -> avg-pool 2/2: between dense blocks."""

    def __init__(self, in_channels: int, out_channels: int,
                 act_layer: Callable[[], nn.Module] = ACTIVATIONS["relu"]):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = act_layer()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(ImageClassifier):
    """DenseNet-BC as drawn in the module docstring.

    stem="cifar" replaces the 7x7 stride-2 conv0 with a 3x3 stride-1 one and pool0 (the 3x3
    stride-2 max-pool) with an identity; nothing else changes.
    """

    def __init__(self, growth_rate: int, block_config: tuple[int, ...], num_init_features: int = 64,
                 bn_size: int = 4, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 stem: str = "imagenet", act_layer: Callable[[], nn.Module] = ACTIVATIONS["relu"]):
        super().__init__()
        if stem == "cifar":
            conv0 = nn.Conv2d(in_chans, num_init_features, kernel_size=3, stride=1, padding=1, bias=False)
            pool0 = nn.Identity()
        elif stem == "imagenet":
            conv0 = nn.Conv2d(in_chans, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)
            pool0 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        self.features = nn.Sequential()
        self.features.add_module("conv0", conv0)
        self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        self.features.add_module("relu0", act_layer())
        self.features.add_module("pool0", pool0)
        channels = num_init_features
        for index, num_layers in enumerate(block_config, start=1):
            self.features.add_module(f"denseblock{index}",
                                     DenseBlock(num_layers, channels, growth_rate, bn_size, act_layer))
            channels += num_layers * growth_rate
            if index < len(block_config):
                self.features.add_module(f"transition{index}", Transition(channels, channels // 2, act_layer))
                channels //= 2
        # The dense layers are pre-activation, so the last block's output still needs its BN and ReLU.
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.relu = act_layer()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = channels
        self.head_drop = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(channels, num_classes)
        # The official Torch (Lua) initialisation, which torchvision keeps; the linear weight
        # keeps PyTorch's default.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def get_classifier(self) -> nn.Linear:
        return self.classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled embedding (num_features channels)."""
        x = self.relu(self.features(x))
        return torch.flatten(self.avgpool(x), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head_drop(features))


@dataclass(frozen=True)
class DenseNetVariant:
    growth_rate: int
    block_config: tuple[int, int, int, int]
    num_init_features: int = 64
    bn_size: int = 4


DENSENET_VARIANTS = {
    "densenet121": DenseNetVariant(32, (6, 12, 24, 16)),
    "densenet169": DenseNetVariant(32, (6, 12, 32, 32)),
}


def _register(name: str, variant: DenseNetVariant) -> None:
    def constructor(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                    stem: str = "imagenet", act: str = "relu") -> DenseNet:
        return DenseNet(variant.growth_rate, variant.block_config, variant.num_init_features, variant.bn_size,
                        num_classes, in_chans, drop_rate, stem, get_activation(act))

    constructor.__name__ = name
    constructor.__doc__ = (f"{name}: DenseNet-BC, growth rate {variant.growth_rate}, dense blocks "
                           f"{list(variant.block_config)}, {variant.num_init_features} stem channels. "
                           f"stem='cifar': 3x3 stride-1 conv0 and no max-pool.")
    register_model(constructor)


for _name, _variant in DENSENET_VARIANTS.items():
    _register(_name, _variant)
