"""Building blocks shared by the model zoo. Each lives here once; model files import them.

The activation registry (MODEL.ACT), norm-and-activation convolutions, squeeze-and-excitation,
stochastic depth (DropPath), DropBlock, a channels-first LayerNorm, ConvNeXt V2's global response
normalisation, and Dynamic Tanh.
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DropBlock2d, drop_block2d

from utils.choices import resolve_choice

# Activation name -> a factory of fresh modules. ReLU and LeakyReLU run in place, as torchvision's
# ReLUs do (their gradients need only the output); the others keep their input for the backward pass.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": partial(nn.ReLU, inplace=True),
    "leaky_relu": partial(nn.LeakyReLU, negative_slope=0.01, inplace=True),
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,  # Ramachandran et al. (2017); the same function as SiLU
    "hardswish": nn.Hardswish,
    "mish": nn.Mish,
    "tanh": nn.Tanh,  # LeNet-5's (1998)
}


def get_activation(name: str) -> Callable[[], nn.Module]:
    """The factory registered as `name` (in any case), or UserError listing the valid names."""
    return ACTIVATIONS[resolve_choice("MODEL.ACT", name, ACTIVATIONS)]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor`, never more than 10% below `value`.

    The rounding MobileNet and EfficientNet use after scaling widths.
    """
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvNormAct(nn.Sequential):
    """conv k x k ("same" padding, no bias) -> norm -> activation; norm or activation may be None.

    A Sequential whose parts are named by `layer_names`: by default `0`, `1`, `2`, as torchvision's
    Conv2dNormActivation; GoogLeNet's weights call them `conv` and `bn`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, dilation: int = 1,
                 norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
                 act_layer: Callable[..., nn.Module] | None = nn.ReLU,
                 layer_names: tuple[str, str, str] = ("0", "1", "2")):
        padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                             dilation=dilation, groups=groups, bias=norm_layer is None)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if act_layer is not None:
            layers.append(act_layer())
        super().__init__(OrderedDict(zip(layer_names, layers)))
        self.out_channels = out_channels


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018): x * gate(fc2(act(fc1(avgpool(x))))).

    The two fully connected layers are 1x1 convolutions with biases (names as torchvision's
    SqueezeExcitation).
    """

    def __init__(self, channels: int, squeeze_channels: int, act_layer: Callable[..., nn.Module] = nn.ReLU,
                 gate_layer: Callable[..., nn.Module] = nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = act_layer()
        self.scale_activation = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., 2016): in training, zero a residual branch for a random
    subset of samples and rescale the rest by 1 / (1 - drop_prob); the identity at eval."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep_prob = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
        return x * mask / keep_prob

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class DropBlock(DropBlock2d):
    """DropBlock (Ghiasi et al., 2018) as torchvision's DropBlock2d: in training, zero `block_size` x
    `block_size` squares of each channel so that a share `p` of the activations is dropped, and rescale
    the rest; the identity at eval.

    The block side is clamped to the largest odd side that fits the feature map, where torchvision
    would raise (it centres each block on a pixel, so it takes odd sides only): 7 becomes 3 on a
    4 x 4 map.
    """

    def __init__(self, p: float, block_size: int = 7):
        if block_size < 1 or block_size % 2 == 0:
            raise ValueError(f"block_size must be odd and positive, got {block_size}")
        super().__init__(p, block_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = min(self.block_size, x.shape[-2], x.shape[-1])
        side -= 1 - side % 2  # the largest odd side that fits
        return drop_block2d(x, self.p, side, self.inplace, self.eps, self.training)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a channels-first (N, C, H, W) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GRN(nn.Module):
    """Global response normalisation (ConvNeXt V2) on channels-last (N, H, W, C) input.

    Each channel's spatial L2 norm, divided by its mean over channels, rescales the input:
    x + gamma * (x * N(x)) + beta.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        global_norm = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        normalized = global_norm / (global_norm.mean(dim=-1, keepdim=True) + self.eps)
        return self.gamma * (x * normalized) + self.beta + x


class DyT(nn.Module):
    """Dynamic Tanh (Zhu et al., 2025), a drop-in replacement for a norm layer: gamma * tanh(alpha * x) + beta.

    alpha is one learnable scalar; gamma and beta are per channel, on the last dimension when
    `channels_last`, else on dimension 1.
    """

    def __init__(self, channels: int, channels_last: bool = True, alpha_init: float = 0.5):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((1,), alpha_init))
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.alpha * x)
        if self.channels_last:
            return x * self.weight + self.bias
        return x * self.weight.view(-1, 1, 1) + self.bias.view(-1, 1, 1)
