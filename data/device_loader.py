"""Train batches handed over on the training device, augmented there as whole batches.

`DeviceLoader` wraps a loader of uint8 batches: a DataLoader whose workers only read (and
resize), or a `data.cache.CachedLoader` in host memory or already on the device. On CUDA each
host batch is copied on a side stream, from pinned memory, so that the copy runs beside the
step the GPU is still computing and the host never waits for it.

With a `BatchAugment`, each batch is augmented on the device with parameters drawn from
`data.sampler.batch_seed(seed, epoch, batch index)` for the global batch (every rank's share
together), of which each rank takes its own rows, the rows the sampler's interleaving gave it.
So what a step sees depends on (seed, epoch, batch index) alone: not on DATA.CACHE, the number
of workers, where a resumed run picked up (the sampler's start position says which batch comes
first), or how many processes share the epoch; the per-image path promises the same.
"""
from __future__ import annotations

from itertools import count
from typing import Iterable, Iterator

import torch

from data.batch_augment import AugmentParams, BatchAugment
from data.sampler import batch_seed


class DeviceLoader:
    """Iterate `batches` (uint8 images, labels) as batches on `device`, augmented by `augment`
    when given. `sampler` and `batch_size` are those of `batches`, whose length it has."""

    def __init__(self, batches: Iterable, device: torch.device, augment: BatchAugment | None = None):
        self.batches = batches
        self.device = device
        self.augment = augment
        self.sampler = batches.sampler
        self.batch_size = batches.batch_size
        self._generator = torch.Generator(device=device) if augment is not None else None

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = getattr(self.sampler, "epoch", 0)
        # The sampler's start is a whole number of batches into the epoch (see EpochShuffleSampler.set_start).
        first_batch = getattr(self.sampler, "start", 0) // self.batch_size
        copy_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        for batch_index, (images, targets) in zip(count(first_batch), self.batches):
            images, targets = self._to_device(images, copy_stream), self._to_device(targets, copy_stream)
            if self.augment is not None:
                images = self.augment.apply(images, self.batch_params(epoch, batch_index, images.shape[0]))
            yield images, targets

    def _to_device(self, tensor: torch.Tensor, copy_stream) -> torch.Tensor:
        if tensor.device == self.device:
            return tensor
        if copy_stream is None:
            return tensor.to(self.device, non_blocking=True)
        # The copy waits for nothing the compute stream has queued, so it overlaps the step in
        # flight; the compute stream then waits for the copy before it uses the batch, and
        # record_stream keeps the allocator from reusing the batch's memory until it is done.
        with torch.cuda.stream(copy_stream):
            on_device = tensor.to(self.device, non_blocking=True)
        compute_stream = torch.cuda.current_stream(self.device)
        compute_stream.wait_stream(copy_stream)
        on_device.record_stream(compute_stream)
        return on_device

    def batch_params(self, epoch: int, batch_index: int, num_images: int) -> AugmentParams:
        """The augmentation parameters of this rank's `num_images` images of train batch
        `batch_index` of `epoch`: rows rank, rank + W, rank + 2W, ... of the global batch's."""
        rank, world_size = getattr(self.sampler, "rank", 0), getattr(self.sampler, "world_size", 1)
        self._generator.manual_seed(batch_seed(getattr(self.sampler, "seed", 0), epoch, batch_index))
        params = self.augment.sample_params(self.batch_size * world_size, self._generator)
        return params.rows(slice(rank, rank + num_images * world_size, world_size))
