"""A shuffling sampler whose order depends only on (seed, epoch).

A resumed run therefore sees the same batches in its remaining epochs as the run it continues.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A random permutation of range(length), reseeded by `set_epoch` (as DistributedSampler)."""

    def __init__(self, length: int, seed: int):
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        # Mixing (seed, epoch) through SeedSequence, not adding them, keeps seed 0 at epoch 1 from
        # shuffling like seed 1 at epoch 0, so the runs of a seed sweep are not correlated.
        mixed = int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1, np.uint64)[0])
        generator = torch.Generator().manual_seed(mixed)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length
