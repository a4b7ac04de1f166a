"""DATA.CACHE: a whole split held as one uint8 tensor, in host memory or on the training
device, and its batches drawn by index in the sampler's order, with no loader workers.

The cached images are the split after its deterministic resize (the eval transform, or the
train chain's resize), so a batch costs one gather. Random augmentation then runs on whole
batches (`data.device_loader.DeviceLoader`). The sampler is the one a DataLoader would get, so
shuffling, resuming in the middle of an epoch and the per-rank shards are the same in every mode.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from data.dataset import NO_LABEL, ImageDataset
from utils.errors import UserError

# Images read, resized and copied per chunk while a split is cached.
CACHE_CHUNK = 256


def cached_bytes(dataset: ImageDataset, image_size: int) -> int:
    """Bytes of `dataset` cached as uint8 (N, 3, image_size, image_size) images with int64 labels."""
    return len(dataset) * (3 * image_size * image_size + 8)


def available_bytes(device: torch.device) -> int:
    """Memory free for a cache on `device`: the GPU's free memory, or the host's MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_cache_fits(needed: int, free: int, mode: str, where: str) -> None:
    """UserError naming both amounts when `needed` bytes are more than the `free` ones."""
    if needed > free:
        raise UserError(f"DATA.CACHE {mode} needs {needed / 2**30:.2f} GiB for the data set's splits but "
                        f"{where} has {free / 2**30:.2f} GiB free; set DATA.CACHE "
                        f"{'ram' if mode == 'device' else 'none'}, or train on part of it (DATA.TRAIN_SUBSET)")


def cache_split(dataset: ImageDataset, image_size: int, device: torch.device,
                threads: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 3, image_size, image_size), labels int64 (N,)) of `dataset` on `device`,
    each image after `dataset.transform`, which must be deterministic (a resize or a crop).
    Chunks are read on `threads` threads: decoding image files releases the GIL."""
    images = torch.empty((len(dataset), 3, image_size, image_size), dtype=torch.uint8, device=device)
    positions = dataset.indices
    starts = range(0, len(positions), CACHE_CHUNK)

    def read(start: int) -> torch.Tensor:
        pixels = torch.from_numpy(dataset.store.read(positions[start:start + CACHE_CHUNK]))  # sorted, as stores need
        return dataset.transform(pixels) if dataset.transform is not None else pixels

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for start, pixels in zip(starts, pool.map(read, starts)):
            images[start:start + len(pixels)].copy_(pixels)
    labels = (np.asarray(dataset.labels)[positions] if dataset.labels is not None
              else np.full(len(positions), NO_LABEL))
    return images, torch.as_tensor(labels, dtype=torch.int64).to(device)


class CachedLoader:
    """Batches of `batch_size` (images, labels) gathered from cached tensors in `sampler`'s
    order, as a DataLoader over the same sampler batches them. `sampler` yields dataset
    positions, or (position, seed) pairs whose seeds the batched augmentation does not need.

    With `pin_batches`, each host batch is gathered into pinned memory, so that its copy to
    the GPU runs asynchronously. (Pinning the whole split instead would save nothing: a batch
    of shuffled rows is a gathered copy either way.)
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, sampler: Sampler, batch_size: int,
                 drop_last: bool, pin_batches: bool = False):
        self.images, self.labels = images, labels
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.pin_batches = pin_batches

    def __len__(self) -> int:
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.tensor([item[0] if isinstance(item, tuple) else item for item in self.sampler],
                             dtype=torch.int64)
        if self.drop_last:
            order = order[:len(order) // self.batch_size * self.batch_size]
        # One copy of the epoch's order to the cache's device, not one per batch.
        order = order.to(self.images.device)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            yield self._gather(self.images, batch), self._gather(self.labels, batch)

    def _gather(self, source: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        if not self.pin_batches:
            return source.index_select(0, batch)
        # A copy from pageable memory would make the host wait for the GPU.
        pinned = torch.empty((len(batch),) + source.shape[1:], dtype=source.dtype, pin_memory=True)
        return torch.index_select(source, 0, batch, out=pinned)
