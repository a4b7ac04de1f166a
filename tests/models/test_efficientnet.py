"""EfficientNet B0-B3: torchvision parity, compound scaling, small and full-size inputs, stochastic depth."""
import pytest
import torch
import torchvision

# Importing models.efficientnet registers its constructors, whether or not models/__init__.py does.
from models.efficientnet import EFFICIENTNET_VARIANTS, MBConv
from models.layers import DropPath
from models.registry import create_model
from tests.models.parity import assert_matches_torchvision

NAMES = list(EFFICIENTNET_VARIANTS)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run this file's small convolutions on one thread: on the 2-core CPU, two OpenMP threads that
    share it with another process spin and make the file about ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blocks(model: torch.nn.Module) -> list[MBConv]:
    """The MBConv blocks in data-flow order."""
    return [module for module in model.modules() if isinstance(module, MBConv)]


@pytest.mark.parametrize("name", NAMES)
def test_matches_torchvision(name, tmp_path):
    # 224 px for every variant, not its paper resolution: the resolution changes no weight, and
    # 224 px keeps the four forward passes fast.
    assert_matches_torchvision(name, tmp_path, img_size=224)


@pytest.mark.parametrize("name", NAMES)
def test_batchnorm_eps_and_momentum_match_torchvision(name):
    # Checked apart from the logits: random-init logits are small (about 0.1), so the parity
    # tolerance does not notice eps 1e-3 instead of 1e-5 in some of the layers.
    def settings(model: torch.nn.Module) -> dict[str, tuple[float, float]]:
        return {key: (module.eps, module.momentum) for key, module in model.named_modules()
                if isinstance(module, torch.nn.BatchNorm2d)}

    assert settings(create_model(name)) == settings(torchvision.models.get_model(name))


@pytest.mark.parametrize("name, stem_channels, stage_channels, stage_repeats, head_channels", [
    ("efficientnet_b0", 32, [16, 24, 40, 80, 112, 192, 320], [1, 2, 2, 3, 3, 4, 1], 1280),
    ("efficientnet_b1", 32, [16, 24, 40, 80, 112, 192, 320], [2, 3, 3, 4, 4, 5, 2], 1280),
    ("efficientnet_b2", 32, [16, 24, 48, 88, 120, 208, 352], [2, 3, 3, 4, 4, 5, 2], 1408),
    # 16 x 1.2 = 19.2 rounds to 24, not 16: make_divisible never rounds more than 10% down.
    ("efficientnet_b3", 40, [24, 32, 48, 96, 136, 232, 384], [2, 3, 3, 5, 5, 6, 2], 1536),
])
def test_compound_scaling_rounds_widths_to_eights_and_depths_up(name, stem_channels, stage_channels, stage_repeats,
                                                                head_channels):
    model = create_model(name)
    stages = list(model.features)[1:-1]
    assert model.features[0][0].out_channels == stem_channels
    assert [stage[-1].block[-1][0].out_channels for stage in stages] == stage_channels
    assert [len(stage) for stage in stages] == stage_repeats
    assert model.features[-1][0].out_channels == head_channels == model.get_classifier().in_features


@pytest.mark.parametrize("name", NAMES)
def test_cifar_stem_gives_finite_logits_and_gradients_at_32px(name):
    model = create_model(name, num_classes=10, stem="cifar")
    images = torch.randn(2, 3, 32, 32)
    assert min(model.features(images).shape[-2:]) >= 2  # the last feature map before pooling
    logits = model(images)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_cifar_stem_changes_only_the_two_first_strides():
    imagenet, cifar = create_model("efficientnet_b0"), create_model("efficientnet_b0", stem="cifar")
    strides = {name: module.stride for name, module in imagenet.named_modules() if isinstance(module, torch.nn.Conv2d)}
    changed = {name for name, module in cifar.named_modules()
               if isinstance(module, torch.nn.Conv2d) and module.stride != strides[name]}
    assert changed == {"features.0.0", "features.2.0.block.1.0"}
    assert cifar.features[0][0].stride == cifar.features[2][0].block[1][0].stride == (1, 1)


def test_b0_gives_finite_logits_and_gradients_at_224px():
    model = create_model("efficientnet_b0", num_classes=7)
    logits = model(torch.randn(2, 3, 224, 224))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_forward_is_head_of_pooled_features():
    model = create_model("efficientnet_b0", num_classes=5, stem="cifar").eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(images)
        assert features.shape == (2, 1280)
        torch.testing.assert_close(model.forward_head(features), model(images))


def test_in_chans_sets_the_stem_input_channels():
    model = create_model("efficientnet_b0", num_classes=3, in_chans=1, stem="cifar")
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("name", NAMES)
def test_drop_rate_defaults_to_the_variants_dropout_before_the_classifier(name):
    model = create_model(name)
    assert isinstance(model.get_classifier(), torch.nn.Linear)
    assert model.get_classifier() is model.classifier[1]
    assert model.classifier[0].p == EFFICIENTNET_VARIANTS[name].dropout
    assert create_model(name, drop_rate=0.5).classifier[0].p == 0.5


def test_drop_path_rates_rise_linearly_over_all_blocks_as_torchvision():
    rate = 0.3
    # B1, because its last stage has two blocks, so the last block is residual and shows the top rate.
    ours = blocks(create_model("efficientnet_b1", drop_path_rate=rate))
    num_blocks = len(ours)
    assert num_blocks == 23
    for index, block in enumerate(ours):
        if block.use_residual:
            assert block.drop_path.drop_prob == pytest.approx(rate * index / num_blocks)
        else:
            assert not any(isinstance(m, DropPath) for m in block.modules())
    assert ours[-1].drop_path.drop_prob == pytest.approx(rate * (num_blocks - 1) / num_blocks)

    reference = torchvision.models.efficientnet_b1(stochastic_depth_prob=rate)
    reference_rates = [m.stochastic_depth.p for m in reference.modules()
                       if isinstance(m, torchvision.models.efficientnet.MBConv) and m.use_res_connect]
    assert [block.drop_path.drop_prob for block in ours if block.use_residual] == reference_rates


def test_drop_path_is_random_in_training_and_the_identity_at_eval():
    model = create_model("efficientnet_b0", num_classes=10, stem="cifar", drop_rate=0.0, drop_path_rate=0.9)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.manual_seed(0)
        first = model(images)
        torch.manual_seed(1)
        second = model(images)
        assert not torch.allclose(first, second)

        # After the training passes, so that both share the running statistics they updated.
        without_drop_path = create_model("efficientnet_b0", num_classes=10, stem="cifar", drop_path_rate=0.0)
        without_drop_path.load_state_dict(model.state_dict())
        torch.testing.assert_close(model.eval()(images), without_drop_path.eval()(images))


def test_unknown_stem_is_rejected():
    with pytest.raises(ValueError, match="stem"):
        create_model("efficientnet_b0", stem="tiny")
