"""One Dataset class for every data set: uint8 images from an array store, plus labels.

A store is anything with `__len__`, `image_size` and `read(indices) -> uint8 array (B, 3, S, S)`
for sorted indices: an in-memory NumPy array (digits, CIFAR) or an HDF5 file (MediumImageNet).
The DataLoader calls `__getitems__` with a whole batch of indices, so an HDF5 store reads a
batch per call instead of one image per call.
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

# Label of images whose class is unknown (the MediumImageNet test split).
NO_LABEL = -1


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
    int (NO_LABEL where the split has none).
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

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.__getitems__([index])[0]

    def __getitems__(self, batch: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        positions = self.indices[np.asarray(batch)]
        # Stores read sorted indices fastest (HDF5 requires them); put the batch back in order after.
        order = np.argsort(positions, kind="stable")
        images = np.empty((len(positions),) + (3, self.store.image_size, self.store.image_size), np.uint8)
        images[order] = self.store.read(positions[order])
        samples = []
        for image, position in zip(torch.from_numpy(images), positions):
            if self.transform is not None:
                image = self.transform(image)
            label = int(self.labels[position]) if self.labels is not None else NO_LABEL
            samples.append((image, label))
        return samples
