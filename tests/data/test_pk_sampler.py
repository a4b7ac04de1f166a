"""ClassBalancedSampler: P x K batches for metric learning, and their split across ranks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from data.cache import CachedLoader
from data.sampler import ClassBalancedSampler, eligible_classes

P, K = 3, 2
# Uneven classes: class c has SIZES[c] images, shuffled through the data set. Classes 0 and 8
# have fewer than K images and class 7 has none, so 7 classes with 43 images in all are eligible.
SIZES = [1, 2, 3, 5, 8, 13, 2, 0, 1, 10]
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(len(SIZES)), SIZES))
ELIGIBLE = [1, 2, 3, 4, 5, 6, 9]


def batches(sampler: ClassBalancedSampler) -> np.ndarray:
    """One pass as an array (batch, class, image, [index, sample_seed])."""
    items = np.array(list(sampler), dtype=np.int64)
    return items.reshape(-1, sampler.classes_per_batch, sampler.images_per_class, 2)


def assert_p_by_k(indices: np.ndarray, labels: np.ndarray) -> None:
    """Each batch of `indices` (batch, class, image) holds distinct classes of distinct images each."""
    for batch in indices:
        batch_labels = labels[batch]
        assert (batch_labels == batch_labels[:, :1]).all()  # grouped class by class
        assert len(set(batch_labels[:, 0])) == len(batch)
        assert len(set(batch.ravel())) == batch.size


def test_eligible_classes_have_at_least_k_images():
    assert eligible_classes(LABELS, K).tolist() == ELIGIBLE
    assert eligible_classes(list(LABELS), 5).tolist() == [3, 4, 5, 9]


def test_every_batch_holds_p_classes_of_k_distinct_images():
    sampler = ClassBalancedSampler(LABELS, P, K, seed=0)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        assert_p_by_k(batches(sampler)[..., 0], LABELS)


def test_batches_list_their_classes_in_random_order():
    """Not by label, which would hand rank 0 of a global batch its lowest classes."""
    batch_labels = LABELS[batches(ClassBalancedSampler(LABELS, P, K, seed=0))[..., 0, 0]]
    assert any(list(classes) != sorted(classes) for classes in batch_labels)


def test_length_covers_the_eligible_images_in_whole_batches():
    sampler = ClassBalancedSampler(LABELS, P, K, seed=0)
    assert sampler.num_batches == 43 // (P * K) == 7
    assert len(sampler) == len(list(sampler)) == 7 * P * K
    ranks = [ClassBalancedSampler(LABELS, 2, K, seed=0, rank=rank, world_size=2) for rank in range(2)]
    assert all(len(rank) == len(list(rank)) == 43 // (2 * 2 * K) * 2 * K for rank in ranks)


def test_only_eligible_classes_are_drawn_and_left_out_ones_are_counted():
    sampler = ClassBalancedSampler(LABELS, P, K, seed=0)
    assert sampler.left_out_classes == 2  # 0 and 8; class 7 has no image, so it is no class of LABELS
    drawn = set()
    for epoch in range(20):
        sampler.set_epoch(epoch)
        drawn |= {index for index, _ in sampler}
    # Every image of an eligible class turns up, not just some of each, and none of the others.
    assert drawn == set(np.flatnonzero(np.isin(LABELS, ELIGIBLE)).tolist())
    assert ClassBalancedSampler(LABELS, P, 5, seed=0).left_out_classes == 5


def test_order_depends_only_on_seed_and_epoch():
    sampler = ClassBalancedSampler(LABELS, P, K, seed=4)
    sampler.set_epoch(2)
    epoch2 = list(sampler)
    assert list(sampler) == epoch2
    again = ClassBalancedSampler(list(LABELS), P, K, seed=4)
    again.set_epoch(2)
    assert list(again) == epoch2
    sampler.set_epoch(3)
    assert [index for index, _ in sampler] != [index for index, _ in epoch2]
    other_seed = ClassBalancedSampler(LABELS, P, K, seed=5)
    other_seed.set_epoch(2)
    assert [index for index, _ in other_seed] != [index for index, _ in epoch2]


def test_sample_seeds_follow_the_position_in_the_epoch():
    """An image drawn twice in an epoch gets two augmentations."""
    sampler = ClassBalancedSampler(LABELS, P, K, seed=1)
    items = list(sampler)
    indices = [index for index, _ in items]
    assert len(set(indices)) < len(indices)
    first_seed = items[0][1]
    assert [seed for _, seed in items] == [(first_seed + position) % 2**63 for position in range(len(items))]
    sampler.set_epoch(1)
    assert not {seed for _, seed in sampler} & {seed for _, seed in items}


def test_set_start_yields_the_tail_of_the_epoch_until_set_epoch():
    sampler = ClassBalancedSampler(LABELS, P, K, seed=3)
    sampler.set_epoch(1)
    full = list(sampler)
    sampler.set_start(2 * P * K)
    assert list(sampler) == full[2 * P * K:]
    assert list(sampler) == full[2 * P * K:]
    sampler.set_epoch(1)
    assert list(sampler) == full
    sampler.set_start(len(sampler))
    assert list(sampler) == []
    for position in (-1, len(sampler) + 1):
        with pytest.raises(ValueError, match=f"outside 0..{len(sampler)}"):
            sampler.set_start(position)


def test_ranks_split_each_global_batch_into_p_by_k_batches_of_disjoint_classes():
    """Rank r of 2 takes classes r, r + 2, ... of the batch a single process draws with 2P classes."""
    single = ClassBalancedSampler(LABELS, 2 * 2, K, seed=6)
    ranks = [ClassBalancedSampler(LABELS, 2, K, seed=6, rank=rank, world_size=2) for rank in range(2)]
    for sampler in (single, *ranks):
        sampler.set_epoch(1)
    shards = [batches(rank) for rank in ranks]
    for shard in shards:
        assert_p_by_k(shard[..., 0], LABELS)
    assert_p_by_k(np.concatenate([shard[..., 0] for shard in shards], axis=1), LABELS)
    global_batches = batches(single)
    assert len(global_batches) == len(shards[0]) == len(shards[1]) == 43 // (4 * K)
    for rank, shard in enumerate(shards):
        np.testing.assert_array_equal(shard, global_batches[:, rank::2])
    with pytest.raises(ValueError):
        ClassBalancedSampler(LABELS, P, K, seed=0, rank=2, world_size=2)


def test_too_few_eligible_classes_raise_with_the_numbers():
    with pytest.raises(ValueError, match=r"only 7 classes have at least 2 images.* 4 classes on 2 processes need 8"):
        ClassBalancedSampler(LABELS, 4, K, seed=0, rank=0, world_size=2)
    with pytest.raises(ValueError, match=r"only 4 classes have at least 5 images.*need 5.*\(5 classes have fewer"):
        ClassBalancedSampler(LABELS, 5, 5, seed=0)
    ClassBalancedSampler(LABELS, 7, K, seed=0)  # exactly enough


class IndexAndLabel(Dataset):
    """Item (index, sample_seed) -> (index, label), as an ImageDataset is asked for its items."""

    def __len__(self) -> int:
        return len(LABELS)

    def __getitem__(self, item: tuple[int, int]) -> tuple[int, int]:
        index, _ = item
        return index, int(LABELS[index])


def test_data_loader_batches_are_p_by_k():
    sampler = ClassBalancedSampler(LABELS, P, K, seed=2)
    loader = DataLoader(IndexAndLabel(), batch_size=P * K, sampler=sampler)
    loaded = list(loader)
    assert len(loaded) == sampler.num_batches
    indices = torch.stack([index for index, _ in loaded]).numpy().reshape(-1, P, K)
    assert_p_by_k(indices, LABELS)
    labels = torch.stack([label for _, label in loaded]).numpy()
    np.testing.assert_array_equal(labels, LABELS[indices].reshape(len(loaded), P * K))


def test_cached_loader_batches_are_p_by_k():
    sampler = ClassBalancedSampler(LABELS, P, K, seed=2)
    images = torch.arange(len(LABELS))
    loaded = list(CachedLoader(images, torch.as_tensor(LABELS), sampler, P * K, drop_last=True))
    assert len(loaded) == sampler.num_batches
    assert_p_by_k(torch.stack([batch for batch, _ in loaded]).numpy().reshape(-1, P, K), LABELS)
    np.testing.assert_array_equal(torch.cat([batch for batch, _ in loaded]).numpy(), batches(sampler)[..., 0].ravel())
