"""VGG and GoogLeNet: torchvision parity, small and large inputs, and GoogLeNet's auxiliary heads."""
import pytest
import torch
import torchvision
from torch import nn

import models.googlenet  # noqa: F401  (registers googlenet)
import models.vgg  # noqa: F401  (registers the VGGs)
from config import get_config
from models import build_model, create_model
from tests.models.parity import assert_matches_torchvision, parameter_count, randomise_norm_statistics

VGG_NAMES = [f"vgg{depth}{suffix}" for depth in (11, 13, 16, 19) for suffix in ("", "_bn")]
NUM_CLASSES = 7


@pytest.fixture
def weights_dir(tmp_path):
    """tmp_path, emptied afterwards of the torchvision weights that parity saves (over 500 MB for a VGG)."""
    yield tmp_path
    for weights_file in tmp_path.glob("*.pth"):
        weights_file.unlink()


@pytest.mark.slow
@pytest.mark.parametrize("name", VGG_NAMES)
def test_vgg_matches_torchvision(name, weights_dir):
    assert_matches_torchvision(name, weights_dir)


@pytest.mark.parametrize("aux_logits", [True, False], ids=["aux", "no_aux"])
def test_googlenet_matches_torchvision(aux_logits, weights_dir):
    """torchvision's GoogLeNet checkpoint (always with aux heads, like its published weights) loads through
    MODEL.PRETRAINED and gives the same eval logits, whether or not our model has the aux heads.

    parity.assert_matches_torchvision cannot set MODEL.AUX_LOGITS, hence this variant of it.
    """
    torch.manual_seed(0)
    reference = torchvision.models.get_model("googlenet", weights=None, aux_logits=True, init_weights=True,
                                             transform_input=False).eval()
    randomise_norm_statistics(reference, torch.Generator().manual_seed(1))
    weights_file = weights_dir / "googlenet-torchvision.pth"
    torch.save(reference.state_dict(), weights_file)

    cfg = get_config(None, ["MODEL.NAME", "googlenet", "MODEL.NUM_CLASSES", "1000", "DATA.IMG_SIZE", "224",
                            "MODEL.AUX_LOGITS", str(aux_logits), "MODEL.PRETRAINED", repr(str(weights_file))])
    ours = build_model(cfg).eval()
    aux_parameters = parameter_count(reference.aux1) + parameter_count(reference.aux2)
    assert parameter_count(ours) == parameter_count(reference) - (0 if aux_logits else aux_parameters)

    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert actual.shape == (2, 1000)
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=0)


def total_loss(outputs, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the logits plus, for (logits, [aux, ...]), of every auxiliary output."""
    if isinstance(outputs, tuple):
        logits, aux_outputs = outputs
        return sum((nn.functional.cross_entropy(aux, targets) for aux in aux_outputs),
                   nn.functional.cross_entropy(logits, targets))
    return nn.functional.cross_entropy(outputs, targets)


@pytest.mark.parametrize("name, size, options", [
    pytest.param("vgg11", 32, {}, marks=pytest.mark.slow),
    pytest.param("vgg11_bn", 32, {}, marks=pytest.mark.slow),
    pytest.param("vgg11", 224, {}, marks=pytest.mark.slow),
    ("googlenet", 32, {"stem": "cifar"}),
    ("googlenet", 32, {"stem": "cifar", "aux_logits": True}),
    ("googlenet", 224, {"aux_logits": True}),
])
def test_models_give_finite_logits_and_every_parameter_a_gradient(name, size, options):
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES, **options).train()
    outputs = model(torch.randn(2, 3, size, size))
    logits = outputs[0] if isinstance(outputs, tuple) else outputs
    assert logits.shape == (2, NUM_CLASSES) and torch.isfinite(logits).all()
    total_loss(outputs, torch.tensor([0, NUM_CLASSES - 1])).backward()
    without_gradient = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert without_gradient == []


@pytest.mark.parametrize("name, options", [("vgg11_bn", {}), ("googlenet", {"stem": "cifar"})])
def test_forward_is_head_of_features(name, options):
    model = create_model(name, num_classes=NUM_CLASSES, **options).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, model.num_features)
        torch.testing.assert_close(model.forward_head(features), model(x))


@pytest.mark.parametrize("name, classifier_name", [("vgg11", "classifier.6"), ("googlenet", "fc")])
def test_get_classifier_is_the_final_linear_under_torchvision_name(name, classifier_name):
    with torch.device("meta"):
        model = create_model(name, num_classes=NUM_CLASSES)
    assert model.get_classifier() is model.get_submodule(classifier_name)
    assert model.get_classifier().in_features == model.num_features
    assert model.get_classifier().out_features == NUM_CLASSES


def dropouts(model: nn.Module) -> list[float]:
    return [module.p for module in model.modules() if isinstance(module, nn.Dropout)]


@pytest.mark.parametrize("name, options, paper_dropouts, with_drop_rate", [
    ("vgg11", {}, [0.5, 0.5], [0.3, 0.3]),
    ("googlenet", {}, [0.4], [0.3]),
    ("googlenet", {"aux_logits": True}, [0.7, 0.7, 0.4], [0.7, 0.7, 0.3]),  # the aux heads keep the paper's 0.7
])
def test_drop_rate_sets_the_papers_dropouts(name, options, paper_dropouts, with_drop_rate):
    with torch.device("meta"):
        assert dropouts(create_model(name, **options)) == paper_dropouts
        assert dropouts(create_model(name, drop_rate=0.3, **options)) == with_drop_rate


def test_config_drop_rate_reaches_vgg_classifier_dropouts():
    with torch.device("meta"):
        model = build_model(get_config(None, ["MODEL.NAME", "vgg16_bn", "MODEL.DROP_RATE", "0.2"]))
    assert [type(m).__name__ for m in model.classifier] == ["Linear", "ReLU", "Dropout"] * 2 + ["Linear"]
    assert dropouts(model) == [0.2, 0.2]


@pytest.mark.parametrize("name, convs", [("vgg11", 8), ("vgg13", 10), ("vgg16", 13), ("vgg19", 16),
                                         ("vgg19_bn", 16)])
def test_vgg_depth_counts_the_conv_and_fc_layers_of_the_paper(name, convs):
    with torch.device("meta"):
        model = create_model(name)
    layers = list(model.features)
    assert sum(isinstance(m, nn.Conv2d) for m in layers) == convs
    assert sum(isinstance(m, nn.Linear) for m in model.classifier) == 3  # vggN: N = convs + 3 fc
    assert sum(isinstance(m, nn.MaxPool2d) for m in layers) == 5
    assert sum(isinstance(m, nn.BatchNorm2d) for m in layers) == (convs if name.endswith("_bn") else 0)


def record_calls(modules: dict[str, nn.Module]) -> list[str]:
    """The names of `modules`, appended each time one of them runs forward."""
    calls: list[str] = []
    for name, module in modules.items():
        module.register_forward_hook(lambda *_, name=name: calls.append(name))
    return calls


def test_googlenet_with_aux_in_training_returns_logits_and_both_aux_logits():
    model = create_model("googlenet", num_classes=NUM_CLASSES, stem="cifar", aux_logits=True).train()
    calls = record_calls({"aux1": model.aux1, "aux2": model.aux2})
    outputs = model(torch.randn(2, 3, 32, 32))
    assert isinstance(outputs, tuple) and len(outputs) == 2
    logits, aux_outputs = outputs
    assert isinstance(aux_outputs, list) and len(aux_outputs) == 2
    assert [t.shape for t in [logits, *aux_outputs]] == [(2, NUM_CLASSES)] * 3
    assert calls == ["aux1", "aux2"]


def test_googlenet_in_eval_returns_only_logits_and_does_not_run_the_aux_heads():
    model = create_model("googlenet", num_classes=NUM_CLASSES, stem="cifar", aux_logits=True).eval()
    calls = record_calls({"aux1": model.aux1, "aux2": model.aux2})
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 32, 32))
    assert isinstance(outputs, torch.Tensor) and outputs.shape == (2, NUM_CLASSES)
    assert calls == []


def test_googlenet_without_aux_has_no_aux_heads_and_returns_only_logits_in_training():
    model = create_model("googlenet", num_classes=NUM_CLASSES, stem="cifar").train()
    assert not any(name.startswith(("aux1", "aux2")) for name, _ in model.named_modules())
    outputs = model(torch.randn(2, 3, 32, 32))
    assert isinstance(outputs, torch.Tensor) and outputs.shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("stem, size, inception3a, inception4a, inception5b", [
    ("cifar", 32, 32, 16, 8),
    ("imagenet", 224, 28, 14, 7),
])
def test_googlenet_stems_set_the_resolution_the_inception_blocks_see(stem, size, inception3a, inception4a,
                                                                      inception5b):
    model = create_model("googlenet", num_classes=NUM_CLASSES, stem=stem).eval()
    sizes = {}
    for name in ("inception3a", "inception4a", "inception5b"):
        model.get_submodule(name).register_forward_hook(
            lambda module, inputs, output, name=name: sizes.update({name: tuple(output.shape[2:])}))
    with torch.no_grad():
        model(torch.randn(1, 3, size, size))
    assert sizes == {"inception3a": (inception3a,) * 2, "inception4a": (inception4a,) * 2,
                     "inception5b": (inception5b,) * 2}


def test_googlenet_refuses_an_unknown_stem():
    with pytest.raises(ValueError, match="stem must be 'imagenet' or 'cifar'"):
        create_model("googlenet", stem="tiny")
