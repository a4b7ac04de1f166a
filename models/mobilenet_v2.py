"""MobileNetV2 (Sandler et al., 2018): inverted residuals with linear bottlenecks.

    input    operator                        t    c      n   s
    224^2    conv 3x3 -> BN -> ReLU6         -    32     1   2
    112^2    inverted residual               1    16     1   1
    112^2    inverted residual               6    24     2   2
    56^2     inverted residual               6    32     3   2
    28^2     inverted residual               6    64     4   2
    14^2     inverted residual               6    96     3   1
    14^2     inverted residual               6    160    3   2
    7^2      inverted residual               6    320    1   1
    7^2      conv 1x1 -> BN -> ReLU6         -    1280   1   1
    global avg-pool (the embedding) -> dropout(drop_rate, 0.2 as torchvision) -> fc num_classes

t is the expansion factor, c the output channels, n the number of blocks and s the stride of the
first of them (the others have stride 1).

Inverted residual:
    [conv 1x1, t*C_in -> BN -> ReLU6, when t > 1] -> depthwise 3x3 (stride s) -> BN -> ReLU6
    -> conv 1x1, c -> BN (linear: no activation on the narrow output), + x when s = 1 and C_in = c

`width_mult` scales every channel count, rounded to a multiple of 8; the last conv's 1280 is
scaled only when width_mult > 1, as in the paper. With the cifar stem a 32 px input ends at 4x4
instead of 1x1.

Module names follow torchvision's MobileNetV2 so that its weights load one to one.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from models.classifier import ImageClassifier
from models.init import init_conv_and_batchnorm
from models.layers import ConvNormAct, make_divisible
from models.registry import register_model


class StageSetting(NamedTuple):
    """One row of the paper's Table 2."""
    expand_ratio: int  # t
    channels: int  # c
    num_blocks: int  # n
    stride: int  # s


MOBILENET_V2_STAGES = (
    StageSetting(1, 16, 1, 1),
    StageSetting(6, 24, 2, 2),
    StageSetting(6, 32, 3, 2),
    StageSetting(6, 64, 4, 2),
    StageSetting(6, 96, 3, 1),
    StageSetting(6, 160, 3, 2),
    StageSetting(6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
CHANNEL_DIVISOR = 8


class InvertedResidual(nn.Module):
    """[expand 1x1 -> BN -> ReLU6] -> depthwise 3x3 -> BN -> ReLU6 -> project 1x1 -> BN, + x when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(in_channels, hidden, kernel_size=1, act_layer=nn.ReLU6))
        layers += [
            ConvNormAct(hidden, hidden, kernel_size=3, stride=stride, groups=hidden, act_layer=nn.ReLU6),
            # Linear bottleneck: a ReLU on the narrow projection would destroy information (paper, 3.2).
            nn.Conv2d(hidden, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(ImageClassifier):
    """MobileNetV2 as drawn in the module docstring.

    stem="cifar" gives stride 1 to the first conv and to the first stage of stride 2 (t=6, c=24),
    as common CIFAR ports do; nothing else changes.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2, stem: str = "imagenet",
                 width_mult: float = 1.0, stages: tuple[StageSetting, ...] = MOBILENET_V2_STAGES):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        stem_stride = 2
        if stem == "cifar":
            stem_stride = 1
            first_downsampling = next(i for i, stage in enumerate(stages) if stage.stride == 2)
            stages = tuple(stage._replace(stride=1) if i == first_downsampling else stage
                           for i, stage in enumerate(stages))
        channels = make_divisible(STEM_CHANNELS * width_mult, CHANNEL_DIVISOR)
        layers: list[nn.Module] = [ConvNormAct(in_chans, channels, kernel_size=3, stride=stem_stride,
                                               act_layer=nn.ReLU6)]
        for stage in stages:
            out_channels = make_divisible(stage.channels * width_mult, CHANNEL_DIVISOR)
            for index in range(stage.num_blocks):
                stride = stage.stride if index == 0 else 1
                layers.append(InvertedResidual(channels, out_channels, stride, stage.expand_ratio))
                channels = out_channels
        # The paper (6.1) keeps the last conv at 1280 below width 1: it improves the smaller models.
        self.num_features = make_divisible(LAST_CHANNELS * max(1.0, width_mult), CHANNEL_DIVISOR)
        layers.append(ConvNormAct(channels, self.num_features, kernel_size=1, act_layer=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        # torchvision's classifier.0 (dropout) and classifier.1 (linear).
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(self.num_features, num_classes))
        init_conv_and_batchnorm(self)
        nn.init.normal_(self.classifier[1].weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier[1].bias)

    def get_classifier(self) -> nn.Linear:
        return self.classifier[1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled embedding (num_features channels: 1280, or more when width_mult > 1)."""
        return torch.flatten(self.avgpool(self.features(x)), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)


@register_model
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2, stem: str = "imagenet",
                 width_mult: float = 1.0) -> MobileNetV2:
    """mobilenet_v2: the paper's Table 2 at `width_mult`. stem='cifar': stride 1 in the first conv and
    in the first stride-2 stage (t=6, c=24)."""
    return MobileNetV2(num_classes, in_chans, drop_rate, stem, width_mult)
