"""DropBlock (MODEL.DROP_BLOCK_RATE, MODEL.DROP_BLOCK_SIZE) in the ResNet family's stages 3 and 4."""
import logging

import pytest
import torch
from torch import nn
from torchvision.ops import DropBlock2d

from config import get_config
from models import build_model, create_model
from models.layers import DropBlock
from utils.errors import UserError


def build(*opts):
    return build_model(get_config(None, list(opts)))


def drop_blocks(module: nn.Module) -> list[DropBlock]:
    return [m for m in module.modules() if isinstance(m, DropBlock)]


def test_drop_block_sits_in_stages_3_and_4_with_a_quarter_of_the_rate_in_stage_3():
    with torch.device("meta"):
        model = create_model("resnet50", drop_block_rate=0.2, drop_block_size=5)
    assert drop_blocks(model.layer1) == [] and drop_blocks(model.layer2) == []
    assert [block.p for block in drop_blocks(model.layer3)] == [pytest.approx(0.05)] * 6
    assert [block.p for block in drop_blocks(model.layer4)] == [0.2] * 3
    assert {block.block_size for block in drop_blocks(model)} == {5}


def test_drop_block_is_off_by_default():
    with torch.device("meta"):
        assert drop_blocks(build("MODEL.NAME", "resnet50")) == []


def test_config_reaches_the_drop_block_options():
    with torch.device("meta"):
        model = build("MODEL.NAME", "resnet18", "MODEL.DROP_BLOCK_RATE", "0.1", "MODEL.DROP_BLOCK_SIZE", "3")
    assert [(block.p, block.block_size) for block in drop_blocks(model.layer4)] == [(0.1, 3)] * 2
    assert all(isinstance(block, DropBlock2d) for block in drop_blocks(model))  # torchvision's, underneath


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_drop_block_changes_activations_in_train_mode_and_not_in_eval_mode(name):
    torch.manual_seed(0)
    dropping = create_model(name, num_classes=10, stem="cifar", drop_block_rate=0.5)
    plain = create_model(name, num_classes=10, stem="cifar")
    plain.load_state_dict(dropping.state_dict())  # DropBlock has no parameters: the same weights
    images = torch.randn(2, 3, 16, 16)  # stage 3 at 4 x 4, stage 4 at 2 x 2
    with torch.no_grad():
        # Eval first: a train-mode pass updates the BatchNorm statistics differently in the two models.
        torch.testing.assert_close(dropping.eval()(images), plain.eval()(images), atol=0, rtol=0)
        assert not torch.equal(dropping.train()(images), plain.train()(images))


def test_drop_block_shrinks_the_block_to_an_odd_side_that_fits_the_feature_map():
    feature_map = torch.ones(2, 8, 4, 4)
    with pytest.raises(ValueError, match="block size should be odd"):
        DropBlock2d(0.5, 7)(feature_map)  # torchvision clamps 7 to 4, then refuses it
    torch.manual_seed(0)
    dropped = DropBlock(0.5, 7).train()(feature_map)
    zeros = dropped == 0
    assert zeros.any() and not zeros.all()
    # A 3 x 3 block on a 4 x 4 map always covers the centre 2 x 2 of its channel.
    channels_hit = zeros.flatten(2).any(-1)
    assert zeros[:, :, 1:3, 1:3].all(-1).all(-1).eq(channels_hit).all()


def test_drop_block_is_the_identity_at_eval():
    feature_map = torch.randn(2, 8, 8, 8)
    assert DropBlock(0.9, 7).eval()(feature_map) is feature_map


@pytest.mark.parametrize("option, value, warning", [
    ("MODEL.DROP_BLOCK_RATE", "0.1", "densenet121 has no drop_block_rate option, so MODEL.DROP_BLOCK_RATE 0.1"),
    ("MODEL.DROP_BLOCK_SIZE", "5", "densenet121 has no drop_block_size option, so MODEL.DROP_BLOCK_SIZE 5"),
])
def test_a_family_without_drop_block_warns(option, value, warning, caplog):
    with caplog.at_level(logging.WARNING), torch.device("meta"):
        model = build("MODEL.NAME", "densenet121", option, value)
    assert f"{warning} changes nothing" in caplog.text
    assert drop_blocks(model) == []


@pytest.mark.parametrize("option, value, message", [
    ("MODEL.DROP_BLOCK_RATE", "1.0", "MODEL.DROP_BLOCK_RATE must be in \\[0, 1\\)"),
    ("MODEL.DROP_BLOCK_RATE", "-0.1", "MODEL.DROP_BLOCK_RATE must be in \\[0, 1\\)"),
    ("MODEL.DROP_BLOCK_SIZE", "4", "MODEL.DROP_BLOCK_SIZE must be an odd number of pixels, e.g. 7; got 4"),
    ("MODEL.DROP_BLOCK_SIZE", "0", "MODEL.DROP_BLOCK_SIZE must be an odd number of pixels"),
])
def test_bad_drop_block_values_are_refused(option, value, message):
    with pytest.raises(UserError, match=message):
        get_config(None, [option, value])


# --- stochastic depth (MODEL.DROP_PATH_RATE) in the ResNet family ---------------------------------

def test_resnet_drop_path_rises_linearly_over_the_blocks_from_the_config():
    from models.layers import DropPath
    with torch.device("meta"):
        model = build("MODEL.NAME", "resnet18", "MODEL.DROP_PATH_RATE", "0.3")
        plain = build("MODEL.NAME", "resnet18")
    rates = [block.drop_path.drop_prob if isinstance(block.drop_path, DropPath) else 0.0
             for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for block in stage]
    assert rates == pytest.approx([0.3 * i / 7 for i in range(8)])
    assert not any(isinstance(m, DropPath) for m in plain.modules())


def test_resnet_drop_path_changes_training_outputs_only():
    torch.manual_seed(0)
    dropping = create_model("resnet18", num_classes=10, stem="cifar", drop_path_rate=0.5)
    plain = create_model("resnet18", num_classes=10, stem="cifar")
    plain.load_state_dict(dropping.state_dict())
    images = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(dropping.eval()(images), plain.eval()(images), atol=0, rtol=0)
        assert not torch.equal(dropping.train()(images), plain.train()(images))
