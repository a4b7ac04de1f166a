"""The ids of val and test images (Loaders.val_ids, Loaders.test_ids): the same image gets the
same id in every run, whichever split it lands in, so that the rows of probability files from
several runs (K folds, an ensemble) can be matched by id."""
from __future__ import annotations

import numpy as np
import pytest

from data import build_loader
from data.build import split_train_val
from tests.conftest import write_image_folder
from tests.data.test_csv_data import TEST_ORDER, csv_cfg, write_kaggle_layout
from tests.data.test_data import make_cfg, mi_cfg
from tests.data.test_image_folder import folder_cfg

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def image_of(loaders, split: str, position: int) -> np.ndarray:
    dataset = loaders.val_dataset if split == "val" else loaders.test_dataset
    return dataset.store.read(dataset.indices[[position]])[0]


def test_array_images_are_named_by_their_stored_split_and_index():
    loaders = build_loader(make_cfg("DATA.VAL_SPLIT", "0.2", "SEED", "3"))
    _, val_indices = split_train_val(1438, 0.2, 3)
    assert loaders.val_ids == [f"train-{i}" for i in val_indices]
    assert loaders.test_ids == [f"test-{i}" for i in range(359)]
    assert not loaders.test_ids_from_data
    # Without DATA.VAL_SPLIT the digits validate on their test split: the same ids as test.
    assert build_loader(make_cfg()).val_ids == loaders.test_ids


def test_the_same_id_is_the_same_image_whichever_seed_draws_the_val_split():
    first = build_loader(make_cfg("DATA.VAL_SPLIT", "0.2", "SEED", "0"))
    second = build_loader(make_cfg("DATA.VAL_SPLIT", "0.2", "SEED", "1"))
    shared = sorted(set(first.val_ids) & set(second.val_ids))
    assert len(shared) > 10
    for image_id in shared[:10]:
        assert np.array_equal(image_of(first, "val", first.val_ids.index(image_id)),
                              image_of(second, "val", second.val_ids.index(image_id)))


def test_hdf5_images_are_named_by_split_and_index(medium_imagenet):
    loaders = build_loader(mi_cfg(medium_imagenet.path))
    assert loaders.val_ids == [f"val-{i}" for i in range(12)]
    assert loaders.test_ids == [f"test-{i}" for i in range(9)]


def test_image_files_are_named_by_their_path_under_data_path(tmp_path):
    root = write_image_folder(tmp_path / "data", per_class=4, val_per_class=2)
    loaders = build_loader(folder_cfg(root))
    assert loaders.val_ids == [f"val/{name}/{name}_{i:03d}{'.png' if i % 2 else '.jpg'}"
                               for name in ("cat", "dog", "zebra") for i in range(2)]
    held_out = build_loader(folder_cfg(write_image_folder(tmp_path / "flat", per_class=4), "DATA.VAL_SPLIT", "0.25"))
    assert held_out.val_ids and all(image_id.startswith("train/") for image_id in held_out.val_ids)
    assert len(set(held_out.val_ids)) == len(held_out.val_ids)  # cat/x.jpg and dog/x.jpg stay apart
    # The test ids are the file names without their endings, as SUBMISSION.ID file writes them.
    assert loaders.test_ids_from_data and loaders.test_ids == sorted(loaders.test_ids)
    assert all("/" not in image_id and "." not in image_id for image_id in loaders.test_ids)


def test_csv_images_are_named_by_their_path_and_the_test_ids_are_the_csvs(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    loaders = build_loader(csv_cfg(root, "DATA.TEST_CSV", "sample_submission.csv"))
    assert loaders.val_ids and all(image_id.startswith("train/img") and image_id.endswith(".jpg")
                                   for image_id in loaders.val_ids)
    assert loaders.test_ids == TEST_ORDER and loaders.test_ids_from_data
