"""Every registered model, at a small and at the ImageNet input size: finite logits of the right
shape, and a backward pass that reaches every parameter."""
import pytest
import torch

from config import get_config
from models import build_model, list_models

# Sizes a model documents instead of 32 px: AlexNet's stride-4 stem and three pools need 63 px.
SMALL_SIZE = {"alexnet": 64}
# Too big to run on a CPU test machine: checked on the meta device (shapes, no values).
META_ONLY = {"convnextv2_huge"}
# Seconds each even at the small size: `make test` builds them, `make test-fast` does not.
HEAVY = {"convnext_base", "convnext_large", "convnextv2_base", "convnextv2_large"}


def build(name: str, img_size: int) -> torch.nn.Module:
    return build_model(get_config(None, ["MODEL.NAME", name, "MODEL.NUM_CLASSES", "17",
                                         "DATA.IMG_SIZE", str(img_size)]))


@pytest.mark.parametrize("img_size", ["small", pytest.param(224, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name
                                  for name in sorted(set(list_models()) - META_ONLY)])
def test_model_gives_finite_logits_and_gradients(name, img_size):
    size = SMALL_SIZE.get(name, 32) if img_size == "small" else img_size
    torch.manual_seed(0)
    model = build(name, size).train()
    outputs = model(torch.randn(2, 3, size, size))
    logits = outputs[0] if isinstance(outputs, tuple) else outputs
    assert logits.shape == (2, 17) and torch.isfinite(logits).all()
    logits.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


@pytest.mark.parametrize("name", sorted(META_ONLY))
def test_huge_models_run_forward_and_backward_on_the_meta_device(name):
    with torch.device("meta"):
        model = build(name, 224)
        logits = model(torch.empty(2, 3, 224, 224))
    assert logits.shape == (2, 17) and logits.device.type == "meta"
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
