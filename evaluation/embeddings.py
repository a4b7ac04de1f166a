"""Embeddings of a model: the L2-normalised output of `forward_features`, for verification and
--export-embeddings (an HDF5 file of them).

    uint8 batch ──► normalise ──► views (TEST.TTA: the image, its mirror, ...) ──► forward_features
        ──► L2-normalise each view's embedding ──► mean over views ──► L2-normalise ──► (N, D)

Averaging unit vectors weighs every view the same, as TTA's averaged probabilities do for
classification; the mean is normalised again so that a dot product is a cosine similarity.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Sampler
from tqdm import tqdm

from data.sampler import ShardSampler, gather_shards
from evaluation.tta import tta_views
from evaluation.verification import pair_similarities
from utils.device import DeviceSetup
from utils.distributed import rank_and_size


@torch.no_grad()
def compute_embeddings(model: nn.Module, normalize: nn.Module, loader: Iterable, setup: DeviceSetup,
                       tta: str = "none") -> np.ndarray:
    """The L2-normalised float32 embeddings (N, D) of `loader`'s images, in loader order; under
    torchrun the loader reads this rank's shard (ShardSampler) and every rank gets all rows.

    `model` is the plain ImageClassifier (not its DDP or torch.compile wrapper): only its
    `forward_features` runs.
    """
    model.eval()
    rows = []
    for images, _ in tqdm(loader, desc="embed", leave=False, dynamic_ncols=True, disable=None):
        images = normalize(images.to(setup.device, non_blocking=True))
        views = tta_views(images, tta)
        with setup.autocast():
            features = model.forward_features(torch.cat(views))
        per_view = F.normalize(features.float(), dim=1).unflatten(0, (len(views), len(images)))
        rows.append(F.normalize(per_view.mean(dim=0), dim=1).cpu())
    local = torch.cat(rows).numpy() if rows else np.zeros((0, 0), np.float32)
    gathered = gather_shards(list(local))
    return np.stack(gathered).astype(np.float32) if gathered else local


def embed_items(model: nn.Module, normalize: nn.Module, make_loader: Callable[[Sampler], Iterable],
                items: np.ndarray, setup: DeviceSetup, tta: str = "none") -> np.ndarray:
    """The embeddings of the split's `items` (dataset indices), in that order, shared across
    torchrun's ranks; `make_loader(sampler)` builds the split's loader over a sampler."""
    rank, world_size = rank_and_size()
    loader = make_loader(ShardSampler(len(items), rank, world_size, order=items.tolist()))
    return compute_embeddings(model, normalize, loader, setup, tta)


def similarities_of_pairs(model: nn.Module, normalize: nn.Module, make_loader: Callable[[Sampler], Iterable],
                          first: np.ndarray, second: np.ndarray, setup: DeviceSetup,
                          tta: str = "none") -> np.ndarray:
    """Cosine similarity of the embeddings of items first[i] and second[i] of a split; each image
    is embedded once, however many pairs it is in."""
    used = np.unique(np.concatenate([first, second]))
    embeddings = embed_items(model, normalize, make_loader, used, setup, tta)
    return pair_similarities(embeddings, np.searchsorted(used, first), np.searchsorted(used, second))


def write_embeddings(path: str, embeddings: np.ndarray, labels: np.ndarray, ids: Sequence[str], split: str) -> None:
    """An HDF5 file of a split's embeddings, written atomically:

    - `embeddings`: float32 (N, D), L2-normalised, so a dot product is a cosine similarity;
    - `labels`: int64 (N,), the class index, -1 where the split has no labels (test);
    - `ids`: (N,) UTF-8 strings, the image's file id, or its index in the split;
    - attribute `split`.

    Read it back with h5py: `f["embeddings"][:]`, `f["ids"].asstr()[:]`.
    """
    import h5py

    tmp_path = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp_path, "w") as f:
            f.create_dataset("embeddings", data=np.asarray(embeddings, np.float32))
            f.create_dataset("labels", data=np.asarray(labels, np.int64))
            f.create_dataset("ids", data=[str(item) for item in ids], dtype=h5py.string_dtype("utf-8"))
            f.attrs["split"] = split
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
