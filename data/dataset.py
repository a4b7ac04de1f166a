"""One Dataset class for every data set: uint8 images from an array store, plus labels.

A store is anything with `__len__`, `image_size` and `read(indices) -> uint8 array (B, 3, S, S)`
for sorted indices: an in-memory NumPy array (digits, CIFAR) or an HDF5 file (MediumImageNet).
The DataLoader calls `__getitems__` with a whole batch of indices, so an HDF5 store reads a
batch per call instead of one image per call. The train sampler gives `(index, sample_seed)`
pairs instead of indices, so that each image's augmentation depends on its seed alone.
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

# Label of images whose class is unknown (the MediumImageNet test split).
NO_LABEL = -1

# What a sampler asks the dataset for: an index, or (index, seed of that image's augmentation).
ItemRequest = Union[int, tuple[int, int]]


class ImageStore(Protocol):
    image_size: int

    def __len__(self) -> int: ...

    def read(self, indices: np.ndarray) -> np.ndarray: ...


class ArrayStore:
    """Images held in memory as a uint8 array of shape (N, 3, S, S)."""

    def __init__(self, images: np.ndarray):
        self.images = images
        self.image_size = images.shape[-1]

    def __len__(self) -> int:
        return len(self.images)

    def read(self, indices: np.ndarray) -> np.ndarray:
        return self.images[indices]


class ImageDataset(Dataset):
    """The images of `store` at `indices` (all of them when None), with their labels.

    Returns `(image, label)` with image a uint8 tensor (3, H, W) after `transform`, and label an
    int (NO_LABEL where the split has none). An item asked for as `(index, sample_seed)` is
    transformed with torch's generator seeded by `sample_seed`, so its augmentation is reproducible.
    """

    def __init__(self, store: ImageStore, labels: np.ndarray | None, num_classes: int,
                 indices: np.ndarray | None = None, transform: Callable | None = None):
        self.store = store
        self.labels = labels
        self.num_classes = num_classes
        self.indices = np.arange(len(store)) if indices is None else np.asarray(indices)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: ItemRequest) -> tuple[torch.Tensor, int]:
        return self.__getitems__([item])[0]

    def __getitems__(self, batch: Sequence[ItemRequest]) -> list[tuple[torch.Tensor, int]]:
        indices = [item[0] if isinstance(item, tuple) else item for item in batch]
        seeds = [item[1] if isinstance(item, tuple) else None for item in batch]
        positions = self.indices[np.asarray(indices, dtype=np.int64)]
        # Stores read sorted indices fastest (HDF5 requires them); put the batch back in order after.
        order = np.argsort(positions, kind="stable")
        images = np.empty((len(positions),) + (3, self.store.image_size, self.store.image_size), np.uint8)
        images[order] = self.store.read(positions[order])
        reseeding = self.transform is not None and any(seed is not None for seed in seeds)
        # torchvision's v2 transforms draw from torch's global CPU generator. A worker process owns
        # its generator; in the main process (no workers) it is the training's (dropout, mixup), so
        # it gets its state back afterwards and training does not depend on the number of workers.
        in_main_process = get_worker_info() is None
        samples = []
        with torch.random.fork_rng(devices=[], enabled=reseeding and in_main_process):
            for image, position, seed in zip(torch.from_numpy(images), positions, seeds):
                if self.transform is not None:
                    if seed is not None:
                        # Not torch.manual_seed: that would reseed the CUDA generators too.
                        torch.default_generator.manual_seed(seed)
                    image = self.transform(image)
                label = int(self.labels[position]) if self.labels is not None else NO_LABEL
                samples.append((image, label))
        return samples
