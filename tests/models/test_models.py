"""Models: registry, output shapes, the embedding/head split, and AlexNet's exact size."""
import pytest
import torch

import models
from config import get_config
from models import build_model, create_model, list_models
from utils.errors import UserError


def alexnet_parameters_by_hand(num_classes: int) -> int:
    convs = [(3, 64, 11), (64, 192, 5), (192, 384, 3), (384, 256, 3), (256, 256, 3)]
    fcs = [(256 * 6 * 6, 4096), (4096, 4096), (4096, num_classes)]
    return (sum(c_in * c_out * k * k + c_out for c_in, c_out, k in convs)
            + sum(n_in * n_out + n_out for n_in, n_out in fcs))


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_the_foundation_models():
    assert {"lenet", "alexnet", "resnet18"} <= set(list_models())


@pytest.mark.parametrize("num_classes", [1000, 10])
def test_alexnet_parameter_count_matches_the_spec(num_classes):
    assert count(create_model("alexnet", num_classes=num_classes)) == alexnet_parameters_by_hand(num_classes)
    assert alexnet_parameters_by_hand(1000) == 61_100_840


def test_alexnet_layers_follow_the_spec():
    model = create_model("alexnet", num_classes=10)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)]
    relus_after_conv = [isinstance(model.features[i + 1], torch.nn.ReLU)
                        for i, m in enumerate(model.features) if isinstance(m, torch.nn.Conv2d)]
    assert all(relus_after_conv)
    dropouts = [m.p for m in model.classifier if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.5, 0.5]


def test_lenet_has_the_classic_size_for_ten_classes():
    # conv 3->6 5x5, conv 6->16 5x5, fc 400->120->84->10
    expected = (3 * 6 * 25 + 6) + (6 * 16 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert count(create_model("lenet", num_classes=10)) == expected


def test_resnet18_cifar_form_keeps_32px_resolution_in_the_stem():
    model = create_model("resnet18", num_classes=10, stem="cifar")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert [len(layer) for layer in (model.layer1, model.layer2, model.layer3, model.layer4)] == [2, 2, 2, 2]
    assert count(model) == 11_173_962  # the well-known CIFAR ResNet-18 size


@pytest.mark.parametrize("name, size", [("lenet", 32), ("alexnet", 64), ("resnet18", 32), ("lenet", 64)])
def test_models_give_finite_logits_and_backpropagate(name, size):
    model = create_model(name, num_classes=7)
    x = torch.randn(2, 3, size, size)
    logits = model(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name, size", [("lenet", 32), ("alexnet", 64), ("resnet18", 32)])
def test_forward_is_head_of_features(name, size):
    model = create_model(name, num_classes=5).eval()
    x = torch.randn(2, 3, size, size)
    features = model.forward_features(x)
    assert features.ndim == 2 and features.shape[0] == 2
    torch.testing.assert_close(model.forward_head(features), model(x))


def test_drop_rate_adds_dropout_before_the_classifier():
    model = create_model("resnet18", num_classes=10, drop_rate=0.3)
    assert model.head_drop.p == 0.3


def test_alexnet_drop_rate_sets_its_two_classifier_dropouts():
    def dropouts(*opts):
        model = build_model(get_config(None, ["MODEL.NAME", "alexnet", "DATA.IMG_SIZE", "64", *opts]))
        return [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]

    assert dropouts() == [0.5, 0.5]  # the paper's, Section 4.2
    assert dropouts("MODEL.DROP_RATE", "0.2") == [0.2, 0.2]
    assert dropouts("MODEL.DROP_RATE", "0.0") == [0.0, 0.0]


def test_build_model_sizes_the_head_from_the_dataset_or_the_config():
    assert build_model(get_config(None, ["DATA.DATASET", "cifar100", "MODEL.NAME", "resnet18"])).fc.out_features == 100
    assert build_model(get_config(None, ["MODEL.NUM_CLASSES", "12"])).fc.out_features == 12


def test_build_model_errors_name_the_problem():
    with pytest.raises(UserError, match="unknown MODEL.NAME 'resnet19'; did you mean resnet18\\? "
                                        "choose one of: alexnet, .*resnet18"):
        build_model(get_config(None, ["MODEL.NAME", "resnet19"]))
    with pytest.raises(UserError, match="unknown MODEL.NAME 'resnet19'; did you mean resnet18\\?"):
        create_model("resnet19")
    with pytest.raises(UserError, match="MODEL.NUM_CLASSES is 5 but cifar10 has 10 classes"):
        build_model(get_config(None, ["DATA.DATASET", "cifar10", "MODEL.NUM_CLASSES", "5"]))


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        models.register_model(models.registry._MODELS["lenet"])


@pytest.mark.parametrize("name", ["alexnet", "resnet18", "resnet34", "resnet50", "resnext50_32x4d",
                                  *(pytest.param(name, marks=pytest.mark.slow)
                                    for name in ("resnet101", "resnet152", "wide_resnet50_2"))])
def test_matches_torchvision(name, tmp_path):
    from tests.models.parity import assert_matches_torchvision
    assert_matches_torchvision(name, tmp_path)


def test_se_resnet50_has_the_published_size_and_se_in_every_bottleneck():
    model = create_model("se_resnet50")
    assert round(count(model) / 1e6, 2) == 28.09  # Hu et al. (2018), Table 2: 28.1M
    blocks = [block for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for block in layer]
    assert len(blocks) == 16
    assert all(block.se.fc1.out_channels == block.bn3.num_features // 16 for block in blocks)
