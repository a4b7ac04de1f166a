"""Mixup / CutMix on device batches, label smoothing, and how the train loop uses them."""
import os

import pytest
import torch
from torch import nn

import main
from config import get_config
from data.mix import build_batch_mixer
from engine.train_step import forward
from utils.device import DeviceSetup
from utils.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")


@pytest.mark.parametrize("mixup, cutmix", [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_mixed_targets_are_soft_and_sum_to_one_per_row(mixup, cutmix):
    torch.manual_seed(0)
    mixer = build_batch_mixer(mixup, cutmix, prob=1.0, switch_prob=0.5, num_classes=10)
    images, targets = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    mixed, soft = mixer(images, targets)
    assert mixed.shape == images.shape and soft.shape == (16, 10)
    assert torch.allclose(soft.sum(dim=1), torch.ones(16))
    assert not torch.equal(mixed, images) and (soft.max(dim=1).values < 1).any()


def test_no_alpha_means_no_mixer_and_prob_zero_leaves_batches_alone():
    assert build_batch_mixer(0.0, 0.0, 1.0, 0.5, 10) is None
    mixer = build_batch_mixer(0.4, 0.0, prob=0.0, switch_prob=0.5, num_classes=10)
    images, targets = torch.randn(4, 3, 8, 8), torch.tensor([1, 2, 3, 4])
    same, one_hot = mixer(images, targets)
    assert torch.equal(same, images) and torch.equal(one_hot, nn.functional.one_hot(targets, 10).float())


def test_training_with_mixup_measures_accuracy_on_the_dominant_label():
    torch.manual_seed(1)
    mixer = build_batch_mixer(0.4, 0.0, 1.0, 0.5, num_classes=3)
    setup = DeviceSetup.create(torch.device("cpu"), "off", False, False, False)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    images, targets = torch.randint(0, 256, (8, 3, 2, 2), dtype=torch.uint8), torch.randint(0, 3, (8,))
    torch.manual_seed(5)
    logits, loss, dominant = forward(model, lambda x: x.float() / 255, images, targets, nn.CrossEntropyLoss(), setup,
                                     mixer)
    torch.manual_seed(5)
    mixed, soft = mixer(images.float() / 255, targets)
    assert torch.equal(dominant, soft.argmax(dim=1))
    assert loss.item() == pytest.approx(nn.functional.cross_entropy(model(mixed), soft).item(), rel=1e-5)


def test_label_smoothing_is_torchs_and_val_loss_stays_plain():
    cfg = get_config(QUICKSTART, ["TRAIN.LABEL_SMOOTHING", "0.1", "DATA.NUM_WORKERS", "0"])
    parts = main.build_training_parts(cfg, torch.device("cpu"))
    logits, targets = torch.randn(6, 10), torch.randint(0, 10, (6,))
    expected = nn.CrossEntropyLoss(label_smoothing=0.1)(logits, targets)
    assert parts.train_criterion(logits, targets).item() == pytest.approx(expected.item())
    assert parts.criterion(logits, targets).item() == pytest.approx(nn.functional.cross_entropy(logits, targets).item())
    soft = nn.functional.one_hot(targets, 10).float() * 0.7 + 0.03  # composes with mixup's soft targets
    assert parts.train_criterion(logits, soft).item() == pytest.approx(
        nn.CrossEntropyLoss(label_smoothing=0.1)(logits, soft).item())


@pytest.mark.parametrize("opts, message", [
    (["AUG.MIXUP", "-0.2"], "AUG.MIXUP and AUG.CUTMIX alphas must be 0 (off) or more"),
    (["AUG.MIX_PROB", "1.5"], "AUG.MIX_PROB must be in [0, 1]"),
    (["AUG.MIX_SWITCH_PROB", "-1"], "AUG.MIX_SWITCH_PROB must be in [0, 1]"),
    (["TRAIN.LABEL_SMOOTHING", "1.0"], "TRAIN.LABEL_SMOOTHING must be in [0, 1)"),
])
def test_bad_mix_and_smoothing_values_are_one_line(opts, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        get_config(None, opts)


