"""ResNet (He et al., 2016) and its descendants: ResNeXt, Wide ResNet and SE-ResNet.

    stem    imagenet: conv 7x7, 64, stride 2 -> BN -> ReLU -> max-pool 3/2    (224 -> 56)
            cifar:    conv 3x3, 64, stride 1 -> BN -> ReLU, no max-pool     (32 -> 32)
    stage1  blocks x layers[0], 64 planes
    stage2  blocks x layers[1], 128 planes, first block stride 2
    stage3  blocks x layers[2], 256 planes, first block stride 2
    stage4  blocks x layers[3], 512 planes, first block stride 2
    global avg-pool (the embedding) -> dropout(drop_rate) -> fc num_classes

BasicBlock:  3x3 -> BN -> ReLU [-> DB] -> 3x3 -> BN [-> DB], + shortcut [-> DB], ReLU        (expansion 1)
Bottleneck:  1x1 -> BN -> ReLU [-> DB] -> 3x3 (stride, groups) -> BN -> ReLU [-> DB] -> 1x1 (x4) -> BN
             [-> DB] [-> SE], + shortcut [-> DB], ReLU                                   (expansion 4)
The stride sits on the 3x3 conv (ResNet v1.5, as torchvision). ResNeXt widens the 3x3 to
groups x width_per_group channels; Wide ResNet doubles width_per_group; SE-ResNet adds
squeeze-and-excitation (reduction 16) before the addition.

`act` names the activation (layers.ACTIVATIONS) in place of every ReLU of the stem and the
blocks; SE keeps its own ReLU and sigmoid gate.

DropBlock (DB; Ghiasi et al., 2018), off unless drop_block_rate > 0, sits where the authors'
reference code puts it (tensorflow/tpu, models/official/resnet/resnet_model.py, bottleneck_block):
after every conv's BN (and ReLU) of the residual branch and on the shortcut, in stages 3 and 4
only. As their resnet_main.py does, stage 4 drops drop_block_rate and stage 3 a quarter of it.
Their schedule, which raises the rate linearly from 0 over training, is left out. The reference
leaves BasicBlocks without DropBlock; here they take it at the same places, so that ResNet-18/34
can use it too.

Stochastic depth (Huang et al., 2016), off unless drop_path_rate > 0, drops each block's residual
branch (after BN and SE, before the addition) with a rate that rises linearly over the blocks,
from 0 for the first to drop_path_rate for the last: the paper's linear decay rule, as timm.

Module names follow torchvision's ResNet so that its weights load one to one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from models.classifier import ImageClassifier
from models.init import init_conv_and_batchnorm
from models.layers import ACTIVATIONS, DropBlock, DropPath, SqueezeExcite, get_activation
from models.registry import register_model


def make_drop_block(rate: float, block_size: int) -> nn.Module:
    """DropBlock at `rate`, or the identity when the rate is 0."""
    return DropBlock(rate, block_size) if rate > 0 else nn.Identity()


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, width_per_group: int = 64, se_reduction: int = 0,
                 act_layer: Callable[[], nn.Module] = ACTIVATIONS["relu"], drop_block_rate: float = 0.0,
                 drop_block_size: int = 7, drop_path: float = 0.0):
        super().__init__()
        if groups != 1 or width_per_group != 64 or se_reduction:
            raise ValueError("BasicBlock supports neither groups, width_per_group nor SE")
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = act_layer()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.drop_block = make_drop_block(drop_block_rate, drop_block_size)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def last_norm(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.drop_block(x if self.downsample is None else self.downsample(x))
        out = self.drop_block(self.relu(self.bn1(self.conv1(x))))
        out = self.drop_block(self.bn2(self.conv2(out)))
        return self.relu(self.drop_path(out) + shortcut)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, width_per_group: int = 64, se_reduction: int = 0,
                 act_layer: Callable[[], nn.Module] = ACTIVATIONS["relu"], drop_block_rate: float = 0.0,
                 drop_block_size: int = 7, drop_path: float = 0.0):
        super().__init__()
        width = int(planes * (width_per_group / 64.0)) * groups
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = act_layer()
        self.se = SqueezeExcite(out_planes, out_planes // se_reduction) if se_reduction else nn.Identity()
        self.downsample = downsample
        self.drop_block = make_drop_block(drop_block_rate, drop_block_size)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def last_norm(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.drop_block(x if self.downsample is None else self.downsample(x))
        out = self.drop_block(self.relu(self.bn1(self.conv1(x))))
        out = self.drop_block(self.relu(self.bn2(self.conv2(out))))
        out = self.se(self.drop_block(self.bn3(self.conv3(out))))
        return self.relu(self.drop_path(out) + shortcut)


class ResNet(ImageClassifier):
    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.0, stem: str = "imagenet", groups: int = 1,
                 width_per_group: int = 64, se_reduction: int = 0, zero_init_residual: bool = False,
                 act_layer: Callable[[], nn.Module] = ACTIVATIONS["relu"], drop_block_rate: float = 0.0,
                 drop_block_size: int = 7, drop_path_rate: float = 0.0):
        super().__init__()
        # Block i of n drops its residual branch at drop_path_rate * i / (n - 1).
        rates = [drop_path_rate * i / max(1, sum(layers) - 1) for i in range(sum(layers))]
        stage_rates = [rates[sum(layers[:stage]):sum(layers[:stage + 1])] for stage in range(4)]
        self.block_options = dict(groups=groups, width_per_group=width_per_group, se_reduction=se_reduction,
                                  act_layer=act_layer, drop_block_size=drop_block_size)
        self.in_planes = 64
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        elif stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = act_layer()
        self.layer1 = self._make_layer(block, 64, stage_rates[0], stride=1)
        self.layer2 = self._make_layer(block, 128, stage_rates[1], stride=2)
        self.layer3 = self._make_layer(block, 256, stage_rates[2], stride=2, drop_block_rate=drop_block_rate / 4)
        self.layer4 = self._make_layer(block, 512, stage_rates[3], stride=2, drop_block_rate=drop_block_rate)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = 512 * block.expansion
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)
        init_conv_and_batchnorm(self)
        if zero_init_residual:
            # Each residual branch starts as zero, so every block starts as the identity (Goyal et al., 2017).
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(module.last_norm().weight)

    def _make_layer(self, block, planes: int, drop_path_rates: list[float], stride: int,
                    drop_block_rate: float = 0.0) -> nn.Sequential:
        """A stage of len(drop_path_rates) blocks, block i dropping its branch at drop_path_rates[i]."""
        downsample = None
        if stride != 1 or self.in_planes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.in_planes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        options = dict(self.block_options, drop_block_rate=drop_block_rate)
        blocks = [block(self.in_planes, planes, stride, downsample, drop_path=drop_path_rates[0], **options)]
        self.in_planes = planes * block.expansion
        blocks += [block(self.in_planes, planes, drop_path=rate, **options) for rate in drop_path_rates[1:]]
        return nn.Sequential(*blocks)

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled embedding (512 * expansion channels)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head_drop(features))


@dataclass(frozen=True)
class ResNetVariant:
    block: type[BasicBlock] | type[Bottleneck]
    layers: tuple[int, int, int, int]
    groups: int = 1
    width_per_group: int = 64
    se_reduction: int = 0


RESNET_VARIANTS = {
    "resnet18": ResNetVariant(BasicBlock, (2, 2, 2, 2)),
    "resnet34": ResNetVariant(BasicBlock, (3, 4, 6, 3)),
    "resnet50": ResNetVariant(Bottleneck, (3, 4, 6, 3)),
    "resnet101": ResNetVariant(Bottleneck, (3, 4, 23, 3)),
    "resnet152": ResNetVariant(Bottleneck, (3, 8, 36, 3)),
    # ResNeXt (Xie et al., 2017): 32 groups of 4 channels in each 3x3 at 64 planes.
    "resnext50_32x4d": ResNetVariant(Bottleneck, (3, 4, 6, 3), groups=32, width_per_group=4),
    # Wide ResNet (Zagoruyko & Komodakis, 2016): bottlenecks twice as wide.
    "wide_resnet50_2": ResNetVariant(Bottleneck, (3, 4, 6, 3), width_per_group=128),
    # SE-ResNet (Hu et al., 2018): squeeze-and-excitation with reduction 16.
    "se_resnet50": ResNetVariant(Bottleneck, (3, 4, 6, 3), se_reduction=16),
}


def _register(name: str, variant: ResNetVariant) -> None:
    def constructor(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, stem: str = "imagenet",
                    zero_init_residual: bool = False, act: str = "relu", drop_block_rate: float = 0.0,
                    drop_block_size: int = 7, drop_path_rate: float = 0.0) -> ResNet:
        return ResNet(variant.block, list(variant.layers), num_classes, in_chans, drop_rate, stem, variant.groups,
                      variant.width_per_group, variant.se_reduction, zero_init_residual, get_activation(act),
                      drop_block_rate, drop_block_size, drop_path_rate)

    constructor.__name__ = name
    constructor.__doc__ = f"{name}: {variant.block.__name__}s {list(variant.layers)}."
    register_model(constructor)


for _name, _variant in RESNET_VARIANTS.items():
    _register(_name, _variant)
