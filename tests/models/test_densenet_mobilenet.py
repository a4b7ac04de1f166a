"""DenseNet-121/169 and MobileNetV2: torchvision parity, both stems, and MobileNetV2's width multiplier."""
import pytest
import torch
import torchvision

import models.densenet  # noqa: F401  (registration side effect)
import models.mobilenet_v2  # noqa: F401  (registration side effect)
from models import create_model
from tests.models.parity import assert_matches_torchvision

NAMES = ["densenet121", "densenet169", "mobilenet_v2"]


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_and_shapes_are_torchvisions(name):
    ours = create_model(name).state_dict()
    reference = torchvision.models.get_model(name, weights=None).state_dict()
    assert list(ours) == list(reference)
    assert {key: tuple(value.shape) for key, value in ours.items()} == {
        key: tuple(value.shape) for key, value in reference.items()}


@pytest.mark.parametrize("name", NAMES)
def test_matches_torchvision_parameters_and_logits(name, tmp_path):
    assert_matches_torchvision(name, tmp_path)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("stem, size, final_size", [("cifar", 32, 4), ("imagenet", 224, 7)])
def test_both_stems_give_finite_logits_gradients_and_the_expected_final_map(name, stem, size, final_size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, stem=stem)
    final_maps = []
    model.features.register_forward_hook(lambda module, inputs, output: final_maps.append(output.shape[-2:]))
    logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    # The point of the cifar stem: a 32 px input still has a spatial map to pool at the end.
    assert tuple(final_maps[0]) == (final_size, final_size)


def test_densenet_cifar_stem_is_a_3x3_stride_1_conv_without_max_pool():
    cifar, imagenet = create_model("densenet121", stem="cifar"), create_model("densenet121")
    assert (cifar.features.conv0.kernel_size, cifar.features.conv0.stride) == ((3, 3), (1, 1))
    assert isinstance(cifar.features.pool0, torch.nn.Identity)
    assert (imagenet.features.conv0.kernel_size, imagenet.features.conv0.stride) == ((7, 7), (2, 2))
    assert isinstance(imagenet.features.pool0, torch.nn.MaxPool2d)


def test_mobilenet_v2_cifar_stem_removes_only_the_first_two_downsamplings():
    def strides(model):
        return [m.stride[0] for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.stride[0] != 1]

    assert len(strides(create_model("mobilenet_v2"))) == 5
    assert len(strides(create_model("mobilenet_v2", stem="cifar"))) == 3
    cifar = create_model("mobilenet_v2", stem="cifar")
    assert cifar.features[0][0].stride == (1, 1)
    assert cifar.features[2].conv[1][0].stride == (1, 1)  # first block of t=6, c=24
    assert cifar.features[4].conv[1][0].stride == (2, 2)  # first block of t=6, c=32


@pytest.mark.parametrize("name", NAMES)
def test_forward_is_head_of_pooled_features_and_get_classifier_gives_the_output_linear(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_chans=1, stem="cifar").eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, model.get_classifier().in_features)
        torch.testing.assert_close(model.forward_head(features), model(x))
    classifier = model.get_classifier()
    assert isinstance(classifier, torch.nn.Linear) and classifier.out_features == 5


@pytest.mark.parametrize("name, default", [("densenet121", 0.0), ("densenet169", 0.0), ("mobilenet_v2", 0.2)])
def test_drop_rate_is_the_dropout_right_before_the_classifier(name, default):
    def dropouts(model):
        return [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]

    assert dropouts(create_model(name)) == [default]
    assert dropouts(create_model(name, drop_rate=0.3)) == [0.3]
    model = create_model(name, drop_rate=1.0).train()
    with torch.no_grad():
        model.get_classifier().bias.fill_(1.0)  # zero at init, which would hide dropout applied after the linear
        logits = model.forward_head(torch.ones(2, model.get_classifier().in_features))
    torch.testing.assert_close(logits, model.get_classifier().bias.expand(2, -1))


@pytest.mark.parametrize("width_mult, first_channels, last_channels", [(0.5, 16, 1280), (1.0, 32, 1280),
                                                                     (1.4, 48, 1792)])
def test_mobilenet_v2_width_multiplier_scales_channels_as_the_paper(width_mult, first_channels, last_channels):
    model = create_model("mobilenet_v2", num_classes=10, stem="cifar", width_mult=width_mult)
    assert model.features[0][0].out_channels == first_channels
    assert model.features[-1][0].out_channels == last_channels
    assert model.get_classifier().in_features == last_channels
    assert count(model) - count(model.get_classifier()) == count(
        torchvision.models.mobilenet_v2(width_mult=width_mult)) - (last_channels * 1000 + 1000)
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_unknown_stem_is_refused():
    for name in NAMES:
        with pytest.raises(ValueError, match="stem must be 'imagenet' or 'cifar'"):
            create_model(name, stem="tiny")
