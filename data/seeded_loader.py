"""A DataLoader that leaves torch's global generator alone.

Each DataLoader iterator draws its workers' base seed when it is created, from the loader's
`generator`, or from torch's global CPU generator when it has none. That global generator is
the training's (dropout, and what a checkpoint saves and a resumed run restores), so a loader
without its own would shift every later draw of the training by one per epoch, and a run resumed
inside an epoch, which creates its iterator after restoring the state, would draw differently
from the uninterrupted one.
"""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader

from data.sampler import loader_seed


class SeededDataLoader(DataLoader):
    """A DataLoader (same arguments, but no `generator`) whose iterators draw from a generator of
    its own, seeded from (`seed`, the sampler's epoch) as each iteration starts (epoch 0 for a
    sampler without one). Persistent workers keep the base seed of their first epoch."""

    def __init__(self, *args: Any, seed: int, **kwargs: Any):
        super().__init__(*args, generator=torch.Generator(), **kwargs)
        self.seed = seed

    def __iter__(self) -> Iterator:
        self.generator.manual_seed(loader_seed(self.seed, getattr(self.sampler, "epoch", 0)))
        return super().__iter__()
