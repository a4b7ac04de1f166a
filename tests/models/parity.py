"""Checks that one of our models is the architecture torchvision ships under the same name.

Used by the per-family test files: same parameter count, and the same logits after
torchvision's (randomised) weights are loaded through MODEL.PRETRAINED.
"""
from __future__ import annotations

import torch
import torchvision

from config import get_config
from models import build_model


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomise_norm_statistics(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every norm layer non-trivial scales, shifts and running statistics, so that a weight
    loaded into the wrong norm layer changes the logits."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
            if isinstance(module, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm)) and module.weight is not None:
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)


# Large enough for the ImageNet stem (MODEL.STEM auto takes it above 64 px) and for every model's
# last stage to keep a spatial map, and a fifth of 224 px's arithmetic: the check is that the same
# weights meet the same layers, which does not need full-size images.
PARITY_IMG_SIZE = 96


def assert_matches_torchvision(name: str, tmp_path, img_size: int = PARITY_IMG_SIZE, atol: float = 1e-4,
                               **torchvision_kwargs) -> None:
    """Our `name` and torchvision's `name` (1000 classes, ImageNet stem) count the same parameters and,
    with torchvision's weights loaded through MODEL.PRETRAINED, give the same eval-mode logits."""
    torch.manual_seed(0)
    reference = torchvision.models.get_model(name, weights=None, **torchvision_kwargs).eval()
    randomise_norm_statistics(reference, torch.Generator().manual_seed(1))
    weights_file = tmp_path / f"{name}-torchvision.pth"
    torch.save(reference.state_dict(), weights_file)

    # Above 64 px MODEL.STEM auto picks the ImageNet stem.
    cfg = get_config(None, ["MODEL.NAME", name, "MODEL.NUM_CLASSES", "1000", "DATA.IMG_SIZE", str(img_size),
                            "MODEL.PRETRAINED", repr(str(weights_file))])
    ours = build_model(cfg).eval()
    assert parameter_count(ours) == parameter_count(reference)

    images = torch.randn(2, 3, img_size, img_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert actual.shape == (2, 1000)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)
    # Randomly initialised logits are small (std ~0.1), so also compare relative to their spread:
    # a wrong BatchNorm eps in a few layers stays under atol but not under this.
    torch.testing.assert_close(actual, expected, atol=1e-3 * expected.std().item(), rtol=0)
