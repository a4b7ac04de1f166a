"""MODEL.ACT: one activation registry, taken by the families whose papers fix ReLU only by convention."""
import logging

import pytest
import torch
from torch import nn

from config import get_config
from models import build_model, create_model
from models.layers import ACTIVATIONS, get_activation
from utils.errors import UserError

# The families that take `act`, each with the activation it has by default.
DEFAULT_ACTIVATIONS = {"lenet": nn.ReLU, "lenet5": nn.Tanh, "alexnet": nn.ReLU, "vgg11_bn": nn.ReLU,
                       "resnet18": nn.ReLU, "resnext50_32x4d": nn.ReLU, "se_resnet50": nn.ReLU,
                       "densenet121": nn.ReLU}


def build(*opts):
    return build_model(get_config(None, list(opts)))


def count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(type(module) is kind for module in model.modules())


def se_relus(model: nn.Module) -> int:
    """ReLUs inside squeeze-and-excitation gates, which keep their own activation."""
    return sum(type(module) is nn.ReLU for name, module in model.named_modules() if ".se." in name)


@pytest.mark.parametrize("name", DEFAULT_ACTIVATIONS)
def test_act_replaces_every_activation_of_the_trunk_and_head(name):
    default_kind = DEFAULT_ACTIVATIONS[name]
    with torch.device("meta"):
        default = create_model(name)
        gelu = create_model(name, act="gelu")
    activations = count(default, default_kind) - se_relus(default)
    assert activations > 0
    assert count(gelu, nn.GELU) == activations
    assert count(gelu, default_kind) == se_relus(default)
    assert sum(p.numel() for p in gelu.parameters()) == sum(p.numel() for p in default.parameters())


@pytest.mark.parametrize("act, kind", [("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU), ("gelu", nn.GELU),
                                       ("silu", nn.SiLU), ("swish", nn.SiLU), ("hardswish", nn.Hardswish),
                                       ("mish", nn.Mish), ("tanh", nn.Tanh)])
def test_every_activation_trains_resnet18_a_step(act, kind):
    torch.manual_seed(0)
    model = build("MODEL.NAME", "resnet18", "MODEL.ACT", act)
    assert isinstance(model.relu, kind) and isinstance(model.layer4[1].relu, kind)
    logits = model(torch.randn(2, 3, 16, 16))
    nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    assert torch.isfinite(logits).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_act_changes_the_logits_of_the_same_weights():
    torch.manual_seed(0)
    relu = create_model("lenet", num_classes=10).eval()
    gelu = create_model("lenet", num_classes=10, act="gelu").eval()
    gelu.load_state_dict(relu.state_dict())
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(relu(images), gelu(images))


def test_act_names_match_in_any_case_and_swish_is_silu():
    assert get_activation("Swish") is ACTIVATIONS["silu"]
    assert build("MODEL.ACT", "GELU").features[1].__class__ is nn.GELU  # lenet, the default model
    assert get_config(None, ["MODEL.ACT", "Leaky_ReLU"]).MODEL.ACT == "leaky_relu"


def test_an_unknown_act_is_one_line_listing_the_valid_names():
    with pytest.raises(UserError, match="unknown MODEL.ACT 'relu7'; did you mean relu\\? choose one of: relu, "
                                        "leaky_relu, gelu, silu, swish, hardswish, mish, tanh$"):
        get_config(None, ["MODEL.ACT", "relu7"])
    with pytest.raises(UserError, match="unknown MODEL.ACT 'prelu'"):
        create_model("resnet18", act="prelu")


@pytest.mark.parametrize("name, own_kind", [("efficientnet_b0", nn.SiLU), ("mobilenet_v2", nn.ReLU6),
                                            ("convnextv2_atto", nn.GELU), ("googlenet", nn.ReLU)])
def test_a_family_without_act_warns_and_keeps_its_own(name, own_kind, caplog):
    with caplog.at_level(logging.WARNING):
        model = build("MODEL.NAME", name, "MODEL.ACT", "mish")
    assert f"{name} has no act option, so MODEL.ACT 'mish' changes nothing" in caplog.text
    assert count(model, nn.Mish) == 0 and count(model, own_kind) > 0


def test_default_act_keeps_the_models_own_and_says_nothing(caplog):
    with caplog.at_level(logging.WARNING):
        model = build("MODEL.NAME", "lenet5")
    assert not caplog.records
    assert count(model, nn.Tanh) == 4 and count(model, nn.ReLU) == 0
