"""ConvNeXt (Liu et al., 2022) and ConvNeXt V2 (Woo et al., 2023): one block, a table of variants.

    stem        imagenet: conv 4x4, stride 4 (patchify) -> norm               (224 -> 56)
                cifar:    conv 2x2, stride 2 (patchify) -> norm               (32 -> 16)
    stage1      depths[0] blocks at dims[0] channels
    stage2..4   norm -> conv 2x2, stride 2 to dims[i] (downsampling), then depths[i] blocks
    global avg-pool -> norm (the embedding) -> dropout(drop_rate) -> linear num_classes

The spatial size is divided by 32 (imagenet stem) or 16 (cifar stem): 224 px ends at 7x7 and
32 px at 2x2, where the ImageNet stem would leave 1x1.

Block, channels-first (N, C, H, W) in and out:
    x -> dwconv 7x7 -> to (N, H, W, C) -> norm -> linear C->4C -> GELU [-> GRN, V2] -> linear 4C->C
      -> to (N, C, H, W) [-> x layer scale, V1] -> drop path -> + x
V2 adds global response normalisation after the GELU and drops layer scale, which its paper
finds redundant once GRN is there. Drop-path rates rise linearly over all blocks, from 0 for the
first to drop_path_rate for the last.

`norm` replaces every LayerNorm (stem, downsampling, blocks and the final one) with BatchNorm or
Dynamic Tanh, each in the layout its input has: channels-first in the stem and downsampling
layers, channels-last in the blocks and on the pooled (N, C) embedding.

With norm="layernorm", module names follow torchvision's ConvNeXt, so its weights load one to
one: features.0 is the stem, features.1/3/5/7 the stages, features.2/4/6 the downsampling layers,
and classifier.0 / classifier.2 the final norm and linear layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from models.classifier import ImageClassifier
from models.layers import GRN, DropPath, DyT, LayerNorm2d
from models.registry import register_model

NORMS = ("layernorm", "batchnorm", "dyt")
LAYER_NORM_EPS = 1e-6
LAYER_SCALE_INIT = 1e-6
# Side (and stride) of the patchify convolution of each stem.
STEM_PATCH_SIZES = {"imagenet": 4, "cifar": 2}


class Permute(nn.Module):
    """x.permute(*dims), as a module so that it takes a place in an nn.Sequential."""

    def __init__(self, dims: tuple[int, ...]):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class ChannelsLastBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the last dimension of a channels-last (..., C) tensor.

    Every other position counts as a sample, so the statistics per channel are those that
    BatchNorm2d takes over N, H and W in the channels-first layout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def make_norm(kind: str, channels: int, channels_last: bool) -> nn.Module:
    """A `kind` norm layer over `channels`, for channels-last (..., C) or channels-first (N, C, H, W) input."""
    if kind == "layernorm":
        layer_norm = nn.LayerNorm if channels_last else LayerNorm2d
        return layer_norm(channels, eps=LAYER_NORM_EPS)
    if kind == "batchnorm":
        return ChannelsLastBatchNorm(channels) if channels_last else nn.BatchNorm2d(channels)
    if kind == "dyt":
        return DyT(channels, channels_last=channels_last)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class ConvNeXtBlock(nn.Module):
    """The ConvNeXt block (V1), or with `grn` the ConvNeXt V2 block: GRN after the GELU, no layer scale.

    x -> dwconv 7x7 -> norm -> linear 4x -> GELU [-> GRN] -> linear [-> x layer scale] -> drop path -> + x
    """

    def __init__(self, dim: int, drop_path: float = 0.0, norm: str = "layernorm", grn: bool = False):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim),
            # The norm and the two linear layers act on channels, which is cheapest channels-last.
            Permute((0, 2, 3, 1)),
            make_norm(norm, dim, channels_last=True),
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
        ]
        if grn:
            layers.append(GRN(4 * dim))
        layers += [nn.Linear(4 * dim, dim), Permute((0, 3, 1, 2))]
        self.block = nn.Sequential(*layers)
        # Shaped (C, 1, 1) to scale the channels-first output, as torchvision stores it.
        self.layer_scale = None if grn else nn.Parameter(torch.full((dim, 1, 1), LAYER_SCALE_INIT))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.block(x)
        if self.layer_scale is not None:
            branch = branch * self.layer_scale
        return x + self.drop_path(branch)


class ConvNeXt(ImageClassifier):
    """ConvNeXt with `depths[i]` blocks of `dims[i]` channels in stage i; V2 blocks when `grn`."""

    def __init__(self, depths: Sequence[int], dims: Sequence[int], grn: bool = False, num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0, stem: str = "imagenet",
                 norm: str = "layernorm"):
        super().__init__()
        if stem not in STEM_PATCH_SIZES:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        patch = STEM_PATCH_SIZES[stem]
        layers: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(in_chans, dims[0], kernel_size=patch, stride=patch),
            make_norm(norm, dims[0], channels_last=False),
        )]
        # On the CPU, so that the rates can be read even when the model is built on the meta device.
        drop_path_rates = torch.linspace(0.0, drop_path_rate, sum(depths), dtype=torch.float64, device="cpu").tolist()
        first_block = 0
        for stage, (depth, dim) in enumerate(zip(depths, dims)):
            if stage > 0:
                layers.append(nn.Sequential(
                    make_norm(norm, dims[stage - 1], channels_last=False),
                    nn.Conv2d(dims[stage - 1], dim, kernel_size=2, stride=2),
                ))
            rates = drop_path_rates[first_block:first_block + depth]
            layers.append(nn.Sequential(*(ConvNeXtBlock(dim, rate, norm, grn) for rate in rates)))
            first_block += depth
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = dims[-1]
        # torchvision's classifier.0 (final norm) and classifier.2 (linear); its index 1 held a
        # Flatten, and the dropout in its place keeps those names.
        self.classifier = nn.Sequential(
            make_norm(norm, dims[-1], channels_last=True),
            nn.Dropout(drop_rate),
            nn.Linear(dims[-1], num_classes),
        )
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def no_weight_decay(self) -> set[str]:
        """Layer scales and GRN parameters are scales and shifts, exempt from weight decay like norms,
        although their shapes ((C, 1, 1) and (1, 1, 1, C)) are not 1-d."""
        return {name for name, _ in self.named_parameters() if name.rsplit(".", 1)[-1] in ("layer_scale", "gamma", "beta")}

    def get_classifier(self) -> nn.Linear:
        return self.classifier[2]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled and normalised embedding (dims[-1] channels)."""
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[0](x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier[2](self.classifier[1](features))


@dataclass(frozen=True)
class ConvNeXtVariant:
    depths: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]
    drop_path_rate: float  # the constructor's default
    grn: bool = False  # ConvNeXt V2


CONVNEXT_VARIANTS = {
    # ConvNeXt V1; drop-path rates as torchvision's ImageNet training recipes.
    "convnext_tiny": ConvNeXtVariant((3, 3, 9, 3), (96, 192, 384, 768), 0.1),
    "convnext_small": ConvNeXtVariant((3, 3, 27, 3), (96, 192, 384, 768), 0.4),
    "convnext_base": ConvNeXtVariant((3, 3, 27, 3), (128, 256, 512, 1024), 0.5),
    "convnext_large": ConvNeXtVariant((3, 3, 27, 3), (192, 384, 768, 1536), 0.5),
    # ConvNeXt V2; drop-path rates of the ImageNet-1K fine-tuning recipes. The official repository,
    # facebookresearch/ConvNeXt-V2, gives three, in TRAINING.md's fine-tuning commands: --drop_path 0.1
    # for convnextv2_atto, 0.2 for convnextv2_tiny and 0.1 for convnextv2_base; ours agree. Its
    # README.md refers for the other sizes to the paper's appendix, which the repository does not
    # hold: femto, pico, nano (0.1) and large, huge (0.2) are this project's earlier reading of that
    # appendix, not confirmed by the repository.
    "convnextv2_atto": ConvNeXtVariant((2, 2, 6, 2), (40, 80, 160, 320), 0.1, grn=True),
    "convnextv2_femto": ConvNeXtVariant((2, 2, 6, 2), (48, 96, 192, 384), 0.1, grn=True),
    "convnextv2_pico": ConvNeXtVariant((2, 2, 6, 2), (64, 128, 256, 512), 0.1, grn=True),
    "convnextv2_nano": ConvNeXtVariant((2, 2, 8, 2), (80, 160, 320, 640), 0.1, grn=True),
    "convnextv2_tiny": ConvNeXtVariant((3, 3, 9, 3), (96, 192, 384, 768), 0.2, grn=True),
    "convnextv2_base": ConvNeXtVariant((3, 3, 27, 3), (128, 256, 512, 1024), 0.1, grn=True),
    "convnextv2_large": ConvNeXtVariant((3, 3, 27, 3), (192, 384, 768, 1536), 0.2, grn=True),
    "convnextv2_huge": ConvNeXtVariant((3, 3, 27, 3), (352, 704, 1408, 2816), 0.2, grn=True),
}


def _register(name: str, variant: ConvNeXtVariant) -> None:
    def constructor(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                    drop_path_rate: float = variant.drop_path_rate, stem: str = "imagenet",
                    norm: str = "layernorm") -> ConvNeXt:
        return ConvNeXt(variant.depths, variant.dims, variant.grn, num_classes, in_chans, drop_rate, drop_path_rate,
                        stem, norm)

    constructor.__name__ = name
    constructor.__doc__ = (f"{name}: ConvNeXt {'V2' if variant.grn else 'V1'}, depths {list(variant.depths)}, "
                           f"dims {list(variant.dims)}.")
    register_model(constructor)


for _name, _variant in CONVNEXT_VARIANTS.items():
    _register(_name, _variant)
