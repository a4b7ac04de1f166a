"""Samplers whose order depends only on (seed, epoch), split across processes by interleaving.

The train sampler hands the dataset `(index, sample_seed)` pairs, and the dataset seeds each
image's augmentation with its `sample_seed`. So what a training step sees depends only on
(seed, epoch, index): not on the number of loader workers, not on where a resumed run picked
up, and not on how many processes share the epoch.
"""
from __future__ import annotations

from typing import Iterator, Sequence, TypeVar

import numpy as np
import torch
from torch.utils.data import Sampler

T = TypeVar("T")


def sample_seed(epoch_seed: int, index: int) -> int:
    """The seed of the augmentation of dataset item `index` in the epoch whose seed is `epoch_seed`.

    Below 2**63 so that it fits a signed int64, as torch stores seeds and integers in tensors.
    """
    return (epoch_seed + index) % 2**63


def batch_seed(seed: int, epoch: int, batch_index: int) -> int:
    """The seed of the batched augmentation of train batch `batch_index` of `epoch` (counted
    over the global batch, all ranks together), below 2**63."""
    # The third word keeps these seeds apart from the (permutation, epoch) seeds of [seed, epoch].
    return int(np.random.SeedSequence([seed, epoch, batch_index]).generate_state(1, np.uint64)[0]) & (2**63 - 1)


def _epoch_seeds(seed: int, epoch: int) -> tuple[int, int]:
    """(permutation seed, epoch seed) for `epoch` of a run seeded with `seed`."""
    # Mixing (seed, epoch) through SeedSequence, not adding them, keeps seed 0 at epoch 1 from
    # shuffling like seed 1 at epoch 0, so the runs of a seed sweep are not correlated. The first
    # word is the permutation seed of earlier versions, so their shuffles are unchanged.
    permutation_seed, epoch_seed = np.random.SeedSequence([seed, epoch]).generate_state(2, np.uint64).tolist()
    return permutation_seed, epoch_seed & (2**63 - 1)


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..world_size-1 for world_size {world_size}")


class EpochShuffleSampler(Sampler[tuple[int, int]]):
    """One process's share of a random permutation of range(length), reseeded by `set_epoch`.

    Yields `(index, sample_seed)`. Rank r of `world_size` takes every world_size-th item of the
    permutation from the r-th, cut so that every rank gets `length // world_size`: batch k of all
    ranks together is then batch k of a single process with a world_size times larger batch.
    """

    def __init__(self, length: int, seed: int, rank: int = 0, world_size: int = 1):
        _check_rank(rank, world_size)
        self.length = length
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Shuffle for `epoch` from the next iteration on, from its first item."""
        self.epoch = epoch
        self.start = 0

    def set_start(self, position: int) -> None:
        """Skip the first `position` items of this epoch's order, to resume in the middle of it.

        Holds for every iteration until the next `set_epoch`. A multiple of the batch size keeps
        the batches those of the uninterrupted epoch.
        """
        if not 0 <= position <= len(self):
            raise ValueError(f"start position {position} is outside 0..{len(self)}")
        self.start = position

    def __iter__(self) -> Iterator[tuple[int, int]]:
        permutation_seed, epoch_seed = _epoch_seeds(self.seed, self.epoch)
        permutation = torch.randperm(self.length, generator=torch.Generator().manual_seed(permutation_seed))
        shard = permutation[self.rank::self.world_size][:len(self)][self.start:].tolist()
        return ((index, sample_seed(epoch_seed, index)) for index in shard)

    def __len__(self) -> int:
        return self.length // self.world_size


class ShardSampler(Sampler[int]):
    """Rank r's share of `order` (range(length) when None): items r, r + world_size, r + 2 * world_size, ...

    For evaluation across processes: every item is read exactly once, so shards may differ in
    size by one. `unshard` puts the per-rank results back in `order`.
    """

    def __init__(self, length: int, rank: int, world_size: int, order: Sequence[int] | None = None):
        _check_rank(rank, world_size)
        if order is not None and len(order) != length:
            raise ValueError(f"order holds {len(order)} items for length {length}")
        self.order = range(length) if order is None else list(order)
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[int]:
        return iter(self.order[self.rank::self.world_size])

    def __len__(self) -> int:
        return len(range(self.rank, len(self.order), self.world_size))


def unshard(parts: list[Sequence[T]]) -> list[T]:
    """Interleave per-rank results (parts[r] holds items r, r + W, r + 2W, ... of W ranks) back
    into one list in the original order: the inverse of `ShardSampler`."""
    world_size = len(parts)
    total = sum(len(part) for part in parts)
    expected = [len(range(rank, total, world_size)) for rank in range(world_size)]
    if [len(part) for part in parts] != expected:
        raise ValueError(f"shards of sizes {[len(part) for part in parts]} are not an interleaved split "
                         f"of {total} items, which has sizes {expected}")
    return [parts[position % world_size][position // world_size] for position in range(total)]
