"""ConvNeXt V1 and V2: torchvision parity, published sizes, norm options, stems and drop path."""
import pytest
import torch
from torch import nn

import models.convnext  # noqa: F401  (registers the ConvNeXt constructors)
from config import get_config
from models import build_model, create_model
from models.convnext import ChannelsLastBatchNorm, ConvNeXt
from models.layers import GRN, DropPath, DyT
from tests.models.parity import assert_matches_torchvision, parameter_count

V1_DEFAULT_DROP_PATH_RATES = {"convnext_tiny": 0.1, "convnext_small": 0.4, "convnext_base": 0.5, "convnext_large": 0.5}

# Parameters in millions at 1000 classes, as published in the ConvNeXt V2 paper and repository.
V2_PUBLISHED_MILLIONS = {"convnextv2_atto": 3.71, "convnextv2_femto": 5.23, "convnextv2_pico": 9.07,
                         "convnextv2_nano": 15.62, "convnextv2_tiny": 28.64, "convnextv2_base": 88.72,
                         "convnextv2_large": 197.96, "convnextv2_huge": 660.29}

NORM_LAYER_TYPES = {"layernorm": nn.LayerNorm, "batchnorm": nn.modules.batchnorm._BatchNorm, "dyt": DyT}


def build_on_meta(name: str, **kwargs) -> nn.Module:
    """The model with parameters that take no memory: for counting and inspecting only."""
    with torch.device("meta"):
        return create_model(name, **kwargs)


def norm_layer_names(model: nn.Module, norm: str) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, NORM_LAYER_TYPES[norm])]


def block_drop_path_rates(model: nn.Module) -> list[float]:
    return [module.drop_prob for module in model.modules() if isinstance(module, DropPath)]


@pytest.mark.parametrize("name", ["convnext_tiny", *(pytest.param(name, marks=pytest.mark.slow) for name in
                                                      ("convnext_small", "convnext_base", "convnext_large"))])
def test_convnext_v1_matches_torchvision(name, tmp_path):
    assert_matches_torchvision(name, tmp_path)


@pytest.mark.parametrize("name, millions", V2_PUBLISHED_MILLIONS.items())
def test_convnextv2_parameter_count_matches_the_paper(name, millions):
    assert round(parameter_count(build_on_meta(name)) / 1e6, 2) == millions


def test_v1_blocks_have_layer_scale_and_v2_blocks_grn_instead():
    v1, v2 = build_on_meta("convnext_tiny"), build_on_meta("convnextv2_tiny")
    v1_block, v2_block = v1.features[1][0], v2.features[1][0]
    assert v1_block.layer_scale.shape == (96, 1, 1) and not any(isinstance(m, GRN) for m in v1.modules())
    assert v2_block.layer_scale is None and sum(isinstance(m, GRN) for m in v2.modules()) == 3 + 3 + 9 + 3
    grn = next(m for m in v2_block.block if isinstance(m, GRN))
    assert grn.gamma.shape == (1, 1, 1, 4 * 96)
    assert torch.equal(create_model("convnext_tiny").features[1][0].layer_scale, torch.full((96, 1, 1), 1e-6))


@pytest.mark.parametrize("name", ["convnext_tiny", "convnextv2_atto"])
@pytest.mark.parametrize("norm", ["layernorm", "batchnorm", "dyt"])
def test_every_norm_trains_one_optimizer_step(name, norm):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, stem="cifar", drop_path_rate=0.0, norm=norm).train()
    before = {key: p.detach().clone() for key, p in model.named_parameters()}
    # No weight decay, so only a gradient moves a parameter; and an eps far below the ~1e-14
    # gradients that V1's layer scale (1e-6) lets into the blocks' norms, so that those move too.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-30)
    loss = nn.functional.cross_entropy(model(torch.randn(2, 3, 32, 32)), torch.tensor([1, 7]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    unchanged = [key for key, p in model.named_parameters() if torch.equal(p, before[key])]
    assert unchanged == []


@pytest.mark.parametrize("norm", ["batchnorm", "dyt"])
@pytest.mark.parametrize("name", ["convnext_tiny", "convnextv2_atto"])
def test_norm_option_replaces_every_layernorm(name, norm):
    layernorm_places = norm_layer_names(build_on_meta(name), "layernorm")
    model = build_on_meta(name, norm=norm)
    assert not any(isinstance(m, nn.LayerNorm) for m in model.modules())
    # stem, 3 downsampling layers, one per block, and the final norm
    assert len(layernorm_places) == 1 + 3 + (3 + 3 + 9 + 3 if name == "convnext_tiny" else 2 + 2 + 6 + 2) + 1
    assert norm_layer_names(model, norm) == layernorm_places


def test_norms_follow_the_memory_layout_of_their_input():
    model = build_on_meta("convnextv2_atto", norm="dyt")
    channels_last = {name: m.channels_last for name, m in model.named_modules() if isinstance(m, DyT)}
    assert not channels_last["features.0.1"] and not channels_last["features.2.0"]
    assert channels_last["features.1.0.block.2"] and channels_last["classifier.0"]
    model = build_on_meta("convnextv2_atto", norm="batchnorm")
    assert type(model.features[0][1]) is nn.BatchNorm2d and type(model.features[2][0]) is nn.BatchNorm2d
    assert isinstance(model.features[1][0].block[2], ChannelsLastBatchNorm)


def test_channels_last_batchnorm_equals_batchnorm2d_on_the_channels_first_layout():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 3) * 3 + 1
    channels_last, channels_first = ChannelsLastBatchNorm(5), nn.BatchNorm2d(5)
    with torch.no_grad():
        for norm in (channels_last, channels_first):
            norm.weight.copy_(torch.arange(1.0, 6.0))
            norm.bias.copy_(torch.arange(5.0))
    torch.testing.assert_close(channels_last(x.permute(0, 2, 3, 1)), channels_first(x).permute(0, 2, 3, 1))
    torch.testing.assert_close(channels_last.running_var, channels_first.running_var)


@pytest.mark.parametrize("name, stem, size", [("convnextv2_atto", "cifar", 32), ("convnext_tiny", "cifar", 32),
                                              ("convnextv2_atto", "imagenet", 224)])
def test_logits_are_finite_and_every_parameter_gets_a_gradient(name, stem, size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, stem=stem)
    logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert [key for key, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("stem, patch, final_size", [("cifar", 2, 2), ("imagenet", 4, 1)])
def test_cifar_stem_keeps_32px_at_2x2_before_pooling(stem, patch, final_size):
    model = create_model("convnextv2_atto", stem=stem)
    assert model.features[0][0].kernel_size == (patch, patch) and model.features[0][0].stride == (patch, patch)
    with torch.no_grad():
        feature_map = model.features(torch.randn(2, 3, 32, 32))
    assert feature_map.shape == (2, 320, final_size, final_size)


def test_imagenet_stem_ends_at_7x7_for_224px():
    with torch.no_grad():
        assert create_model("convnextv2_atto").features(torch.randn(1, 3, 224, 224)).shape == (1, 320, 7, 7)


def test_config_reaches_the_norm_and_stem_options():
    cfg = get_config(None, ["MODEL.NAME", "convnextv2_atto", "MODEL.NUM_CLASSES", "10", "DATA.IMG_SIZE", "32",
                            "MODEL.CONVNEXT.NORM", "dyt"])
    model = build_model(cfg)
    assert isinstance(model.classifier[0], DyT) and model.features[0][0].stride == (2, 2)


@pytest.mark.parametrize("name, default_rate", [*V1_DEFAULT_DROP_PATH_RATES.items(), ("convnextv2_atto", 0.1)])
def test_drop_path_rates_rise_linearly_from_zero_to_the_variant_default(name, default_rate):
    rates = block_drop_path_rates(build_on_meta(name))
    assert len(rates) == sum(len(stage) for stage in build_on_meta(name).features[1::2])
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(default_rate)
    steps = [later - earlier for earlier, later in zip(rates, rates[1:])]
    assert steps == pytest.approx([default_rate / (len(rates) - 1)] * len(steps))


# facebookresearch/ConvNeXt-V2, TRAINING.md: the --drop_path of its ImageNet-1K fine-tuning commands.
V2_OFFICIAL_DROP_PATH_RATES = {"convnextv2_atto": 0.1, "convnextv2_tiny": 0.2, "convnextv2_base": 0.1}


@pytest.mark.parametrize("name, rate", V2_OFFICIAL_DROP_PATH_RATES.items())
def test_v2_default_drop_path_rates_are_the_official_repositorys(name, rate):
    assert block_drop_path_rates(build_on_meta(name))[-1] == pytest.approx(rate)


def test_drop_path_rate_argument_sets_the_last_blocks_rate():
    rates = block_drop_path_rates(build_on_meta("convnextv2_atto", drop_path_rate=0.3))
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3) and rates[6] == pytest.approx(0.3 * 6 / 11)


def test_drop_path_drops_branches_in_training_and_is_the_identity_at_eval():
    torch.manual_seed(0)
    dropping = create_model("convnextv2_atto", num_classes=10, drop_path_rate=0.9, stem="cifar")
    plain = create_model("convnextv2_atto", num_classes=10, drop_path_rate=0.0, stem="cifar")
    plain.load_state_dict(dropping.state_dict())
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(dropping.train()(images), plain.train()(images))
        torch.testing.assert_close(dropping.eval()(images), plain.eval()(images), atol=0, rtol=0)


def test_forward_is_head_of_pooled_normed_features():
    model = create_model("convnextv2_atto", num_classes=5, stem="cifar", drop_rate=0.3).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(images)
        pooled = model.features(images).mean(dim=(2, 3))
        torch.testing.assert_close(features, nn.functional.layer_norm(
            pooled, (320,), model.classifier[0].weight, model.classifier[0].bias, eps=1e-6))
        torch.testing.assert_close(model.forward_head(features), model(images))
    assert features.shape == (2, 320) and model.num_features == 320
    assert model.get_classifier() is model.classifier[2] and model.get_classifier().out_features == 5
    assert isinstance(model.classifier[1], nn.Dropout) and model.classifier[1].p == 0.3


def test_conv_and_linear_weights_start_truncated_normal_with_zero_biases():
    torch.manual_seed(0)
    model = create_model("convnext_tiny")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(torch.count_nonzero(m.bias) == 0 for m in layers)
    weights = torch.cat([m.weight.flatten() for m in layers])
    assert weights.std().item() == pytest.approx(0.02, rel=0.01) and weights.mean().abs().item() < 1e-4


@pytest.mark.parametrize("option", [{"stem": "tiny"}, {"norm": "groupnorm"}])
def test_unknown_stem_or_norm_is_rejected(option):
    with pytest.raises(ValueError):
        create_model("convnextv2_atto", **option)


def test_one_model_class_serves_both_versions():
    assert type(build_on_meta("convnext_tiny")) is ConvNeXt is type(build_on_meta("convnextv2_huge"))
