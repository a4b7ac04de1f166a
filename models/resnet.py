"""ResNet (He et al., 2016) with BasicBlocks.

    stem    ImageNet: conv 7x7, 64, stride 2 -> BN -> ReLU -> max-pool 3/2
            CIFAR:    conv 3x3, 64, stride 1 -> BN -> ReLU   (keeps 32x32 inputs at 32x32)
    stage1  [3x3, 64;  3x3, 64]  x layers[0]
    stage2  [3x3, 128; 3x3, 128] x layers[1], first stride 2
    stage3  [3x3, 256; 3x3, 256] x layers[2], first stride 2
    stage4  [3x3, 512; 3x3, 512] x layers[3], first stride 2
    global avg-pool (the embedding) -> dropout(drop_rate) -> fc num_classes

Module names follow torchvision's ResNet so that its weights map one to one.
"""
from __future__ import annotations

import torch
from torch import nn

from models.registry import register_model


class BasicBlock(nn.Module):
    """x -> conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, -> ReLU."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock], layers: list[int], num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, cifar_stem: bool = False):
        super().__init__()
        self.in_planes = 64
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(self, block: type[BasicBlock], planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_planes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.in_planes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        blocks = [block(self.in_planes, planes, stride, downsample)]
        self.in_planes = planes * block.expansion
        blocks += [block(self.in_planes, planes) for _ in range(1, num_blocks)]
        return nn.Sequential(*blocks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled embedding (512 * expansion channels)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head_drop(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def resnet18(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, cifar_stem: bool = True) -> ResNet:
    """ResNet-18, BasicBlocks [2, 2, 2, 2]; the CIFAR stem by default (3x3 conv, no max-pool)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_chans, drop_rate, cifar_stem)
