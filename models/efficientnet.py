"""EfficientNet B0-B3 (Tan & Le, 2019): stages of MBConv blocks, scaled together in width and depth.

B0 (Table 1 of the paper) at 224 px; `features.i` is the module that holds each row:

    features.0  stem      conv 3x3, 32, stride 2 -> BN -> SiLU          224 -> 112
    features.1  MBConv1   k3x3,  16 channels, x1                        112
    features.2  MBConv6   k3x3,  24 channels, x2, first block stride 2  112 -> 56
    features.3  MBConv6   k5x5,  40 channels, x2, first block stride 2   56 -> 28
    features.4  MBConv6   k3x3,  80 channels, x3, first block stride 2   28 -> 14
    features.5  MBConv6   k5x5, 112 channels, x3                          14
    features.6  MBConv6   k5x5, 192 channels, x4, first block stride 2   14 -> 7
    features.7  MBConv6   k3x3, 320 channels, x1                           7
    features.8  head      conv 1x1, 1280 (4 x 320) -> BN -> SiLU           7
    global avg-pool (the embedding) -> dropout(drop_rate) -> fc num_classes

MBConv<e> k<k>, C_in -> C_out:
    [conv 1x1 to e * C_in -> BN -> SiLU, only when e > 1] -> depthwise conv k x k (stride) -> BN -> SiLU
    -> SE (squeeze C_in / 4, SiLU, sigmoid gate) -> conv 1x1 to C_out -> BN
    [-> DropPath, + input, only when stride 1 and C_in == C_out]

Compound scaling (EFFICIENTNET_VARIANTS): a variant multiplies every channel count above by
width_mult, rounded to a multiple of 8 with make_divisible, and every stage's repeats by depth_mult,
rounded up; the paper also trains each variant at its own resolution with its own dropout.
Stochastic depth: block i of all n blocks drops its residual branch with probability
drop_path_rate * i / n (torchvision's rule), from 0 up to (n - 1) / n * drop_path_rate.

stem="cifar" keeps 32 px inputs from shrinking to nothing: the stem conv and the first block of
features.2 use stride 1 instead of 2, so the network downsamples by 8 instead of 32 (32 px -> 4x4
before pooling). Nothing else changes, and no weight changes shape.

Module names, BatchNorm settings (PyTorch's defaults, eps 1e-5 and momentum 0.1, which torchvision
uses for B0-B4) and initialisation follow torchvision's EfficientNet, so that its weights load one to one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from models.classifier import ImageClassifier
from models.init import init_conv_and_batchnorm
from models.layers import ConvNormAct, DropPath, SqueezeExcite, make_divisible
from models.registry import register_model


@dataclass(frozen=True)
class MBConvStage:
    """One row of the B0 table: `repeats` MBConv blocks; the first has `stride`, the rest stride 1."""
    expand_ratio: int
    kernel_size: int
    stride: int
    channels: int
    repeats: int


STEM_CHANNELS = 32
B0_STAGES = (
    MBConvStage(expand_ratio=1, kernel_size=3, stride=1, channels=16, repeats=1),
    MBConvStage(expand_ratio=6, kernel_size=3, stride=2, channels=24, repeats=2),
    MBConvStage(expand_ratio=6, kernel_size=5, stride=2, channels=40, repeats=2),
    MBConvStage(expand_ratio=6, kernel_size=3, stride=2, channels=80, repeats=3),
    MBConvStage(expand_ratio=6, kernel_size=5, stride=1, channels=112, repeats=3),
    MBConvStage(expand_ratio=6, kernel_size=5, stride=2, channels=192, repeats=4),
    MBConvStage(expand_ratio=6, kernel_size=3, stride=1, channels=320, repeats=1),
)
HEAD_EXPANSION = 4  # the head conv widens the last stage's channels four times (320 -> 1280 at B0)


def scale_channels(channels: int, width_mult: float) -> int:
    """A B0 channel count widened by width_mult, rounded to a multiple of 8."""
    return make_divisible(channels * width_mult, 8)


def scale_repeats(repeats: int, depth_mult: float) -> int:
    """A B0 stage's block count deepened by depth_mult, rounded up."""
    return math.ceil(repeats * depth_mult)


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-and-excitation; the data path is in the module docstring."""

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, kernel_size: int, stride: int,
                 drop_path_rate: float):
        super().__init__()
        expanded_channels = make_divisible(in_channels * expand_ratio, 8)
        layers: list[nn.Module] = []
        if expanded_channels != in_channels:
            layers.append(ConvNormAct(in_channels, expanded_channels, 1, act_layer=nn.SiLU))
        layers += [
            ConvNormAct(expanded_channels, expanded_channels, kernel_size, stride, groups=expanded_channels,
                        act_layer=nn.SiLU),
            # The squeeze width follows the block's input, not its expanded width (as in the paper's code).
            SqueezeExcite(expanded_channels, max(1, in_channels // 4), act_layer=nn.SiLU),
            ConvNormAct(expanded_channels, out_channels, 1, act_layer=None),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path_rate) if self.use_residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_residual:
            return x + self.drop_path(out)
        return out


class EfficientNet(ImageClassifier):
    """The B0 stages widened by width_mult and deepened by depth_mult; the layout is in the module docstring."""

    def __init__(self, width_mult: float, depth_mult: float, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.2, drop_path_rate: float = 0.2, stem: str = "imagenet"):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        stage_strides = [stage.stride for stage in B0_STAGES]
        if stem == "cifar":
            stage_strides[stage_strides.index(2)] = 1
        channels = scale_channels(STEM_CHANNELS, width_mult)
        layers: list[nn.Module] = [ConvNormAct(in_chans, channels, 3, stride=1 if stem == "cifar" else 2,
                                               act_layer=nn.SiLU)]

        stage_repeats = [scale_repeats(stage.repeats, depth_mult) for stage in B0_STAGES]
        num_blocks = sum(stage_repeats)
        block_index = 0
        for stage, stride, repeats in zip(B0_STAGES, stage_strides, stage_repeats):
            out_channels = scale_channels(stage.channels, width_mult)
            blocks = []
            for repeat in range(repeats):
                blocks.append(MBConv(channels, out_channels, stage.expand_ratio, stage.kernel_size,
                                     stride if repeat == 0 else 1, drop_path_rate * block_index / num_blocks))
                channels = out_channels
                block_index += 1
            layers.append(nn.Sequential(*blocks))

        self.num_features = HEAD_EXPANSION * channels
        layers.append(ConvNormAct(channels, self.num_features, 1, act_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        # Not in place (torchvision's is): forward_head must not overwrite the features it is given.
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(self.num_features, num_classes))

        init_conv_and_batchnorm(self)
        init_range = 1.0 / math.sqrt(num_classes)
        nn.init.uniform_(self.classifier[1].weight, -init_range, init_range)
        nn.init.zeros_(self.classifier[1].bias)

    def get_classifier(self) -> nn.Linear:
        return self.classifier[1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled embedding (num_features channels: 1280 at B0)."""
        return torch.flatten(self.avgpool(self.features(x)), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)


@dataclass(frozen=True)
class EfficientNetVariant:
    width_mult: float
    depth_mult: float
    dropout: float
    resolution: int  # the image size the paper trains and evaluates the variant at


EFFICIENTNET_VARIANTS = {
    "efficientnet_b0": EfficientNetVariant(width_mult=1.0, depth_mult=1.0, dropout=0.2, resolution=224),
    "efficientnet_b1": EfficientNetVariant(width_mult=1.0, depth_mult=1.1, dropout=0.2, resolution=240),
    "efficientnet_b2": EfficientNetVariant(width_mult=1.1, depth_mult=1.2, dropout=0.3, resolution=260),
    "efficientnet_b3": EfficientNetVariant(width_mult=1.2, depth_mult=1.4, dropout=0.3, resolution=300),
}


def _register(name: str, variant: EfficientNetVariant) -> None:
    def constructor(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = variant.dropout,
                    drop_path_rate: float = 0.2, stem: str = "imagenet") -> EfficientNet:
        return EfficientNet(variant.width_mult, variant.depth_mult, num_classes, in_chans, drop_rate,
                            drop_path_rate, stem)

    constructor.__name__ = name
    constructor.__doc__ = (f"{name}: width x{variant.width_mult}, depth x{variant.depth_mult}, "
                           f"dropout {variant.dropout}, {variant.resolution} px in the paper.")
    register_model(constructor)


for _name, _variant in EFFICIENTNET_VARIANTS.items():
    _register(_name, _variant)
