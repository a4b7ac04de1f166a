"""build_model: stems, init schemes, pretrained weights, frozen backbones, and model options."""
import logging

import pytest
import torch

from config import get_config
from models import build_model, create_model
from models.complexity import count_macs, count_parameters
from models.init import apply_init
from utils.checkpoint_io import save_checkpoint
from utils.errors import UserError


def build(*opts):
    return build_model(get_config(None, list(opts)))


def test_stem_auto_picks_the_small_input_stem_up_to_64_px():
    assert build("MODEL.NAME", "resnet18", "DATA.IMG_SIZE", "32").conv1.stride == (1, 1)
    assert build("MODEL.NAME", "resnet18", "DATA.IMG_SIZE", "64").conv1.stride == (1, 1)
    assert build("MODEL.NAME", "resnet18", "DATA.IMG_SIZE", "96").conv1.stride == (2, 2)
    assert build("MODEL.NAME", "resnet18", "DATA.IMG_SIZE", "32", "MODEL.STEM", "imagenet").conv1.stride == (2, 2)


def test_an_option_the_model_lacks_is_reported_once(caplog):
    with caplog.at_level(logging.WARNING):
        build("MODEL.NAME", "lenet", "MODEL.DROP_PATH_RATE", "0.1", "MODEL.STEM", "cifar")
    messages = [record.getMessage() for record in caplog.records]
    assert "lenet has no drop_path_rate option, so MODEL.DROP_PATH_RATE 0.1 changes nothing" in messages
    assert "lenet has no stem option, so MODEL.STEM 'cifar' changes nothing" in messages
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build("MODEL.NAME", "lenet")
    assert not caplog.records


def test_zero_init_residual_zeroes_the_last_norm_of_every_block():
    model = build("MODEL.NAME", "resnet50", "MODEL.ZERO_INIT_RESIDUAL", "True")
    assert all(block.bn3.weight.abs().sum() == 0 for layer in (model.layer1, model.layer4) for block in layer)
    assert build("MODEL.NAME", "resnet50").layer1[0].bn3.weight.abs().sum() > 0


@pytest.mark.parametrize("scheme, expected_std", [
    ("kaiming", lambda fan_in: (2 / fan_in) ** 0.5),
    ("xavier", None),
    ("lecun", lambda fan_in: 0.88 / fan_in ** 0.5),  # truncated at 2 std: std shrinks by ~0.88
])
def test_init_schemes_set_the_documented_scale(scheme, expected_std):
    model = torch.nn.Sequential(torch.nn.Linear(400, 300), torch.nn.Conv2d(16, 64, 3))
    torch.manual_seed(0)
    apply_init(model, scheme)
    weight = model[0].weight.detach()
    if expected_std is None:
        bound = (6 / (400 + 300)) ** 0.5
        assert weight.abs().max() <= bound and weight.std() == pytest.approx(bound / 3 ** 0.5, rel=0.05)
    else:
        assert weight.std().item() == pytest.approx(expected_std(400), rel=0.05)
    assert model[0].bias.abs().sum() == 0 and model[1].bias.abs().sum() == 0


@pytest.mark.parametrize("scheme", ["default", "kaiming", "xavier", "lecun"])
def test_every_init_option_builds_and_trains_a_step(scheme):
    model = build("MODEL.NAME", "resnet18", "MODEL.INIT", scheme)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.fc.weight.clone()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.fc.weight)


def test_pretrained_from_a_project_checkpoint_loads_every_weight(tmp_path):
    source = build("MODEL.NAME", "resnet18")
    path = str(tmp_path / "best.pth")
    save_checkpoint(path, {"model": source.state_dict(), "optimizer": {}, "scheduler": {}, "scaler": {}, "epoch": 3,
                           "best_acc1": 1.0, "config": "", "rng": {}, "wandb_id": None})
    loaded = build("MODEL.NAME", "resnet18", "MODEL.PRETRAINED", repr(path))
    for key, value in source.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_pretrained_with_other_classes_replaces_only_the_classifier(tmp_path, caplog):
    source = create_model("resnet18", num_classes=1000, stem="cifar")
    path = str(tmp_path / "resnet18-imagenet.pth")
    torch.save(source.state_dict(), path)
    with caplog.at_level(logging.INFO):
        model = build("MODEL.NAME", "resnet18", "DATA.DATASET", "cifar10", "MODEL.PRETRAINED", repr(path))
    assert "pretrained weights have 1000 classes and this model 10: the classifier starts afresh" in caplog.text
    assert model.fc.out_features == 10
    assert torch.equal(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)


def test_pretrained_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="MODEL.PRETRAINED file not found"):
        build("MODEL.PRETRAINED", repr(str(tmp_path / "none.pth")))
    torch.save(create_model("lenet").state_dict(), tmp_path / "lenet.pth")
    with pytest.raises(UserError, match="do not fit resnet18"):
        build("MODEL.NAME", "resnet18", "MODEL.PRETRAINED", repr(str(tmp_path / "lenet.pth")))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(UserError, match="truncated, corrupt or unsafe"):
        build("MODEL.PRETRAINED", repr(str(tmp_path / "junk.pth")))
    with pytest.raises(UserError, match="torchvision publishes no weights for lenet"):
        build("MODEL.PRETRAINED", "torchvision")


def test_pretrained_torchvision_downloads_the_published_weights_only_when_asked(monkeypatch):
    requested = []

    def fake_download(url, map_location=None, weights_only=None):
        requested.append((url, weights_only))
        return create_model("resnet18").state_dict()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    build("MODEL.NAME", "resnet18", "DATA.IMG_SIZE", "224")
    assert requested == []
    build("MODEL.NAME", "resnet18", "DATA.IMG_SIZE", "224", "MODEL.PRETRAINED", "torchvision")
    assert requested == [("https://download.pytorch.org/models/resnet18-f37072fd.pth", True)]


def test_frozen_backbone_trains_only_the_classifier_and_keeps_norm_statistics():
    model = build("MODEL.NAME", "resnet18", "MODEL.FREEZE", "backbone")
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["fc.weight", "fc.bias"]
    running_mean = model.bn1.running_mean.clone()
    model.train()
    model(torch.randn(4, 3, 32, 32) * 5 + 3)
    assert torch.equal(model.bn1.running_mean, running_mean)
    assert model.training and model.fc.training and not model.bn1.training


def test_lenet5_is_the_1998_form_with_the_classic_size():
    model = create_model("lenet5", num_classes=10)
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.Tanh in kinds and torch.nn.AvgPool2d in kinds and torch.nn.ReLU not in kinds
    # C1 456, C3 2416, C5 (a 5x5 conv) 48120, F6 10164, output 850
    assert count_parameters(model) == 456 + 2416 + 48120 + 10164 + 850


def test_macs_are_counted_on_the_meta_device():
    with torch.device("meta"):
        model = create_model("resnet18", num_classes=1000)
    assert round(count_macs(model, 224) / 1e9, 3) == 1.814  # torchvision documents 1.814 GFLOPS (MACs)


def test_imagenet_weights_into_a_cifar_stem_say_which_option_to_change(tmp_path):
    torch.save(create_model("resnet18", num_classes=10).state_dict(), tmp_path / "imagenet-stem.pth")
    with pytest.raises(UserError, match="conv1.weight.*MODEL.STEM imagenet"):
        build("MODEL.NAME", "resnet18", "DATA.DATASET", "cifar10", "DATA.IMG_SIZE", "32",
              "MODEL.PRETRAINED", repr(str(tmp_path / "imagenet-stem.pth")))
    model = build("MODEL.NAME", "resnet18", "DATA.DATASET", "cifar10", "DATA.IMG_SIZE", "32", "MODEL.STEM", "imagenet",
                  "MODEL.PRETRAINED", repr(str(tmp_path / "imagenet-stem.pth")))
    assert model.conv1.kernel_size == (7, 7)
