"""DATA.FOLDS and DATA.FOLD: the stratified K-fold split of train. Each class's count in a fold is
within one image of its share, the folds are fixed by SEED, they are disjoint and cover train,
DATA.TRAIN_SUBSET reduces only the training folds, and DATA.HOLDOUT_CLASSES' images are in no fold."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import get_config
from data.build import split_datasets
from data.dataset import ArrayStore
from data.folds import fold_log_line, fold_split
from utils.errors import UserError

CLASS_NAMES = [f"class{label}" for label in range(6)]


def folds_of(labels: np.ndarray, num_folds: int, seed: int) -> list[np.ndarray]:
    """The val positions of every fold."""
    return [fold_split(labels, num_folds, fold, seed, CLASS_NAMES)[1] for fold in range(num_folds)]


# Every class has at least as many images as there are folds.
labelled = st.integers(2, 6).flatmap(lambda num_folds: st.tuples(
    st.just(num_folds),
    st.lists(st.integers(num_folds, 40), min_size=2, max_size=6),
    st.integers(0, 2**31 - 1)))


@settings(max_examples=40, deadline=None)
@given(case=labelled)
def test_each_class_count_in_every_fold_is_within_one_image_of_its_share(case):
    num_folds, class_sizes, seed = case
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(class_sizes)), class_sizes))
    for val in folds_of(labels, num_folds, seed):
        counts = np.bincount(labels[val], minlength=len(class_sizes))
        share = np.asarray(class_sizes) / num_folds
        assert np.all(np.abs(counts - share) < 1), (counts, share)


@settings(max_examples=40, deadline=None)
@given(case=labelled)
def test_the_folds_are_disjoint_cover_train_and_train_on_the_rest(case):
    num_folds, class_sizes, seed = case
    labels = np.repeat(np.arange(len(class_sizes)), class_sizes)
    folds = folds_of(labels, num_folds, seed)
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(len(labels)))  # each image in one fold
    for fold in range(num_folds):
        train, val = fold_split(labels, num_folds, fold, seed, CLASS_NAMES)
        assert np.array_equal(val, folds[fold]) and np.array_equal(val, np.sort(val))
        others = np.concatenate([folds[other] for other in range(num_folds) if other != fold])
        assert np.array_equal(train, np.sort(others))


def test_the_folds_are_fixed_by_the_seed_and_another_seed_draws_others():
    labels = np.repeat(np.arange(4), 25)
    first = folds_of(labels, 5, seed=3)
    again = folds_of(labels.copy(), 5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    other = folds_of(labels, 5, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_a_class_with_fewer_images_than_folds_is_refused_naming_the_class():
    labels = np.array([0] * 10 + [1] * 2 + [2] * 10)
    with pytest.raises(UserError) as error:
        fold_split(labels, 3, 0, 0, CLASS_NAMES)
    assert "class1" in str(error.value) and "DATA.FOLDS 3" in str(error.value) and "2" in str(error.value)


def test_the_log_line_names_the_fold_the_folds_and_the_images():
    line = fold_log_line(2, 5, 1234)
    assert line.startswith("val: ") and "fold 2 of 5" in line and "1,234 images" in line


def fold_datasets(*opts: str, labels: np.ndarray, holdout: np.ndarray | None = None):
    """split_datasets on a small array data set whose train split holds `labels`."""
    cfg = get_config(None, ["DATA.DATASET", "digits", "SEED", "7", *opts])
    images = np.zeros((len(labels), 3, 8, 8), dtype=np.uint8)
    splits = {"train": (ArrayStore(images), labels), "test": (ArrayStore(images[:4]), labels[:4])}
    return split_datasets(cfg, splits, CLASS_NAMES, holdout, None, {"train": None, "test": None})


LABELS = np.repeat(np.arange(6), 12)


@pytest.mark.parametrize("fold", [0, 3])
def test_fold_i_validates_and_train_subset_reduces_only_the_training_folds(fold):
    datasets = fold_datasets("DATA.FOLDS", "4", "DATA.FOLD", str(fold), "DATA.TRAIN_SUBSET", "20", labels=LABELS)
    train, val = fold_split(LABELS, 4, fold, 7, CLASS_NAMES)
    assert np.array_equal(datasets["val"].indices, val)  # the whole fold, whatever TRAIN_SUBSET says
    assert datasets["val"].store is datasets["train"].store
    assert len(datasets["train"].indices) == 20 and np.isin(datasets["train"].indices, train).all()


def test_holdout_classes_are_in_no_fold_and_the_kept_classes_are_stratified():
    held_out = np.array([False, False, True, False, False, False])
    folds = [fold_datasets("DATA.FOLDS", "3", "DATA.FOLD", str(fold), labels=LABELS, holdout=held_out)
             for fold in range(3)]
    kept = np.flatnonzero(LABELS != 2)
    vals = [datasets["val"].indices for datasets in folds]
    assert np.array_equal(np.sort(np.concatenate(vals)), kept)
    for val in vals:  # 12 images of each of the 5 kept classes: 4 per fold
        assert np.array_equal(np.bincount(LABELS[val], minlength=6)[held_out == False], [4] * 5)  # noqa: E712
        assert not np.isin(val, folds[0]["holdout"].indices).any()
