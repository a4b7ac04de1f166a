"""DATA.AUG_DEVICE and DATA.CACHE: whole-batch augmentation on the training device and splits
held in memory. Every test runs the device code with device = cpu; on a GPU the same code adds
only the side-stream copy."""
from __future__ import annotations

import os

import pytest
import torch

import main
from config import get_config
from data import build_loader
from data.build import augments_on_device, unbatched_aug_keys
from data.cache import CachedLoader, check_cache_fits
from data.device_loader import DeviceLoader
from data.sampler import EpochShuffleSampler
from utils.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "configs/quickstart.yaml")
CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # only its type is read: no GPU needed
# The steps of the CIFAR recipes, all of which BatchAugment has.
BATCHED_AUG = ["AUG.CROP_PADDING", "4", "AUG.HFLIP_PROB", "0.5", "AUG.COLOR_JITTER", "0.4",
               "AUG.COLOR_JITTER_HUE", "0.1", "AUG.ERASE_PROB", "0.5"]
# The three ways to get batches augmented on the device, which must give the same batches.
DEVICE_MODES = {
    "workers": ["DATA.AUG_DEVICE", "device"],
    "ram": ["DATA.CACHE", "ram"],
    "device": ["DATA.CACHE", "device"],
}


def cfg_with(*opts: str, base: tuple[str, ...] = ()):
    return get_config(opts=["DEVICE", "cpu", "DATA.NUM_WORKERS", "0", "DATA.PERSISTENT_WORKERS", "False",
                            *base, *opts])


def cifar_opts(cifar10) -> list[str]:
    return ["DATA.DATASET", "cifar10", "DATA.DATA_PATH", str(cifar10.root), "DATA.BATCH_SIZE", "16", *BATCHED_AUG]


def epoch_batches(loader, epoch: int, start: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.sampler.set_epoch(epoch)
    loader.sampler.set_start(start)
    return list(loader)


def assert_same_batches(batches, others) -> None:
    assert len(batches) == len(others)
    for (images, labels), (other_images, other_labels) in zip(batches, others):
        assert torch.equal(images, other_images) and torch.equal(labels, other_labels)


# --- where the augmentation runs --------------------------------------------------------------

@pytest.mark.parametrize("aug_device, cache, device, expected", [
    ("auto", "none", CPU, False),
    ("auto", "none", CUDA, True),
    ("auto", "ram", CPU, True),
    ("auto", "device", CUDA, True),
    ("cpu", "none", CUDA, False),
    ("device", "none", CPU, True),
    ("device", "ram", CPU, True),
])
def test_aug_device_resolves_from_the_device_and_the_cache(aug_device, cache, device, expected):
    assert augments_on_device(aug_device, cache, device, []) is expected


def test_auto_with_a_step_without_a_batched_form_runs_per_image_and_says_why(caplog):
    caplog.set_level("INFO")
    assert augments_on_device("auto", "none", CUDA, ["AUG.ROTATION"]) is False
    assert "DATA.AUG_DEVICE auto: AUG.ROTATION run per image" in caplog.text


@pytest.mark.parametrize("aug_device, cache, unbatched, message", [
    ("device", "none", ["AUG.ROTATION", "AUG.RAND_AUGMENT"],
     "DATA.AUG_DEVICE device augments whole batches, which cannot do AUG.ROTATION, AUG.RAND_AUGMENT; switch those "
     "off, or set DATA.AUG_DEVICE cpu (or auto)"),
    ("auto", "ram", ["AUG.RRC_SCALE"],
     "DATA.CACHE ram augments whole batches on the device, which cannot do AUG.RRC_SCALE; switch it off, or set "
     "DATA.CACHE none"),
    ("cpu", "device", [],
     "DATA.CACHE device draws whole batches without loader workers, so the augmentation runs on those batches on "
     "the device; set DATA.AUG_DEVICE device or auto, or DATA.CACHE none"),
])
def test_impossible_placements_are_one_line(aug_device, cache, unbatched, message):
    with pytest.raises(UserError) as error:
        augments_on_device(aug_device, cache, CPU, unbatched)
    assert str(error.value) == message


def test_unbatched_keys_are_the_steps_switched_on_that_batch_augment_lacks():
    batched = cfg_with(*BATCHED_AUG, "AUG.RRC_SCALE", "(0.08, 1.0)", "AUG.VFLIP_PROB", "0.5",
                       "AUG.GRAYSCALE_PROB", "0.2").AUG
    assert unbatched_aug_keys(batched, "bilinear") == []
    # The batched random-resized crop resamples bilinearly only.
    assert unbatched_aug_keys(batched, "bicubic") == ["AUG.RRC_SCALE"]
    aug = cfg_with("AUG.ROTATION", "10", "AUG.BLUR_PROB", "0.5", "AUG.AUGMIX", "3").AUG
    assert unbatched_aug_keys(aug, "bilinear") == ["AUG.ROTATION", "AUG.BLUR_PROB", "AUG.AUGMIX"]


def test_the_config_refuses_an_unknown_mode_in_one_line():
    with pytest.raises(UserError, match="DATA.CACHE.*gpu.*choose one of: none, ram, device"):
        cfg_with("DATA.CACHE", "gpu")


# --- the batches ------------------------------------------------------------------------------

def test_on_the_device_the_workers_only_read_and_the_loader_augments(cifar10):
    loaders = build_loader(cfg_with(*cifar_opts(cifar10), *DEVICE_MODES["workers"]))
    loader = loaders.train_loader
    assert isinstance(loader, DeviceLoader) and loader.augment is not None
    assert loaders.train_dataset.transform is None  # stored at 32 px: nothing left for the workers
    plain = epoch_batches(loader.batches, 0)
    augmented = epoch_batches(loader, 0)
    order = [index for index, _ in loader.sampler]
    assert torch.equal(torch.cat([images for images, _ in plain]),
                       torch.from_numpy(cifar10.train_images[order[:48]]))
    changed = [not torch.equal(a, b) for a, b in zip(torch.cat([i for i, _ in plain]),
                                                      torch.cat([i for i, _ in augmented]))]
    assert sum(changed) > 0.8 * len(changed)
    assert all(images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32) for images, _ in augmented)


def test_every_way_to_the_device_gives_the_same_batches_every_epoch(cifar10):
    loaders = {mode: build_loader(cfg_with(*cifar_opts(cifar10), *opts)) for mode, opts in DEVICE_MODES.items()}
    for epoch in (0, 3):
        reference = epoch_batches(loaders["workers"].train_loader, epoch)
        for mode in ("ram", "device"):
            assert_same_batches(epoch_batches(loaders[mode].train_loader, epoch), reference)
    # The epochs differ in order and in augmentation.
    assert not torch.equal(epoch_batches(loaders["ram"].train_loader, 1)[0][0], reference[0][0])
    for split in ("val_loader", "test_loader"):
        reference = list(getattr(loaders["workers"], split))
        for mode in ("ram", "device"):
            assert_same_batches(list(getattr(loaders[mode], split)), reference)


@pytest.mark.parametrize("mode", ["workers", "ram"])
def test_resuming_inside_an_epoch_gives_the_rest_of_its_batches(cifar10, mode):
    loader = build_loader(cfg_with(*cifar_opts(cifar10), *DEVICE_MODES[mode])).train_loader
    whole = epoch_batches(loader, 2)
    assert len(whole) == 3
    assert_same_batches(epoch_batches(loader, 2, start=16), whole[1:])


def test_two_processes_see_the_augmented_batches_of_one_with_twice_the_batch_size(cifar10):
    opts = [*cifar_opts(cifar10), *DEVICE_MODES["ram"]]
    single = build_loader(cfg_with(*opts, "DATA.BATCH_SIZE", "16")).train_loader
    ranks = [build_loader(cfg_with(*opts, "DATA.BATCH_SIZE", "8"), rank=rank, world_size=2).train_loader
             for rank in range(2)]
    per_rank = [epoch_batches(loader, 1) for loader in ranks]
    for (images, labels), *rank_batches in zip(epoch_batches(single, 1), *per_rank, strict=True):
        for rank, (rank_images, rank_labels) in enumerate(rank_batches):
            assert torch.equal(images[rank::2], rank_images) and torch.equal(labels[rank::2], rank_labels)


def test_the_cached_loader_batches_the_samplers_order_and_drops_a_ragged_end():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2).contiguous()
    labels = torch.arange(10) * 100
    sampler = EpochShuffleSampler(10, seed=3)
    order = [index for index, _ in sampler]
    kept = CachedLoader(images, labels, sampler, 4, drop_last=False)
    dropped = CachedLoader(images, labels, sampler, 4, drop_last=True)
    assert (len(kept), len(dropped)) == (3, 2)
    assert [batch[:, 0, 0, 0].tolist() for batch, _ in kept] == [order[:4], order[4:8], order[8:]]
    assert [batch.tolist() for _, batch in dropped] == [[100 * i for i in order[:4]], [100 * i for i in order[4:8]]]


def test_a_cache_too_big_for_memory_names_what_it_needs_and_what_is_free():
    with pytest.raises(UserError) as error:
        check_cache_fits(3 * 2**30, 2**30, "device", "the GPU")
    assert str(error.value) == ("DATA.CACHE device needs 3.00 GiB for the data set's splits but the GPU has 1.00 GiB "
                                "free; set DATA.CACHE ram, or train on part of it (DATA.TRAIN_SUBSET)")
    check_cache_fits(2**30, 2**30, "ram", "host memory")


def test_a_run_whose_cache_does_not_fit_stops_in_one_line_before_writing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("data.build.available_bytes", lambda device: 10**6)
    code = main.main(["--cfg", QUICKSTART, "--output", str(tmp_path), "--device", "cpu",
                      "--opts", "WANDB.MODE", "disabled", "DATA.CACHE", "ram"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: DATA.CACHE ram needs 0.01 GiB for the data set's splits but host memory has "
                          "0.00 GiB free")
    assert not any(tmp_path.rglob("*.pth"))


def test_medium_imagenet_is_cached_resized_to_img_size(medium_imagenet):
    opts = ["DATA.DATASET", "medium_imagenet", "DATA.DATA_PATH", str(medium_imagenet.path), "DATA.IMG_SIZE", "16",
            "DATA.BATCH_SIZE", "4", "AUG.CROP_PADDING", "0", "AUG.HFLIP_PROB", "0", "AUG.COLOR_JITTER", "0"]
    through_workers = build_loader(cfg_with(*opts))
    cached = build_loader(cfg_with(*opts, "DATA.CACHE", "ram"))
    assert_same_batches(epoch_batches(cached.train_loader, 0), epoch_batches(through_workers.train_loader, 0))
    assert_same_batches(list(cached.val_loader), list(through_workers.val_loader))
    test_images, test_labels = next(iter(cached.test_loader))
    assert test_images.shape == (4, 3, 16, 16) and test_labels.tolist() == [-1] * 4


def test_the_random_resized_crop_runs_on_the_device_from_the_images_as_stored(medium_imagenet):
    opts = ["DATA.DATASET", "medium_imagenet", "DATA.DATA_PATH", str(medium_imagenet.path), "DATA.IMG_SIZE", "12",
            "DATA.BATCH_SIZE", "4", "AUG.RRC_SCALE", "(0.3, 1.0)", "AUG.VFLIP_PROB", "0.5", "AUG.GRAYSCALE_PROB", "0.5"]
    through_workers = build_loader(cfg_with(*opts, "DATA.AUG_DEVICE", "device"))
    cached = build_loader(cfg_with(*opts, "DATA.CACHE", "ram"))
    assert through_workers.train_dataset.transform is None  # the workers hand on the 16 px images as stored
    assert cached.train_loader.batches.images.shape[1:] == (3, 16, 16)
    assert cached.val_loader.images.shape[1:] == (3, 12, 12)
    batches = epoch_batches(cached.train_loader, 1)
    assert all(images.shape[1:] == (3, 12, 12) for images, _ in batches)
    assert_same_batches(batches, epoch_batches(through_workers.train_loader, 1))


# --- training ---------------------------------------------------------------------------------


