"""Weight initialisation schemes that MODEL.INIT can impose instead of a model's own (paper) init."""
from __future__ import annotations

import math

from torch import nn

INIT_SCHEMES = ("default", "kaiming", "xavier", "lecun")


def init_conv_and_batchnorm(model: nn.Module) -> None:
    """The He et al. (2015) init most CNN papers use: convs normal with fan_out and ReLU gain, zero
    conv biases, and BatchNorm as the identity (scale 1, shift 0). Linear layers are left to the model."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def apply_init(model: nn.Module, scheme: str) -> None:
    """Re-initialise every conv and linear layer of `model` with `scheme`; biases become zero.

    "default" keeps the model's own initialisation. Norm layers are left as they are.
    - kaiming: He normal, fan_in, for ReLU networks
    - xavier: Glorot uniform
    - lecun: normal with std 1 / sqrt(fan_in), truncated at two standard deviations
    """
    if scheme == "default":
        return
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {INIT_SCHEMES}")
    for module in model.modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        if scheme == "kaiming":
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif scheme == "xavier":
            nn.init.xavier_uniform_(module.weight)
        else:
            fan_in = module.weight[0].numel()
            std = 1.0 / math.sqrt(fan_in)
            nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
