"""Preview the train augmentation: what the model receives, image by image.

    python scripts/show_augmentations.py [--cfg CFG] [--out DIR] [--opts KEY VALUE ...]

Writes augmentations.png into DIR (default: the current folder) and prints its path: 8 training
images, one per row, each with its stored original beside 7 draws of the train augmentation. Draw
k is exactly what the loader hands the model for that image in epoch k (the same per-image seed,
or with DATA.AUG_DEVICE on the device the same batch parameters, as training): uint8 pixels,
shown as they are, since normalisation happens later, on the device, and there is nothing to
undo. A config error, or a transform that fails on the data, ends with one line naming it and
exit code 2.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from config import get_config  # noqa: E402
from data import build_loader  # noqa: E402
from data.dataset import ImageDataset  # noqa: E402
from data.device_loader import DeviceLoader  # noqa: E402
from data.sampler import EpochShuffleSampler  # noqa: E402
from utils.cli import OneLineErrorParser  # noqa: E402
from utils.device import resolve_device  # noqa: E402
from utils.errors import UserError  # noqa: E402
from evaluation.plots import augmentations_figure, save_figure  # noqa: E402

NUM_IMAGES = 8
NUM_DRAWS = 7
FILE_NAME = "augmentations.png"
NOTE = ("original: as stored; draw k: the uint8 image the model receives in epoch k "
        "(normalised afterwards, on the device)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser("python scripts/show_augmentations.py",
                                description="Draw 8 training images beside 7 augmentations of each.")
    parser.add_argument("--cfg", help="YAML config file (defaults only when omitted)")
    parser.add_argument("--out", default=".", help=f"folder to write {FILE_NAME} into (default: here)")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="KEY VALUE pairs applied last, e.g. --opts AUG.ROTATION 15")
    args = parser.parse_args(argv)
    misplaced = [item for item in args.opts[0::2] if item.startswith("--")]
    if misplaced:
        parser.error(f"{misplaced[0]} comes after --opts, which reads everything after it as KEY VALUE pairs; "
                     f"put flags before --opts")
    return args


def preview_config(cfg):
    """`cfg` without DATA.CACHE, which would load every split for 8 images; the augmentation stays
    where the cache would have put it."""
    if cfg.DATA.CACHE == "none":
        return cfg
    preview = cfg.clone()
    preview.defrost()
    preview.DATA.CACHE = "none"
    preview.DATA.AUG_DEVICE = "device"
    preview.freeze()
    return preview


def draw_augmentations(dataset: ImageDataset, sampler: EpochShuffleSampler, positions: list[int],
                       num_draws: int) -> list[list[np.ndarray]]:
    """draws[i][k]: dataset item positions[i] as the train loader delivers it in epoch k."""
    draws = [[] for _ in positions]
    for epoch in range(num_draws):
        sampler.set_epoch(epoch)
        seeds = dict(iter(sampler))
        for row_draws, (image, _) in zip(draws, dataset.__getitems__([(p, seeds[p]) for p in positions])):
            row_draws.append(image.numpy())
    return draws


def draw_batched_augmentations(dataset: ImageDataset, loader: DeviceLoader, positions: list[int],
                               num_draws: int) -> list[list[np.ndarray]]:
    """draws[i][k]: dataset item positions[i] as `loader` (augmenting whole batches) delivers it
    in epoch k: the parameters of its row of its batch, applied to it alone."""
    sampler = loader.sampler
    inputs = [image[None].to(loader.device) for image, _ in dataset.__getitems__(positions)]
    draws = [[] for _ in positions]
    for epoch in range(num_draws):
        sampler.set_epoch(epoch)
        place_in_epoch = {index: place for place, (index, _) in enumerate(sampler)}
        for row_draws, position, image in zip(draws, positions, inputs):
            batch_index, row = divmod(place_in_epoch[position], loader.batch_size)
            params = loader.batch_params(epoch, batch_index, loader.batch_size).rows(slice(row, row + 1))
            row_draws.append(loader.augment.apply(image, params)[0].cpu().numpy())
    return draws


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = get_config(args.cfg, args.opts)
        loaders = build_loader(preview_config(cfg), device=resolve_device(cfg.DEVICE))
        dataset = loaders.train_dataset
        if dataset.transform is None and not getattr(loaders.train_loader, "augment", None):
            print("warning: every train augmentation is off, so each draw equals its original", file=sys.stderr)
        # Spread over the split rather than its first images, for a mix of classes.
        positions = np.unique(np.linspace(0, len(dataset) - 1, NUM_IMAGES).round().astype(int))
        stored = dataset.indices[positions]  # sorted, as stores read them
        loader = loaders.train_loader
        if isinstance(loader, DeviceLoader) and loader.augment is not None:
            draws = draw_batched_augmentations(dataset, loader, positions.tolist(), NUM_DRAWS)
        else:
            draws = draw_augmentations(dataset, loader.sampler, positions.tolist(), NUM_DRAWS)
        labels = [loaders.class_names[int(dataset.labels[index])] for index in stored]
        figure = augmentations_figure(dataset.store.read(stored), draws, labels, NOTE)
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, FILE_NAME)
        save_figure(figure, path)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
