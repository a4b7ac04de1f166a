"""Samplers whose order depends only on (seed, epoch), split across processes by interleaving.

The train sampler hands the dataset `(index, sample_seed)` pairs, and the dataset seeds each
image's augmentation with its `sample_seed`. So what a training step sees depends only on
(seed, epoch, index): not on the number of loader workers, not on where a resumed run picked
up, and not on how many processes share the epoch. The seeds of what is drawn per batch (the
batched augmentation, Mixup / CutMix) and per loader iterator come from (seed, epoch, batch) here too.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from utils.distributed import is_distributed

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


# The last word of the entropy [seed, epoch, batch_index, stream] from which SeedSequence mixes
# each stream of seeds below. It zero-pads entropy, so batch_seed's three words are stream 0, and
# the class-balanced sampler's [seed, epoch, 2**32] reads as the words [seed, epoch, 0, 1]: the
# streams here start at 2, so that no two of them share a seed.
_MIX_STREAM = 2
_LOADER_STREAM = 3


def _stream_seed(seed: int, epoch: int, batch_index: int, stream: int) -> int:
    sequence = np.random.SeedSequence([seed, epoch, batch_index, stream])
    return int(sequence.generate_state(1, np.uint64)[0]) & (2**63 - 1)


def mix_seed(seed: int, epoch: int, batch_index: int) -> int:
    """The seed of the Mixup / CutMix draws of train batch `batch_index` of `epoch` (data.mix),
    below 2**63: a stream apart from the batch's augmentation (`batch_seed`)."""
    return _stream_seed(seed, epoch, batch_index, _MIX_STREAM)


def loader_seed(seed: int, epoch: int) -> int:
    """The seed of the generator from which a loader's iterator over `epoch` draws its workers'
    base seed (data.seeded_loader), below 2**63."""
    return _stream_seed(seed, epoch, 0, _LOADER_STREAM)


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


class EpochSampler(Sampler[tuple[int, int]]):
    """What the train samplers share: the epoch whose order they yield (`set_epoch`), and the
    position in it that a resumed run starts from (`set_start`), for one rank of `world_size`."""

    def __init__(self, seed: int, rank: int = 0, world_size: int = 1):
        _check_rank(rank, world_size)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Yield the order of `epoch` from the next iteration on, from its first item."""
        self.epoch = epoch
        self.start = 0

    def set_start(self, position: int) -> None:
        """Skip the first `position` items of this rank's epoch, to resume in the middle of it.

        Holds for every iteration until the next `set_epoch`. A multiple of the batch size keeps
        the batches those of the uninterrupted epoch.
        """
        if not 0 <= position <= len(self):
            raise ValueError(f"start position {position} is outside 0..{len(self)}")
        self.start = position


class EpochShuffleSampler(EpochSampler):
    """One process's share of a random permutation of range(length), reseeded by `set_epoch`.

    Yields `(index, sample_seed)`. Rank r of `world_size` takes every world_size-th item of the
    permutation from the r-th, cut so that every rank gets `length // world_size`: batch k of all
    ranks together is then batch k of a single process with a world_size times larger batch.
    """

    def __init__(self, length: int, seed: int, rank: int = 0, world_size: int = 1):
        super().__init__(seed, rank, world_size)
        self.length = length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        permutation_seed, epoch_seed = _epoch_seeds(self.seed, self.epoch)
        permutation = torch.randperm(self.length, generator=torch.Generator().manual_seed(permutation_seed))
        shard = permutation[self.rank::self.world_size][:len(self)][self.start:].tolist()
        return ((index, sample_seed(epoch_seed, index)) for index in shard)

    def __len__(self) -> int:
        return self.length // self.world_size


# Two 32-bit words, [0, 1], as SeedSequence reads it: [seed, epoch] and batch_seed's
# [seed, epoch, batch_index] are zero-padded single words, so none of them mixes to these seeds.
_CLASS_BALANCED_STREAM = 2**32


def _class_balanced_seeds(seed: int, epoch: int) -> tuple[int, int]:
    """(draw seed, epoch seed) of `ClassBalancedSampler` for `epoch` of a run seeded with `seed`."""
    sequence = np.random.SeedSequence([seed, epoch, _CLASS_BALANCED_STREAM])
    draw_seed, epoch_seed = sequence.generate_state(2, np.uint64).tolist()
    return draw_seed, epoch_seed & (2**63 - 1)


def _distinct_draws(rng: np.random.Generator, population_sizes: np.ndarray, count: int) -> np.ndarray:
    """(len(population_sizes), count) integers: row i holds `count` distinct draws from
    range(population_sizes[i]), a uniform random subset in random order."""
    # Floyd's algorithm, one step per column for all rows at once: the loop runs `count` times,
    # never once per row.
    draws = np.empty((len(population_sizes), count), dtype=np.int64)
    for column in range(count):
        top = population_sizes - count + column
        candidates = rng.integers(0, top + 1)
        taken = (draws[:, :column] == candidates[:, None]).any(axis=1)
        draws[:, column] = np.where(taken, top, candidates)
    return rng.permuted(draws, axis=1)


def eligible_classes(labels: Sequence[int] | np.ndarray, images_per_class: int) -> np.ndarray:
    """The classes of `labels`, sorted, that have at least `images_per_class` images."""
    classes, sizes = np.unique(np.asarray(labels), return_counts=True)
    return classes[sizes >= images_per_class]


class ClassBalancedSampler(EpochSampler):
    """P x K batches for metric learning: `classes_per_batch` (P) distinct classes, and
    `images_per_class` (K) distinct images of each, grouped class by class.

    Batch-hard triplet mining needs, for every anchor, K - 1 positives of its class and negatives
    of P - 1 others in the same batch, which uniform shuffling does not promise. A loader with
    batch size P * K batches the yielded `(index, sample_seed)` pairs into these batches.

    Only classes with at least K images are drawn; `left_out_classes` counts the others. An epoch
    holds `num_batches` global batches, as many as cover the eligible images once on average;
    an image may be drawn in several of them, so `sample_seed` follows the item's position in the
    epoch, not its index. Global batch b holds P * world_size classes drawn without replacement,
    and rank r takes its classes r, r + world_size, ...: batch k of all ranks together is then
    batch k of a single process with world_size times more classes per batch.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, classes_per_batch: int, images_per_class: int,
                 seed: int, rank: int = 0, world_size: int = 1):
        super().__init__(seed, rank, world_size)
        if classes_per_batch < 1 or images_per_class < 1:
            raise ValueError(f"a batch needs at least 1 class and 1 image per class, not {classes_per_batch} "
                             f"classes of {images_per_class} images")
        labels = np.asarray(labels)
        classes = eligible_classes(labels, images_per_class)
        self.left_out_classes = len(np.unique(labels)) - len(classes)
        global_classes = classes_per_batch * world_size
        if len(classes) < global_classes:
            raise ValueError(f"only {len(classes)} classes have at least {images_per_class} images, but batches of "
                             f"{classes_per_batch} classes on {world_size} processes need {global_classes} such "
                             f"classes ({self.left_out_classes} classes have fewer images)")
        drawn = np.isin(labels, classes)
        # Dataset indices of the eligible images, class by class in the order of `classes`.
        self._images_by_class = np.flatnonzero(drawn)[np.argsort(labels[drawn], kind="stable")]
        self._class_sizes = np.unique(labels[drawn], return_counts=True)[1]
        self._class_starts = np.cumsum(self._class_sizes) - self._class_sizes
        self.classes_per_batch = classes_per_batch
        self.images_per_class = images_per_class
        # At least 1: the check above leaves at least one global batch's worth of images.
        self.num_batches = len(self._images_by_class) // (global_classes * images_per_class)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        draw_seed, epoch_seed = _class_balanced_seeds(self.seed, self.epoch)
        rng = np.random.default_rng(draw_seed)
        global_classes = self.classes_per_batch * self.world_size
        class_draws = _distinct_draws(rng, np.full(self.num_batches, len(self._class_sizes)), global_classes)
        picks = _distinct_draws(rng, self._class_sizes[class_draws.ravel()], self.images_per_class)
        images = self._images_by_class[self._class_starts[class_draws].reshape(-1, 1) + picks]
        # (batch, class, image) of the global epoch, and each item's position in it.
        images = images.reshape(self.num_batches, global_classes, self.images_per_class)
        positions = np.arange(images.size).reshape(images.shape)
        shard = slice(self.rank, None, self.world_size)
        images = images[:, shard].ravel()[self.start:].tolist()
        positions = positions[:, shard].ravel()[self.start:].tolist()
        return ((index, sample_seed(epoch_seed, position)) for index, position in zip(images, positions))

    def __len__(self) -> int:
        return self.num_batches * self.classes_per_batch * self.images_per_class


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


def gather_shards(local: Sequence[Any]) -> list[Any]:
    """Every rank's `local` items, put back in split order: rank r evaluated items r, r+W, r+2W, ...
    (ShardSampler). Every rank gets the whole list."""
    if not is_distributed():
        return list(local)
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(local))
    return unshard(parts)
