"""Mixup / CutMix on device batches, label smoothing, and how the train loop uses them."""
import os
from functools import partial

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, get_worker_info

import main
from config import get_config
from data import build_loader
from data.mix import build_batch_mixer
from data.sampler import EpochShuffleSampler, batch_seed, loader_seed, mix_seed
from data.seeded_loader import SeededDataLoader
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
    mixed, soft = mixer(images, targets, epoch=0, batch_index=0)
    assert mixed.shape == images.shape and soft.shape == (16, 10)
    assert torch.allclose(soft.sum(dim=1), torch.ones(16))
    assert not torch.equal(mixed, images) and (soft.max(dim=1).values < 1).any()


def test_no_alpha_means_no_mixer_and_prob_zero_leaves_batches_alone():
    assert build_batch_mixer(0.0, 0.0, 1.0, 0.5, 10) is None
    mixer = build_batch_mixer(0.4, 0.0, prob=0.0, switch_prob=0.5, num_classes=10)
    images, targets = torch.randn(4, 3, 8, 8), torch.tensor([1, 2, 3, 4])
    same, one_hot = mixer(images, targets, epoch=0, batch_index=0)
    assert torch.equal(same, images) and torch.equal(one_hot, nn.functional.one_hot(targets, 10).float())


def test_training_with_mixup_measures_accuracy_on_the_dominant_label():
    torch.manual_seed(1)
    mixer = build_batch_mixer(0.4, 0.0, 1.0, 0.5, num_classes=3)
    setup = DeviceSetup.create(torch.device("cpu"), "off", False, False, False)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    images, targets = torch.randint(0, 256, (8, 3, 2, 2), dtype=torch.uint8), torch.randint(0, 3, (8,))
    logits, loss, dominant = forward(model, lambda x: x.float() / 255, images, targets, nn.CrossEntropyLoss(), setup,
                                     partial(mixer, epoch=0, batch_index=5))
    mixed, soft = mixer(images.float() / 255, targets, epoch=0, batch_index=5)
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


# --- exact resume: a batch's mixing depends on (SEED, epoch, batch) alone, and no loader draws from
# torch's global generator, which checkpoints save and resumed runs restore (issue 19, defect 4) ---

def test_a_batch_is_mixed_as_its_position_says_whatever_torch_drew_before_and_torchs_generator_is_left_alone():
    mixer = build_batch_mixer(0.4, 1.0, prob=0.8, switch_prob=0.5, num_classes=10, seed=3)
    images, targets = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    torch.manual_seed(0)
    first = mixer(images, targets, epoch=2, batch_index=7)
    torch.manual_seed(1)
    state = torch.get_rng_state()
    again = mixer(images, targets, epoch=2, batch_index=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])
    elsewhere = [mixer(images, targets, epoch, batch)[1] for epoch, batch in ((2, 8), (3, 7))]
    other_seed = build_batch_mixer(0.4, 1.0, prob=0.8, switch_prob=0.5, num_classes=10, seed=4)
    elsewhere.append(other_seed(images, targets, 2, 7)[1])
    assert not any(torch.equal(soft, first[1]) for soft in elsewhere)


def test_the_mixing_and_loader_seeds_are_streams_apart_from_the_batch_augmentations():
    for seed, epoch, batch in ((0, 0, 0), (0, 1, 0), (7, 3, 5)):
        assert len({mix_seed(seed, epoch, batch), batch_seed(seed, epoch, batch), loader_seed(seed, epoch)}) == 3


@pytest.mark.parametrize("workers", [0, 2])
def test_starting_an_epoch_of_any_loader_leaves_torchs_global_generator_alone(workers):
    """A DataLoader's iterator draws its workers' base seed as it starts: a resumed run, which
    starts its iterator after restoring the generator, used to draw every later mix differently."""
    loaders = build_loader(get_config(QUICKSTART, ["DATA.NUM_WORKERS", str(workers), "DATA.TRAIN_SUBSET", "128"]))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    for loader in (loaders.train_loader, loaders.val_loader, loaders.test_loader):
        next(iter(loader))
    assert torch.equal(torch.get_rng_state(), state)


class WorkerSeed(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, item):
        return get_worker_info().seed


def test_a_loaders_workers_are_seeded_from_the_run_seed_and_the_epoch():
    sampler = EpochShuffleSampler(2, seed=0)

    def worker_seed(run_seed: int, epoch: int) -> int:
        sampler.set_epoch(epoch)
        return next(iter(SeededDataLoader(WorkerSeed(), batch_size=2, sampler=sampler, num_workers=1,
                                          seed=run_seed)))[0].item()

    assert worker_seed(5, 1) == worker_seed(5, 1)
    assert len({worker_seed(5, 1), worker_seed(5, 2), worker_seed(6, 1)}) == 3


def test_on_the_cpu_data_cache_device_holds_the_splits_in_host_memory_and_gives_the_batches_of_ram():
    batches = {}
    for cache in ("ram", "device"):
        loaders = build_loader(get_config(QUICKSTART, ["DATA.CACHE", cache, "DATA.TRAIN_SUBSET", "128"]))
        assert "cached in host memory" in loaders.pipeline
        loaders.train_loader.sampler.set_epoch(1)
        batches[cache] = list(loaders.train_loader)
    assert len(batches["ram"]) == 2
    for (ram_images, ram_labels), (device_images, device_labels) in zip(batches["ram"], batches["device"]):
        assert torch.equal(ram_images, device_images) and torch.equal(ram_labels, device_labels)
