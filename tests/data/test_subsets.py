"""DATA.VAL_SUBSET and DATA.TEST_SUBSET (and the TRAIN_SUBSET they follow): how many images each
keeps, that the same SEED keeps the same ones, that the splits' subsets do not move one another,
and the words that say a score came from a subset."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import get_config
from data import build_loader
from data.subset import choose_subset, subset_log_line, subset_note
from engine.summary import summarize
from utils.errors import UserError

# The digits' test split, which validates when DATA.VAL_SPLIT is 0.
DIGITS_TEST = 359


def digits_cfg(*opts: str):
    return get_config(None, ["DATA.DATASET", "digits", "DATA.IMG_SIZE", "32", "DATA.BATCH_SIZE", "32",
                             "DATA.NUM_WORKERS", "0", *opts])


def test_subset_note_is_empty_without_a_subset_and_names_each_split_with_its_counts():
    assert subset_note({}) == ""
    note = subset_note({"val": (200, 1000), "test": (50, 10000)})
    assert "val" in note and "200/1,000" in note
    assert "test" in note and "50/10,000" in note
    line = subset_log_line("val", 200, 1000)
    assert line.startswith("val: ") and "200 of 1,000" in line and "DATA.VAL_SUBSET" in line


@pytest.mark.parametrize("subset, expected", [(0.25, 25), (0.001, 1), (40, 40), (100, 100), (0, 100)])
def test_choose_subset_keeps_a_fraction_or_a_count_of_the_indices_sorted(subset, expected):
    indices = np.arange(1000, 1100)
    chosen = choose_subset(indices, subset, seed=0, split="val")
    assert len(chosen) == expected
    assert np.array_equal(chosen, np.sort(chosen)) and set(chosen) <= set(indices)


@pytest.mark.parametrize("split, key", [("train", "DATA.TRAIN_SUBSET"), ("val", "DATA.VAL_SUBSET"),
                                        ("test", "DATA.TEST_SUBSET")])
def test_a_count_larger_than_the_split_names_that_splits_key(split, key):
    with pytest.raises(UserError) as error:
        choose_subset(np.arange(10), 11, seed=0, split=split)
    assert key in str(error.value) and "11" in str(error.value) and f"{split} split has 10" in str(error.value)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 300), fraction=st.floats(0.001, 0.999), seed=st.integers(0, 2**31))
def test_choose_subset_is_a_function_of_the_seed_and_the_indices_alone(size, fraction, seed):
    indices = np.arange(size) * 3 + 7
    chosen = choose_subset(indices, fraction, seed, "test")
    assert np.array_equal(chosen, choose_subset(indices.copy(), fraction, seed, "test"))
    assert len(chosen) == max(1, int(round(size * fraction)))
    assert len(np.unique(chosen)) == len(chosen) and np.isin(chosen, indices).all()


@pytest.mark.parametrize("key", ["DATA.VAL_SUBSET", "DATA.TEST_SUBSET"])
@pytest.mark.parametrize("value", ["2.5", "-1"])
def test_a_subset_that_is_no_fraction_or_count_is_one_line_naming_its_key(key, value):
    with pytest.raises(UserError) as error:
        get_config(None, [key, value])
    assert key in str(error.value) and value in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("subset, expected", [("0.25", 90), ("100", 100)])
def test_val_subset_scores_a_fraction_or_a_count_of_the_split_that_validates(subset, expected):
    loaders = build_loader(digits_cfg("DATA.VAL_SUBSET", subset))
    assert len(loaders.val_dataset) == expected and len(loaders.test_dataset) == DIGITS_TEST
    assert loaders.subsets == {"val": (expected, DIGITS_TEST)}
    assert len(loaders.val_loader.sampler) == expected
    assert [note for note in loaders.notes if note.startswith("val:")] == [
        subset_log_line("val", expected, DIGITS_TEST)]


def test_val_subset_is_the_same_for_a_seed_another_for_another_seed_and_free_of_the_train_subset():
    chosen = build_loader(digits_cfg("DATA.VAL_SUBSET", "50")).val_dataset.indices
    again = build_loader(digits_cfg("DATA.VAL_SUBSET", "50", "DATA.TRAIN_SUBSET", "0.3")).val_dataset.indices
    other_seed = build_loader(digits_cfg("DATA.VAL_SUBSET", "50", "SEED", "1")).val_dataset.indices
    assert np.array_equal(chosen, again)
    assert not np.array_equal(chosen, other_seed)


def test_train_subset_is_free_of_the_val_subset():
    plain = build_loader(digits_cfg("DATA.TRAIN_SUBSET", "0.3")).train_dataset.indices
    with_val_subset = build_loader(digits_cfg("DATA.TRAIN_SUBSET", "0.3", "DATA.VAL_SUBSET", "0.5"))
    assert np.array_equal(plain, with_val_subset.train_dataset.indices)


def test_val_subset_of_a_held_out_val_split_keeps_its_images_out_of_train():
    loaders = build_loader(digits_cfg("DATA.VAL_SPLIT", "0.2", "DATA.VAL_SUBSET", "0.5"))
    whole_val = build_loader(digits_cfg("DATA.VAL_SPLIT", "0.2")).val_dataset.indices
    assert loaders.subsets == {"val": (144, 288)} and len(loaders.train_dataset) == 1150
    assert set(loaders.val_dataset.indices) <= set(whole_val)
    assert not set(loaders.val_dataset.indices) & set(loaders.train_dataset.indices)


def test_test_subset_predicts_part_of_the_test_split_and_leaves_val_whole():
    loaders = build_loader(digits_cfg("DATA.TEST_SUBSET", "0.1"))
    assert len(loaders.test_dataset) == 36 and len(loaders.test_loader.sampler) == 36
    assert len(loaders.val_dataset) == DIGITS_TEST and loaders.subsets == {"test": (36, DIGITS_TEST)}
    assert any(note.startswith("test:") and "DATA.TEST_SUBSET" in note for note in loaders.notes)


def test_no_subset_leaves_no_counts_and_no_note():
    loaders = build_loader(digits_cfg())
    assert loaders.subsets == {} and not any("subset" in note for note in loaders.notes)


def test_verification_pairs_drawn_from_val_are_the_same_with_a_val_subset():
    opts = ("DATA.VAL_SPLIT", "0.2", "TEST.VERIFY_NUM_PAIRS", "60")
    whole = build_loader(digits_cfg(*opts))
    subset = build_loader(digits_cfg(*opts, "DATA.VAL_SUBSET", "20"))
    assert len(subset.val_dataset) == 20
    for part in ("first", "second", "same"):
        assert np.array_equal(getattr(subset.verify_pairs, part), getattr(whole.verify_pairs, part))
    # The pairs index the whole val split, as they do without the subset.
    pair_images = subset.make_loader(subset.verify_pairs.split, range(0)).dataset
    assert np.array_equal(pair_images.indices, whole.val_dataset.indices)


def test_summary_names_the_subsets_only_when_there_are_some():
    fields = dict(status="finished", epochs_planned=1, parameters=10, macs=20, changed_config={})
    assert "subsets" not in summarize([], **fields)
    assert "subsets" not in summarize([], **fields, subsets={})
    assert summarize([], **fields, subsets={"val": (200, 1000)})["subsets"] == {"val": [200, 1000]}
