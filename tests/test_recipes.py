"""The training recipes in configs/recipes/: each loads, builds its model, optimizer and schedule and
its data pipeline with every key taking effect, names its source, and holds the numbers its issue
states."""
from __future__ import annotations

import ast
import logging
import math
from pathlib import Path

import pytest
import torch
import yaml

from config import flatten, get_config, get_default_config
from data import build_loader
from models import build_model
from models.layers import DropBlock
from optimizer import build_optimizer, build_scheduler

REPO = Path(__file__).resolve().parent.parent
RECIPES_DIR = REPO / "configs" / "recipes"
RECIPES = sorted(RECIPES_DIR.glob("*.yaml"))
CONVNEXT_STUDY = {name: RECIPES_DIR / f"convnextv2_atto_cifar100_{name}.yaml" for name in ("adamw", "radam", "sgd")}
# What the optimizer study may vary between its three files.
OPTIMIZER_KEYS = ("TRAIN.OPTIMIZER.", "TRAIN.LR", "TRAIN.WEIGHT_DECAY")
OPTIMIZER_CLASSES = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW, "radam": torch.optim.RAdam}
# CIFAR's 50,000 train images at batch 128; the loader drops the last partial batch.
CIFAR_STEPS_PER_EPOCH = 50_000 // 128


def recipe(name: str, *opts: str):
    return get_config(str(RECIPES_DIR / name), list(opts))


def build_on_meta(cfg) -> torch.nn.Module:
    """The recipe's model with parameters that take no memory, as main.py builds it."""
    with torch.device("meta"):
        return build_model(cfg)


def test_the_recipes_folder_holds_the_issues_recipes():
    assert {path.name for path in RECIPES} == {
        "resnet18_cifar10.yaml", "convnextv2_atto_cifar100_adamw.yaml", "convnextv2_atto_cifar100_radam.yaml",
        "convnextv2_atto_cifar100_sgd.yaml", "resnet18_medium_imagenet.yaml", "face_classification.yaml",
        "face_arcface.yaml"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.stem)
def test_recipe_opens_with_its_source(path):
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# Source"), f"{path.name} must open with a '# Source: ...' comment"
    header = [line for line in lines if line.startswith("#")]
    assert any("http" in line or "et al." in line for line in header), f"{path.name} names no paper or URL"


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.stem)
def test_recipe_builds_its_model_with_every_option_taking_effect(path, caplog):
    cfg = get_config(str(path))
    with caplog.at_level(logging.WARNING, logger="models.build"):
        model = build_on_meta(cfg)
    changes_nothing = [record.getMessage() for record in caplog.records if "changes nothing" in record.getMessage()]
    assert not changes_nothing
    assert next(model.parameters()).device.type == "meta"


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.stem)
def test_recipe_builds_its_optimizer_and_schedule(path):
    cfg = get_config(str(path))
    model = build_on_meta(cfg)
    optimizer = build_optimizer(cfg, model)
    assert type(optimizer) is OPTIMIZER_CLASSES[cfg.TRAIN.OPTIMIZER.NAME]
    assert optimizer.param_groups[0]["weight_decay"] == cfg.TRAIN.WEIGHT_DECAY
    scheduler = build_scheduler(cfg, optimizer, CIFAR_STEPS_PER_EPOCH)
    first_lr = cfg.TRAIN.WARMUP_LR if cfg.TRAIN.WARMUP_EPOCHS else cfg.TRAIN.LR
    assert optimizer.param_groups[0]["lr"] == pytest.approx(first_lr)
    for _ in range(CIFAR_STEPS_PER_EPOCH):  # one epoch; no gradients, so the weights stay as they are
        optimizer.step()
        scheduler.step()
    assert 0 < optimizer.param_groups[0]["lr"] <= cfg.TRAIN.LR


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.stem)
def test_recipe_data_pipeline_delivers_its_image_size(path, cifar10_root, cifar100_root, medium_imagenet_file, caplog):
    roots = {"cifar10": cifar10_root, "cifar100": cifar100_root, "medium_imagenet": medium_imagenet_file}
    dataset = get_config(str(path)).DATA.DATASET
    # The CIFAR-100 fixture's 10 val images are of 10 classes: no same-class pair can be drawn.
    no_pairs = ["TEST.VERIFY_NUM_PAIRS", "0", "TEST.SELECT_METRIC", "val_acc1"]
    cfg = get_config(str(path), ["DATA.DATA_PATH", repr(str(roots[dataset])), "DATA.BATCH_SIZE", "4",
                                 "DATA.NUM_WORKERS", "0", *no_pairs])
    with caplog.at_level(logging.WARNING, logger="data.build"):
        loaders = build_loader(cfg)
    warnings = [record.getMessage() for record in caplog.records if record.name == "data.build"]
    assert not warnings, "an AUG value the transforms cannot honour"
    images, _ = next(iter(loaders.train_loader))
    val_images, _ = next(iter(loaders.val_loader))
    size = cfg.DATA.IMG_SIZE
    assert images.shape == (4, 3, size, size) and images.dtype == torch.uint8
    assert val_images.shape[-2:] == (size, size)


def test_resnet18_cifar10_holds_the_issues_numbers():
    cfg = recipe("resnet18_cifar10.yaml")
    assert (cfg.MODEL.NAME, cfg.MODEL.STEM, cfg.DATA.DATASET, cfg.DATA.IMG_SIZE) == ("resnet18", "cifar", "cifar10", 32)
    assert cfg.TRAIN.OPTIMIZER.NAME == "sgd" and cfg.TRAIN.OPTIMIZER.NESTEROV is True
    assert cfg.TRAIN.OPTIMIZER.MOMENTUM == 0.9
    assert cfg.TRAIN.LR == 0.1 and cfg.DATA.BATCH_SIZE == 128 and cfg.TRAIN.WEIGHT_DECAY == 5e-4
    assert cfg.TRAIN.LR_SCHEDULER.NAME == "cosine" and cfg.TRAIN.EPOCHS == 200 and cfg.TRAIN.MIN_LR == 0.0
    assert cfg.TRAIN.LABEL_SMOOTHING == 0.1
    assert (cfg.AUG.CROP_PADDING, cfg.AUG.HFLIP_PROB, cfg.AUG.COLOR_JITTER) == (4, 0.5, 0.0)
    optimizer = build_optimizer(cfg, build_on_meta(cfg))
    assert optimizer.defaults["nesterov"] is True and optimizer.defaults["momentum"] == 0.9


def test_resnet18_cifar10_lr_follows_a_cosine_to_zero_over_200_epochs():
    cfg = recipe("resnet18_cifar10.yaml")
    optimizer = build_optimizer(cfg, build_on_meta(cfg))
    per_epoch = CIFAR_STEPS_PER_EPOCH
    factor = build_scheduler(cfg, optimizer, per_epoch).lr_lambdas[0]
    assert 0.1 * factor(0) == pytest.approx(0.1)
    assert 0.1 * factor(100 * per_epoch) == pytest.approx(0.05)
    assert 0.1 * factor(200 * per_epoch) == pytest.approx(0.0, abs=1e-12)
    assert 0.1 * factor(50 * per_epoch) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))


def test_convnext_optimizer_study_differs_only_in_the_optimizer():
    configs = {name: flatten(get_config(str(path))) for name, path in CONVNEXT_STUDY.items()}
    for name in ("radam", "sgd"):
        differing = {key for key in configs["adamw"] if configs["adamw"][key] != configs[name][key]}
        assert differing, f"{name} is the AdamW recipe unchanged"
        assert all(key.startswith(OPTIMIZER_KEYS) for key in differing), differing
        assert "TRAIN.OPTIMIZER.NAME" in differing
    assert {name: configs[name]["TRAIN.OPTIMIZER.NAME"] for name in configs} == {
        "adamw": "adamw", "radam": "radam", "sgd": "sgd"}
    assert configs["sgd"]["TRAIN.OPTIMIZER.NESTEROV"] is True and configs["sgd"]["TRAIN.OPTIMIZER.MOMENTUM"] == 0.9


@pytest.mark.parametrize("name", ["radam", "sgd"])
def test_convnext_study_files_inherit_the_adamw_recipe_and_set_only_optimizer_keys(name):
    data = yaml.safe_load(CONVNEXT_STUDY[name].read_text())
    assert data.pop("BASE") == ["convnextv2_atto_cifar100_adamw.yaml"]
    assert set(data) == {"TRAIN"}
    assert all(key.startswith(OPTIMIZER_KEYS) for key in flatten(data["TRAIN"], "TRAIN."))


def test_convnext_adamw_takes_the_official_atto_numbers_scaled_to_cifar100():
    cfg = recipe("convnextv2_atto_cifar100_adamw.yaml")
    assert (cfg.MODEL.NAME, cfg.DATA.DATASET, cfg.DATA.IMG_SIZE, cfg.MODEL.STEM) == (
        "convnextv2_atto", "cifar100", 32, "cifar")
    assert cfg.TRAIN.OPTIMIZER.NAME == "adamw"
    assert cfg.TRAIN.LR == pytest.approx(2e-4 * 1024 / 256)  # blr x the source's effective batch / 256
    assert cfg.TRAIN.WEIGHT_DECAY == 0.3 and cfg.TRAIN.LABEL_SMOOTHING == 0.2 and cfg.MODEL.DROP_PATH_RATE == 0.1
    assert cfg.AUG.ERASE_PROB == 0.25 and (cfg.AUG.MIXUP, cfg.AUG.CUTMIX) == (0.0, 0.0)
    assert cfg.TRAIN.EMA.DECAY > 0
    model = build_on_meta(cfg)
    assert model.features[0][0].stride == (2, 2)  # the 2x2 patchify stem: 32 px -> 16 px


def test_convnext_radam_and_sgd_use_their_own_weight_decay():
    radam, sgd = recipe("convnextv2_atto_cifar100_radam.yaml"), recipe("convnextv2_atto_cifar100_sgd.yaml")
    # torch's RAdam couples weight decay to the gradient (L2), so AdamW's decoupled 0.3 would swamp it.
    assert radam.TRAIN.WEIGHT_DECAY == 5e-4 and radam.TRAIN.LR == pytest.approx(8e-4)
    assert sgd.TRAIN.WEIGHT_DECAY == 5e-4 and sgd.TRAIN.LR == 0.1


def test_resnet18_medium_imagenet_builds_on_the_existing_config_with_torchvisions_recipe():
    data = yaml.safe_load((RECIPES_DIR / "resnet18_medium_imagenet.yaml").read_text())
    assert data["BASE"] == ["../resnet18_medium_imagenet.yaml"]
    cfg = recipe("resnet18_medium_imagenet.yaml")
    assert (cfg.DATA.DATASET, cfg.DATA.IMG_SIZE, cfg.DATA.BATCH_SIZE) == ("medium_imagenet", 96, 256)
    assert cfg.TRAIN.OPTIMIZER.NAME == "sgd" and cfg.TRAIN.OPTIMIZER.NESTEROV is False
    assert (cfg.TRAIN.LR, cfg.TRAIN.OPTIMIZER.MOMENTUM, cfg.TRAIN.WEIGHT_DECAY, cfg.TRAIN.EPOCHS) == (0.1, 0.9, 1e-4, 90)
    assert (cfg.TRAIN.LR_SCHEDULER.NAME, cfg.TRAIN.LR_SCHEDULER.DECAY_EPOCHS,
            cfg.TRAIN.LR_SCHEDULER.DECAY_RATE) == ("step", 30, 0.1)
    assert cfg.AUG.RRC_SCALE == (0.08, 1.0) and cfg.AUG.CROP_PADDING == 0 and cfg.TEST.CROP is True
    assert build_on_meta(cfg).fc.out_features == 200


def test_face_recipe_regularises_a_batchnorm_resnet_with_stochastic_depth_dropblock_and_an_ema():
    cfg = recipe("face_classification.yaml")
    assert cfg.MODEL.NAME.startswith("resnet") and cfg.DATA.DATASET == "cifar100"
    assert cfg.TRAIN.OPTIMIZER.NAME == "sgd" and cfg.TRAIN.OPTIMIZER.NESTEROV is True
    assert cfg.TRAIN.LABEL_SMOOTHING == 0.1
    assert (cfg.MODEL.DROP_BLOCK_RATE, cfg.MODEL.DROP_BLOCK_SIZE) == (0.1, 5)
    assert cfg.MODEL.DROP_PATH_RATE == 0.1
    assert cfg.TRAIN.EMA.DECAY == 0.999 and cfg.TRAIN.EMA.WARMUP is True
    model = build_on_meta(cfg)
    assert any(isinstance(module, torch.nn.BatchNorm2d) for module in model.modules())
    rates = {module.p for module in model.modules() if isinstance(module, DropBlock)}
    assert rates == {0.1, 0.1 / 4}  # stage 4, and a quarter of it in stage 3
    assert {module.block_size for module in model.modules() if isinstance(module, DropBlock)} == {5}
    assert model.layer4[-1].drop_path.drop_prob == pytest.approx(0.1)  # the last block's, from 0 at the first


def test_face_arcface_recipe_fine_tunes_the_face_classifier_with_the_papers_margin_and_a_512d_embedding():
    cfg = recipe("face_arcface.yaml")
    stage1 = recipe("face_classification.yaml")
    assert (cfg.MODEL.NAME, cfg.DATA.DATASET, cfg.DATA.IMG_SIZE) == (stage1.MODEL.NAME, "cifar100", 64)
    assert cfg.TRAIN.LOSS == "arcface" and (cfg.TRAIN.ARCFACE.MARGIN, cfg.TRAIN.ARCFACE.SCALE) == (0.5, 64.0)
    assert cfg.MODEL.EMBED_DIM == 512 and cfg.TRAIN.LR == 0.01 and cfg.TRAIN.WEIGHT_DECAY == 5e-4
    assert cfg.TEST.SELECT_METRIC == "verify_auc" and cfg.TEST.VERIFY_NUM_PAIRS == 6000
    model = build_on_meta(cfg)
    assert model.get_classifier().in_features == 512 and model.backbone.get_classifier().out_features == 512


def readme_recipe_table() -> dict[str, tuple[str, object]]:
    """{key: (group, default)} from the README's table under "### Every recipe key"."""
    text = (REPO / "README.md").read_text()
    table = text.split("### Every recipe key", 1)[1].split("\n\n| group |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:  # after the header and its rule
        group, key, default = (cell.strip().strip("`") for cell in line.strip("|").split("|")[:3])
        try:
            rows[key] = group, ast.literal_eval(default)
        except (ValueError, SyntaxError):
            rows[key] = group, default  # a bare name such as cosine
    return rows


def test_readme_table_lists_every_recipe_key_with_its_default_from_config_py():
    defaults = flatten(get_default_config())
    singles = {"TRAIN.LABEL_SMOOTHING", "MODEL.DROP_RATE", "MODEL.DROP_PATH_RATE", "MODEL.DROP_BLOCK_RATE",
               "MODEL.DROP_BLOCK_SIZE", "MODEL.ACT", "TRAIN.WARMUP_EPOCHS", "TRAIN.WARMUP_LR", "TRAIN.MIN_LR",
               "TRAIN.EARLY_STOP_PATIENCE", "TEST.CROP", "TEST.TTA", "TEST.TTA_VAL", "TRAIN.LR", "TRAIN.WEIGHT_DECAY",
               "TRAIN.DECAY_NORM_AND_BIAS"}
    sections = ("AUG.", "TRAIN.EMA.", "TRAIN.SWA.", "TRAIN.LR_SCHEDULER.", "TRAIN.OPTIMIZER.")
    expected = {key for key in defaults if key in singles or key.startswith(sections)}
    rows = readme_recipe_table()
    assert expected <= set(rows), f"missing from the README table: {sorted(expected - set(rows))}"
    for key, (_, default) in rows.items():
        assert default == defaults[key], f"README says {key} defaults to {default!r}, config.py {defaults[key]!r}"
    order = ["augmentation", "regularisation", "schedule", "evaluation", "optimizer"]
    groups = [group for group, _ in rows.values()]
    assert groups == sorted(groups, key=order.index), "the table's rows go augmentation, regularisation, ..."
