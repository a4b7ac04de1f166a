"""--list-models: every model's parameters and MACs, counted as the given config builds its model
(classes, image size, stem, width), or without a config at --img-size and 1000 classes."""
from pathlib import Path

import pytest

import main
import studies.model_table
from config import get_config
from models.build import build_model, model_cost
from models.complexity import count_parameters, format_count

REPO = Path(__file__).resolve().parent.parent.parent
ALEXNET_CIFAR10 = str(REPO / "configs" / "alexnet_cifar10.yaml")


@pytest.fixture(autouse=True)
def a_few_models(monkeypatch):
    """Three models stand for the zoo, so that each table takes a second."""
    monkeypatch.setattr(studies.model_table, "list_models", lambda: ["alexnet", "mobilenet_v2", "resnet18"])


def table(capsys, *argv: str) -> tuple[str, dict[str, list[str]]]:
    """(the header, {model: [params, MACs]}) that main.py --list-models prints."""
    assert main.main(["--list-models", *argv]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # options the config sets for its own model are not warned about for the others
    header, *lines = out.splitlines()
    return header, {line.split()[0]: line.split()[1:] for line in lines}


def test_with_a_config_each_model_is_counted_at_its_classes_size_and_stem(capsys):
    header, rows = table(capsys, "--cfg", ALEXNET_CIFAR10)
    assert "10 classes" in header and "64 px" in header and "stem cifar" in header
    assert rows["alexnet"][0] == "57.04M"  # not 61.10M, its count at 1000 classes and 224 px
    student_model = build_model(get_config(ALEXNET_CIFAR10))
    assert rows["alexnet"][0] == format_count(count_parameters(student_model))


def test_opts_alone_count_the_models_as_the_defaults_with_those_opts_build_them(capsys):
    header, rows = table(capsys, "--opts", "MODEL.NUM_CLASSES", "100", "DATA.IMG_SIZE", "32",
                         "MODEL.WIDTH_MULT", "0.5")
    assert "100 classes" in header and "32 px" in header
    cfg = get_config(None, ["MODEL.NUM_CLASSES", "100", "DATA.IMG_SIZE", "32", "MODEL.WIDTH_MULT", "0.5"])
    for name in ("alexnet", "mobilenet_v2"):
        assert rows[name][0] == format_count(model_cost(cfg, name)[0])
    assert rows["mobilenet_v2"][0] == "815.78K"  # at width 0.5; 2.35M at width 1


def test_img_size_with_a_config_sets_its_image_size(capsys):
    header, rows = table(capsys, "--cfg", ALEXNET_CIFAR10, "--img-size", "96")
    assert "10 classes" in header and "96 px" in header and "stem imagenet" in header  # auto: imagenet above 64 px
    assert rows["resnet18"] == ["11.18M", "333.11M"]
    params, macs = model_cost(get_config(ALEXNET_CIFAR10, ["DATA.IMG_SIZE", "96"]), "resnet18")
    assert rows["resnet18"] == [format_count(params), format_count(macs)]


def test_without_a_config_the_table_is_at_img_size_and_1000_classes(capsys):
    header, rows = table(capsys, "--img-size", "32")
    assert header.split() == ["model", "params", "MACs", "@", "32px"]
    assert rows["resnet18"] == ["11.68M", "555.93M"]
    assert rows["alexnet"] == ["61.10M", "too", "small"]
