"""Tests for the data package: loaders built from the config over real on-disk formats.

The CIFAR and MediumImageNet files come from the fixtures in conftest.py; digits ships with
scikit-learn. Everything runs on the CPU with tiny data.
"""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from config import get_config
from data import build_loader, get_dataset_spec
from data.build import build_eval_samplers, split_train_val
from data.dataset import NO_LABEL, ArrayStore, ImageDataset
from data.medium_imagenet import HDF5Images, _contiguous_runs, open_medium_imagenet
from data.normalize import Normalize
from data.sampler import EpochShuffleSampler, ShardSampler, sample_seed, unshard
from data.transforms import build_eval_transform, build_train_transform, parse_rand_augment
from utils.errors import UserError

NO_AUG = ["AUG.CROP_PADDING", "0", "AUG.HFLIP_PROB", "0", "AUG.COLOR_JITTER", "0"]


def make_cfg(*opts: str):
    """A frozen config for CPU tests: no workers, no pinned memory, then `opts` on top."""
    base = ["DEVICE", "cpu", "DATA.NUM_WORKERS", "0", "DATA.PIN_MEMORY", "False",
            "DATA.PERSISTENT_WORKERS", "False"]
    return get_config(opts=base + [str(o) for o in opts])


def collect(loader) -> tuple[torch.Tensor, torch.Tensor]:
    """All batches of one pass over `loader`, concatenated: (images, labels)."""
    images, labels = [], []
    for batch_images, batch_labels in loader:
        images.append(batch_images)
        labels.append(batch_labels)
    return torch.cat(images), torch.cat(labels)


def sampler_indices(sampler) -> list[int]:
    """The dataset indices of one pass over an EpochShuffleSampler, without their sample seeds."""
    return [index for index, _ in sampler]


def dataset_images(dataset) -> tuple[np.ndarray, np.ndarray]:
    """Every item of `dataset` in index order, via one __getitems__ call."""
    samples = dataset.__getitems__(list(range(len(dataset))))
    return (np.stack([image.numpy() for image, _ in samples]),
            np.asarray([label for _, label in samples], np.int64))


# ---------------------------------------------------------------------------------------------
# digits (bundled with scikit-learn)
# ---------------------------------------------------------------------------------------------

def digits_cfg(*opts: str):
    return make_cfg("DATA.DATASET", "digits", "DATA.BATCH_SIZE", "32", *opts)


def test_digits_split_sizes_and_val_is_test_without_val_split():
    loaders = build_loader(digits_cfg())
    assert loaders.num_classes == 10
    assert len(loaders.train_dataset) == 1438
    assert len(loaders.test_dataset) == 359
    assert len(loaders.val_dataset) == 359
    # Train and test are disjoint parts of the 1,797 digits.
    train_images, _ = dataset_images(loaders.train_dataset)
    test_images, test_labels = dataset_images(loaders.test_dataset)
    assert len(train_images) + len(test_images) == 1797
    # With VAL_SPLIT 0 the val loader reads the test split, in order.
    val_images, val_labels = collect(loaders.val_loader)
    np.testing.assert_array_equal(val_images.numpy(), test_images)
    np.testing.assert_array_equal(val_labels.numpy(), test_labels)
    assert sorted(set(test_labels.tolist())) == list(range(10))


def test_digits_batches_are_uint8_chw_with_int64_labels():
    loaders = build_loader(digits_cfg())
    images, labels = next(iter(loaders.train_loader))
    assert images.dtype == torch.uint8
    assert images.shape == (32, 3, 32, 32)
    assert labels.dtype == torch.int64
    assert labels.shape == (32,)
    # drop_last: a full epoch is 1438 // 32 batches of 32.
    assert len(loaders.train_loader) == 1438 // 32
    all_images, all_labels = collect(loaders.test_loader)
    assert all_images.shape == (359, 3, 32, 32)
    assert all_labels.dtype == torch.int64
    assert int(all_labels.min()) >= 0 and int(all_labels.max()) <= 9
    # Grey digits replicated to three channels, with real ink in them.
    assert torch.equal(all_images[:, 0], all_images[:, 1]) and torch.equal(all_images[:, 0], all_images[:, 2])
    assert int(all_images.max()) > 200 and int(all_images.min()) == 0


def test_digits_pixels_are_the_scikit_learn_digits():
    """At IMG_SIZE 8 (no upscaling) train + test hold each scikit-learn digit once, 0-16 scaled to 0-255."""
    from collections import Counter

    from sklearn.datasets import load_digits

    source = load_digits()
    grey = np.round(source.images * (255.0 / 16.0)).astype(np.uint8)
    expected = Counter((image.tobytes(), int(label)) for image, label in zip(grey, source.target))

    loaders = build_loader(digits_cfg("DATA.IMG_SIZE", "8", *NO_AUG))
    seen = Counter()
    for dataset in (loaders.train_dataset, loaders.test_dataset):
        images, labels = dataset_images(dataset)
        assert images.shape[1:] == (3, 8, 8)
        assert (images == images[:, :1]).all()  # the same grey in all three channels
        seen.update((image[0].tobytes(), int(label)) for image, label in zip(images, labels))
    assert seen == expected


def test_digits_img_size_48():
    loaders = build_loader(digits_cfg("DATA.IMG_SIZE", "48"))
    for loader in (loaders.train_loader, loaders.val_loader, loaders.test_loader):
        images, _ = next(iter(loader))
        assert images.shape[1:] == (3, 48, 48)
        assert images.dtype == torch.uint8


def test_digits_val_split_is_held_out_of_train_and_follows_seed():
    cfg = digits_cfg("DATA.VAL_SPLIT", "0.2", "SEED", "3")
    loaders = build_loader(cfg)
    train_idx = loaders.train_dataset.indices
    val_idx = loaders.val_dataset.indices
    assert len(val_idx) == round(1438 * 0.2) == 288
    assert len(train_idx) == 1438 - 288
    assert len(loaders.test_dataset) == 359
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(1438))
    # Val is drawn from the train split's images, not from test.
    assert loaders.val_dataset.store is loaders.train_dataset.store

    again = build_loader(digits_cfg("DATA.VAL_SPLIT", "0.2", "SEED", "3"))
    np.testing.assert_array_equal(again.val_dataset.indices, val_idx)
    np.testing.assert_array_equal(again.train_dataset.indices, train_idx)

    other = build_loader(digits_cfg("DATA.VAL_SPLIT", "0.2", "SEED", "4"))
    assert len(other.val_dataset) == 288
    assert not np.array_equal(other.val_dataset.indices, val_idx)
    # The test split does not depend on SEED.
    np.testing.assert_array_equal(dataset_images(other.test_dataset)[0], dataset_images(loaders.test_dataset)[0])


def test_split_train_val_fractions():
    train, val = split_train_val(10, 0.2, seed=0)
    assert len(val) == 2 and len(train) == 8
    assert list(train) == sorted(train) and list(val) == sorted(val)
    # Never an empty val split.
    train, val = split_train_val(10, 0.01, seed=0)
    assert len(val) == 1 and len(train) == 9


def test_unknown_dataset_is_a_user_error():
    with pytest.raises(UserError, match="imagenet21k.*digits.*cifar10.*cifar100.*medium_imagenet"):
        build_loader(make_cfg("DATA.DATASET", "imagenet21k"))
    with pytest.raises(UserError):
        get_dataset_spec("")


# ---------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (torchvision's reader over pickled batches)
# ---------------------------------------------------------------------------------------------

def cifar_cfg(name: str, data_path, *opts: str):
    return make_cfg("DATA.DATASET", name, "DATA.DATA_PATH", str(data_path), "DATA.BATCH_SIZE", "10", *NO_AUG, *opts)


def expected_marker_image() -> np.ndarray:
    """The first train image written by the fixtures, decoded by hand: (3, 32, 32)."""
    red = (np.arange(1024) % 251).astype(np.uint8).reshape(32, 32)
    return np.stack([red, np.full((32, 32), 7, np.uint8), np.full((32, 32), 200, np.uint8)])


def test_cifar_fixtures_have_torchvisions_file_layout(cifar10_root, cifar100_root):
    """The fixtures write exactly the files torchvision's CIFAR classes look for."""
    from torchvision.datasets import CIFAR10, CIFAR100

    for root, cls in ((cifar10_root, CIFAR10), (cifar100_root, CIFAR100)):
        names = {name for name, _ in cls.train_list + cls.test_list} | {cls.meta["filename"]}
        assert {p.name for p in (root / cls.base_folder).iterdir()} == names
        with open(root / cls.base_folder / cls.meta["filename"], "rb") as f:
            meta = pickle.load(f, encoding="latin1")
        assert len(meta[cls.meta["key"]]) == (10 if cls is CIFAR10 else 100)


def test_cifar10_counts_pixels_and_labels(cifar10):
    loaders = build_loader(cifar_cfg("cifar10", cifar10.root))
    assert loaders.num_classes == 10
    assert len(loaders.train_dataset) == 50
    assert len(loaders.test_dataset) == 10
    assert len(loaders.val_dataset) == 10  # val is test when VAL_SPLIT is 0

    train_images, train_labels = dataset_images(loaders.train_dataset)
    assert train_images.dtype == np.uint8 and train_images.shape == (50, 3, 32, 32)
    np.testing.assert_array_equal(train_images, cifar10.train_images)
    np.testing.assert_array_equal(train_labels, cifar10.train_labels)

    # The channel-first rows decode to R, G, B planes: check one image by hand.
    np.testing.assert_array_equal(train_images[0], expected_marker_image())
    assert train_labels[0] == 9

    test_images, test_labels = collect(loaders.test_loader)
    assert test_images.dtype == torch.uint8
    np.testing.assert_array_equal(test_images.numpy(), cifar10.test_images)
    assert test_labels.tolist() == list(range(10))


def test_cifar10_train_loader_follows_sampler_order(cifar10):
    loaders = build_loader(cifar_cfg("cifar10", cifar10.root))
    images, labels = collect(loaders.train_loader)
    order = sampler_indices(loaders.train_loader.sampler)
    assert sorted(order) == list(range(50))
    np.testing.assert_array_equal(images.numpy(), cifar10.train_images[order])
    np.testing.assert_array_equal(labels.numpy(), cifar10.train_labels[order])


@pytest.mark.parametrize("suffix", ["", "/"])
def test_cifar10_data_path_can_name_the_extracted_folder(cifar10, suffix):
    loaders = build_loader(cifar_cfg("cifar10", str(cifar10.folder) + suffix))
    assert len(loaders.train_dataset) == 50
    np.testing.assert_array_equal(dataset_images(loaders.test_dataset)[0], cifar10.test_images)


def test_cifar100_counts_pixels_and_fine_labels(cifar100):
    loaders = build_loader(cifar_cfg("cifar100", cifar100.root))
    assert loaders.num_classes == 100
    assert len(loaders.train_dataset) == 20
    assert len(loaders.test_dataset) == 10
    train_images, train_labels = dataset_images(loaders.train_dataset)
    np.testing.assert_array_equal(train_images, cifar100.train_images)
    np.testing.assert_array_equal(train_images[0], expected_marker_image())
    # Fine labels (0..99), not the coarse ones.
    np.testing.assert_array_equal(train_labels, cifar100.train_labels)
    assert not np.array_equal(train_labels, cifar100.train_coarse_labels)
    assert train_labels[0] == 99 and train_labels[1] == 0
    test_images, test_labels = dataset_images(loaders.test_dataset)
    np.testing.assert_array_equal(test_images, cifar100.test_images)
    np.testing.assert_array_equal(test_labels, cifar100.test_labels)

    via_folder = build_loader(cifar_cfg("cifar100", cifar100.folder))
    np.testing.assert_array_equal(dataset_images(via_folder.test_dataset)[0], cifar100.test_images)


def test_cifar_label_names_pickled_as_bytes_are_read_as_text(tmp_path):
    import json

    from tests.conftest import CIFAR10_LABEL_NAMES, write_cifar10

    written = write_cifar10(tmp_path / "cifar", label_names_as_bytes=True)
    class_names = build_loader(cifar_cfg("cifar10", written.root)).class_names
    assert class_names == CIFAR10_LABEL_NAMES
    assert json.loads(json.dumps(class_names)) == CIFAR10_LABEL_NAMES  # what classes.json holds


def test_cifar10_missing_without_download_names_folder_and_flag(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as info:
        build_loader(cifar_cfg("cifar10", empty))
    message = str(info.value)
    assert str(empty / "cifar-10-batches-py") in message
    assert "DATA.DOWNLOAD" in message


def test_cifar100_missing_names_its_folder(tmp_path):
    with pytest.raises(UserError) as info:
        build_loader(cifar_cfg("cifar100", tmp_path))
    assert str(tmp_path / "cifar-100-python") in str(info.value)
    assert "DATA.DOWNLOAD" in str(info.value)


def test_cifar10_missing_one_batch_is_a_user_error(cifar10):
    (cifar10.folder / "data_batch_4").unlink()
    with pytest.raises(UserError, match="cifar-10-batches-py"):
        build_loader(cifar_cfg("cifar10", cifar10.root))


@pytest.mark.parametrize("name", ["data_batch_3", "test_batch", "batches.meta"])
@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_cifar10_truncated_file_is_a_user_error(cifar10, name, keep):
    path = cifar10.folder / name
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UserError) as info:
        build_loader(cifar_cfg("cifar10", cifar10.root))
    assert "cifar-10-batches-py" in str(info.value)
    assert "corrupt" in str(info.value)


def test_cifar10_batch_without_data_key_is_a_user_error(cifar10):
    path = cifar10.folder / "data_batch_2"
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    del entry["data"]
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)
    with pytest.raises(UserError, match="corrupt"):
        build_loader(cifar_cfg("cifar10", cifar10.root))


# ---------------------------------------------------------------------------------------------
# MediumImageNet (HDF5)
# ---------------------------------------------------------------------------------------------

def mi_cfg(data_path, *opts: str):
    return make_cfg("DATA.DATASET", "medium_imagenet", "DATA.DATA_PATH", str(data_path),
                    "DATA.IMG_SIZE", "16", "DATA.BATCH_SIZE", "8", *NO_AUG, *opts)


def test_medium_imagenet_fixture_layout(medium_imagenet_file):
    import h5py

    with h5py.File(medium_imagenet_file, "r") as f:
        assert sorted(f.keys()) == ["images-test", "images-train", "images-val", "labels-train", "labels-val"]
        assert f["images-train"].shape == (40, 3, 16, 16) and f["images-train"].dtype == np.uint8
        assert f["images-val"].shape == (12, 3, 16, 16) and f["images-test"].shape == (9, 3, 16, 16)
        assert f["labels-train"].shape == (40,) and f["labels-val"].shape == (12,)


def test_medium_imagenet_from_file(medium_imagenet):
    loaders = build_loader(mi_cfg(medium_imagenet.path))
    assert loaders.num_classes == 200
    assert (len(loaders.train_dataset), len(loaders.val_dataset), len(loaders.test_dataset)) == (40, 12, 9)

    val_images, val_labels = collect(loaders.val_loader)
    assert val_images.dtype == torch.uint8 and val_images.shape == (12, 3, 16, 16)
    assert val_labels.dtype == torch.int64
    np.testing.assert_array_equal(val_images.numpy(), medium_imagenet.images["val"])
    np.testing.assert_array_equal(val_labels.numpy(), medium_imagenet.labels["val"])

    train_images, train_labels = dataset_images(loaders.train_dataset)
    np.testing.assert_array_equal(train_images, medium_imagenet.images["train"])
    np.testing.assert_array_equal(train_labels, medium_imagenet.labels["train"])
    assert train_labels.min() == 0 and train_labels.max() == 199

    images, labels = next(iter(loaders.train_loader))
    assert images.shape == (8, 3, 16, 16) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64


def test_medium_imagenet_test_split_has_no_labels(medium_imagenet):
    loaders = build_loader(mi_cfg(medium_imagenet.path))
    test_images, test_labels = collect(loaders.test_loader)
    np.testing.assert_array_equal(test_images.numpy(), medium_imagenet.images["test"])
    assert NO_LABEL == -1
    assert test_labels.tolist() == [NO_LABEL] * 9


@pytest.mark.parametrize("file_name", ["medium-imagenet-nmep-96.hdf5", "medium-imagenet-96.hdf5"])
def test_medium_imagenet_from_folder(medium_imagenet_factory, tmp_path, file_name):
    written = medium_imagenet_factory(f"folder/{file_name}")
    loaders = build_loader(mi_cfg(tmp_path / "folder", "DATA.STORED_SIZE", "96"))
    assert len(loaders.train_dataset) == 40
    np.testing.assert_array_equal(dataset_images(loaders.val_dataset)[0], written.images["val"])


def test_medium_imagenet_folder_prefers_nmep_name(medium_imagenet_factory, tmp_path):
    preferred = medium_imagenet_factory("folder/medium-imagenet-nmep-96.hdf5", seed=1)
    medium_imagenet_factory("folder/medium-imagenet-96.hdf5", seed=2)
    loaders = build_loader(mi_cfg(tmp_path / "folder", "DATA.STORED_SIZE", "96"))
    np.testing.assert_array_equal(dataset_images(loaders.val_dataset)[0], preferred.images["val"])


def test_medium_imagenet_folder_without_file_of_stored_size(medium_imagenet_factory, tmp_path):
    medium_imagenet_factory("folder/medium-imagenet-nmep-96.hdf5")
    with pytest.raises(UserError) as info:
        build_loader(mi_cfg(tmp_path / "folder", "DATA.STORED_SIZE", "224"))
    message = str(info.value)
    assert "medium-imagenet-nmep-224.hdf5" in message and "medium-imagenet-224.hdf5" in message
    assert "DATA.STORED_SIZE" in message


def test_medium_imagenet_missing_file(tmp_path):
    missing = tmp_path / "nowhere" / "medium.hdf5"
    with pytest.raises(UserError, match="not found") as info:
        build_loader(mi_cfg(missing))
    assert str(missing) in str(info.value)


def test_medium_imagenet_not_an_hdf5_file(tmp_path):
    path = tmp_path / "medium.hdf5"
    path.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(UserError, match="cannot read MediumImageNet file") as info:
        build_loader(mi_cfg(path))
    assert str(path) in str(info.value)


def test_medium_imagenet_channels_last_gives_identical_batches(medium_imagenet_factory):
    first = medium_imagenet_factory("first.hdf5")
    last = medium_imagenet_factory("last.hdf5", channels_last=True)
    import h5py

    with h5py.File(last.path, "r") as f:
        assert f["images-train"].shape == (40, 16, 16, 3)
    with h5py.File(first.path, "r") as f:
        assert f["images-train"].shape == (40, 3, 16, 16)
    for opts in ([], ["DATA.IMG_SIZE", "24"]):
        a = build_loader(mi_cfg(first.path, *opts))
        b = build_loader(mi_cfg(last.path, *opts))
        for loader_a, loader_b in ((a.train_loader, b.train_loader), (a.val_loader, b.val_loader),
                                   (a.test_loader, b.test_loader)):
            images_a, labels_a = collect(loader_a)
            images_b, labels_b = collect(loader_b)
            assert images_b.is_contiguous()
            assert torch.equal(images_a, images_b)
            assert torch.equal(labels_a, labels_b)
    assert dataset_images(b.test_dataset)[0].shape == (9, 3, 24, 24)


def test_medium_imagenet_img_size_resizes(medium_imagenet):
    from torchvision.transforms.v2 import functional as TF

    loaders = build_loader(mi_cfg(medium_imagenet.path, "DATA.IMG_SIZE", "24"))
    for loader in (loaders.train_loader, loaders.val_loader, loaders.test_loader):
        images, _ = next(iter(loader))
        assert images.shape[1:] == (3, 24, 24)
        assert images.dtype == torch.uint8
    val_images, _ = collect(loaders.val_loader)
    expected = TF.resize(torch.from_numpy(medium_imagenet.images["val"]), [24, 24], antialias=True)
    assert torch.equal(val_images, expected)


def test_medium_imagenet_val_split_holds_out_train(medium_imagenet):
    loaders = build_loader(mi_cfg(medium_imagenet.path, "DATA.VAL_SPLIT", "0.25"))
    assert len(loaders.val_dataset) == 10 and len(loaders.train_dataset) == 30
    val_images, val_labels = collect(loaders.val_loader)
    idx = loaders.val_dataset.indices
    np.testing.assert_array_equal(val_images.numpy(), medium_imagenet.images["train"][idx])
    np.testing.assert_array_equal(val_labels.numpy(), medium_imagenet.labels["train"][idx])


@pytest.mark.parametrize("key", ["images-train", "images-val", "images-test", "labels-train", "labels-val"])
def test_medium_imagenet_missing_dataset(medium_imagenet_factory, key):
    written = medium_imagenet_factory(omit=(key,))
    with pytest.raises(UserError) as info:
        build_loader(mi_cfg(written.path))
    assert f"'{key}'" in str(info.value)
    assert str(written.path) in str(info.value)


@pytest.mark.parametrize("key, shape", [
    ("images-train", (40, 16, 16)),
    ("images-val", (12, 3, 16, 24)),
    ("images-test", (9, 4, 16, 16)),
    ("images-train", (40, 16, 16, 1)),
])
def test_medium_imagenet_wrong_image_shape(medium_imagenet_factory, key, shape):
    written = medium_imagenet_factory(replace={key: np.zeros(shape, np.uint8)})
    with pytest.raises(UserError) as info:
        build_loader(mi_cfg(written.path))
    message = str(info.value)
    assert f"'{key}'" in message
    assert str(shape) in message
    assert "(N, 3, S, S)" in message


def test_medium_imagenet_wrong_image_dtype(medium_imagenet_factory):
    written = medium_imagenet_factory(replace={"images-val": np.zeros((12, 3, 16, 16), np.float32)})
    with pytest.raises(UserError, match="'images-val' holds float32, expected uint8"):
        build_loader(mi_cfg(written.path))


@pytest.mark.parametrize("key, count, images", [("labels-train", 39, 40), ("labels-val", 13, 12)])
def test_medium_imagenet_wrong_label_count(medium_imagenet_factory, key, count, images):
    written = medium_imagenet_factory(replace={key: np.zeros(count, np.int64)})
    with pytest.raises(UserError) as info:
        build_loader(mi_cfg(written.path))
    assert f"'{key}' has {count} labels for {images} images" in str(info.value)


@pytest.mark.parametrize("bad_label", [200, -1])
def test_medium_imagenet_label_out_of_range(medium_imagenet_factory, bad_label):
    labels = np.zeros(12, np.int64)
    labels[5] = bad_label
    written = medium_imagenet_factory(replace={"labels-val": labels})
    with pytest.raises(UserError, match="'labels-val' has labels outside 0..199"):
        build_loader(mi_cfg(written.path))


def test_medium_imagenet_labels_as_column_vector(medium_imagenet_factory):
    base = medium_imagenet_factory("base.hdf5")
    column = medium_imagenet_factory("column.hdf5", replace={"labels-val": base.labels["val"].reshape(-1, 1)})
    splits = open_medium_imagenet(str(column.path))
    np.testing.assert_array_equal(splits["val"][1], base.labels["val"])


@pytest.mark.parametrize("stored", [np.array([0.0, 1.0, 1.7]), np.array([0.0, np.nan, 2.0]),
                                    np.array([b"a", b"b", b"c"])])
def test_medium_imagenet_labels_that_are_not_whole_numbers_are_refused_naming_the_dataset(medium_imagenet_factory,
                                                                                          stored):
    labels = np.resize(stored, 12)
    written = medium_imagenet_factory(replace={"labels-val": labels})
    with pytest.raises(UserError) as refusal:
        build_loader(mi_cfg(written.path))
    message = str(refusal.value)
    assert "'labels-val'" in message and str(written.path) in message
    if stored.dtype.kind == "f":
        assert f"e.g. {stored[np.flatnonzero(stored != np.round(stored))[0]]}" in message  # 1.7 or nan


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8])
def test_medium_imagenet_labels_stored_as_whole_floats_or_any_integer_type_are_read_exactly(medium_imagenet_factory,
                                                                                            dtype):
    base = medium_imagenet_factory("base.hdf5")
    labels = base.labels["val"] % 200
    written = medium_imagenet_factory("typed.hdf5", replace={"labels-val": labels.astype(dtype)})
    np.testing.assert_array_equal(open_medium_imagenet(str(written.path))["val"][1], labels)


@pytest.mark.parametrize("opts", [[], ["TEST.CROP", "True"]])
def test_each_hdf5_split_is_resized_from_its_own_stored_size(medium_imagenet_factory, opts):
    """Val stored at 32 px and test at 24 px, train at 16: every split reaches the model at 16 px,
    each resized from its own images."""
    import h5py
    from torchvision.transforms.v2 import functional as TF

    written = medium_imagenet_factory()
    rng = np.random.default_rng(3)
    stored = {"val": rng.integers(0, 256, (12, 3, 32, 32), dtype=np.uint8),
              "test": rng.integers(0, 256, (9, 3, 24, 24), dtype=np.uint8)}
    with h5py.File(written.path, "a") as f:
        for split, images in stored.items():
            del f[f"images-{split}"]
            f.create_dataset(f"images-{split}", data=images)
    loaders = build_loader(mi_cfg(written.path, *opts))
    expected_eval = build_eval_transform(16, 32, center_crop=bool(opts), interpolation="bilinear")
    for loader, split in ((loaders.val_loader, "val"), (loaders.test_loader, "test")):
        images, _ = collect(loader)
        assert images.shape == (len(stored[split]), 3, 16, 16)
        if not opts:
            expected = TF.resize(torch.from_numpy(stored[split]), [16, 16], antialias=True)
            assert torch.equal(images, expected)
    assert torch.equal(collect(loaders.val_loader)[0], expected_eval(torch.from_numpy(stored["val"])))


# ---------------------------------------------------------------------------------------------
# ImageDataset.__getitems__ and the HDF5 store
# ---------------------------------------------------------------------------------------------

class RecordingStore(ArrayStore):
    """An ArrayStore that records the indices each read asks for."""

    def __init__(self, images):
        super().__init__(images)
        self.reads = []

    def read(self, indices):
        self.reads.append(np.asarray(indices).tolist())
        return super().read(indices)


def numbered_images(count: int, size: int = 4) -> np.ndarray:
    """Image i is filled with the value i, so an image tells which index it came from."""
    return np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None], (count, 3, size, size)).copy()


def test_getitems_keeps_the_requested_order():
    store = RecordingStore(numbered_images(10))
    labels = np.arange(10, dtype=np.int64) * 10
    dataset = ImageDataset(store, labels, num_classes=100)
    batch = [7, 2, 9, 0, 2, 5]
    samples = dataset.__getitems__(batch)
    assert [int(image[0, 0, 0]) for image, _ in samples] == batch
    assert [label for _, label in samples] == [10 * i for i in batch]
    assert all(image.dtype == torch.uint8 and image.shape == (3, 4, 4) for image, _ in samples)
    # The store is asked for sorted indices.
    assert store.reads == [sorted(batch)]
    # __getitem__ agrees.
    image, label = dataset[7]
    assert int(image[0, 0, 0]) == 7 and label == 70


def test_getitems_maps_through_indices():
    store = RecordingStore(numbered_images(10))
    labels = np.arange(10, dtype=np.int64)
    dataset = ImageDataset(store, labels, num_classes=10, indices=np.array([8, 1, 6, 3]))
    assert len(dataset) == 4
    samples = dataset.__getitems__([2, 0, 3])
    assert [int(image[0, 0, 0]) for image, _ in samples] == [6, 8, 3]
    assert [label for _, label in samples] == [6, 8, 3]
    assert store.reads == [[3, 6, 8]]


def test_getitems_without_labels_and_with_transform():
    dataset = ImageDataset(ArrayStore(numbered_images(5)), None, num_classes=10,
                           transform=lambda image: image + 1)
    samples = dataset.__getitems__([4, 1])
    assert [label for _, label in samples] == [NO_LABEL, NO_LABEL]
    assert [int(image[0, 0, 0]) for image, _ in samples] == [5, 2]


def test_hdf5_getitems_unsorted_and_duplicates(medium_imagenet):
    splits = open_medium_imagenet(str(medium_imagenet.path))
    store, labels = splits["train"]
    assert isinstance(store, HDF5Images) and len(store) == 40 and store.image_size == 16
    dataset = ImageDataset(store, labels, num_classes=200)
    batch = [33, 2, 17, 3, 2, 39, 0]
    samples = dataset.__getitems__(batch)
    for (image, label), index in zip(samples, batch):
        np.testing.assert_array_equal(image.numpy(), medium_imagenet.images["train"][index])
        assert label == medium_imagenet.labels["train"][index]
    # The store itself copes with unsorted indices and duplicates too.
    raw = store.read(np.array([5, 1, 5, 30]))
    np.testing.assert_array_equal(raw, medium_imagenet.images["train"][[5, 1, 5, 30]])


def test_hdf5_channels_last_store_reads_chw(medium_imagenet_factory):
    written = medium_imagenet_factory(channels_last=True)
    store, _ = open_medium_imagenet(str(written.path))["val"]
    assert store.channels_last and store.image_size == 16
    raw = store.read(np.array([0, 1, 2, 7, 11]))
    assert raw.shape == (5, 3, 16, 16) and raw.dtype == np.uint8
    np.testing.assert_array_equal(raw, written.images["val"][[0, 1, 2, 7, 11]])


@pytest.mark.parametrize("indices, runs", [
    ([0, 1, 2, 5, 6, 9], [(0, 3), (5, 7), (9, 10)]),
    ([4], [(4, 5)]),
    (list(range(10)), [(0, 10)]),
    ([1, 3, 5], [(1, 2), (3, 4), (5, 6)]),
    ([0, 2, 3, 4, 10, 11], [(0, 1), (2, 5), (10, 12)]),
])
def test_contiguous_runs(indices, runs):
    assert _contiguous_runs(np.array(indices)) == runs


def test_hdf5_store_reads_one_slice_per_run(medium_imagenet, monkeypatch):
    import h5py

    store, _ = open_medium_imagenet(str(medium_imagenet.path))["train"]
    reads = []
    original = h5py.Dataset.__getitem__

    def recording_getitem(self, key):
        reads.append(key)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording_getitem)
    images = store.read(np.array([0, 1, 2, 5, 6, 9]))
    assert reads == [slice(0, 3), slice(5, 7), slice(9, 10)]
    np.testing.assert_array_equal(images, medium_imagenet.images["train"][[0, 1, 2, 5, 6, 9]])


def test_hdf5_store_never_pickles_an_open_handle(medium_imagenet):
    store, _ = open_medium_imagenet(str(medium_imagenet.path))["val"]
    store.read(np.array([0]))
    assert store._file is not None
    copy = pickle.loads(pickle.dumps(store))
    assert copy._file is None
    np.testing.assert_array_equal(copy.read(np.array([3, 4])), medium_imagenet.images["val"][[3, 4]])


def test_hdf5_store_reopens_in_another_process(medium_imagenet):
    store, _ = open_medium_imagenet(str(medium_imagenet.path))["val"]
    store.read(np.array([0]))
    handle = store._file
    store._owner_pid = -1  # as a forked worker sees it: the handle belongs to another process
    np.testing.assert_array_equal(store.read(np.array([2])), medium_imagenet.images["val"][[2]])
    assert store._file is not handle


def test_hdf5_loader_with_workers_matches_no_workers(medium_imagenet):
    opts = ["DATA.VAL_SPLIT", "0", "DATA.PERSISTENT_WORKERS", "False"]
    serial = build_loader(mi_cfg(medium_imagenet.path, *opts, "DATA.NUM_WORKERS", "0"))
    parallel = build_loader(mi_cfg(medium_imagenet.path, *opts, "DATA.NUM_WORKERS", "2"))
    assert parallel.train_loader.num_workers == 2
    # The parent holds an open handle before the workers fork: each worker must open its own.
    parallel.val_dataset[0]
    parent_handle = parallel.val_dataset.store._file
    assert parent_handle is not None
    for loader_0, loader_2 in ((serial.train_loader, parallel.train_loader),
                               (serial.val_loader, parallel.val_loader),
                               (serial.test_loader, parallel.test_loader)):
        images_0, labels_0 = collect(loader_0)
        images_2, labels_2 = collect(loader_2)
        assert images_2.shape == images_0.shape and len(images_0) > 0
        assert torch.equal(images_0, images_2)
        assert torch.equal(labels_0, labels_2)
    # The workers' reads left the parent's handle alone, and it still works.
    assert parallel.val_dataset.store._file is parent_handle
    np.testing.assert_array_equal(parallel.val_dataset[5][0].numpy(), medium_imagenet.images["val"][5])


# ---------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------

def test_train_images_equal_stored_pixels_without_augmentation(medium_imagenet):
    assert build_train_transform(16, 16, 0, 0.0, 0.0, "", "bilinear") is None
    loaders = build_loader(mi_cfg(medium_imagenet.path))
    assert loaders.train_dataset.transform is None
    images, labels = collect(loaders.train_loader)
    order = sampler_indices(loaders.train_loader.sampler)
    assert len(images) == 40  # 5 full batches of 8
    np.testing.assert_array_equal(images.numpy(), medium_imagenet.images["train"][order])
    np.testing.assert_array_equal(labels.numpy(), medium_imagenet.labels["train"][order])


def test_train_hflip_always_flips(medium_imagenet):
    loaders = build_loader(mi_cfg(medium_imagenet.path, "AUG.HFLIP_PROB", "1.0"))
    images, _ = dataset_images(loaders.train_dataset)
    np.testing.assert_array_equal(images, medium_imagenet.images["train"][..., ::-1])


def test_train_augmentation_changes_images_but_not_eval(medium_imagenet):
    opts = ["AUG.CROP_PADDING", "4", "AUG.HFLIP_PROB", "0.5", "AUG.COLOR_JITTER", "0.4",
            "AUG.RAND_AUGMENT", "rand-m9-n2"]
    loaders = build_loader(mi_cfg(medium_imagenet.path, *opts))
    torch.manual_seed(0)
    train_images, _ = dataset_images(loaders.train_dataset)
    assert train_images.shape == (40, 3, 16, 16) and train_images.dtype == np.uint8
    assert not np.array_equal(train_images, medium_imagenet.images["train"])
    # Val and test get no augmentation: the stored pixels, as the size matches.
    np.testing.assert_array_equal(collect(loaders.val_loader)[0].numpy(), medium_imagenet.images["val"])
    np.testing.assert_array_equal(collect(loaders.test_loader)[0].numpy(), medium_imagenet.images["test"])


@pytest.mark.parametrize("opts", [["DATA.IMG_SIZE", "24"], ["DATA.IMG_SIZE", "16", "TEST.CROP", "True"],
                                  ["DATA.IMG_SIZE", "12", "DATA.INTERPOLATION", "bicubic"]])
def test_eval_transform_is_deterministic(medium_imagenet, opts):
    loaders = build_loader(mi_cfg(medium_imagenet.path, *opts))
    size = int(opts[1])
    first, first_labels = collect(loaders.val_loader)
    second, second_labels = collect(loaders.val_loader)
    assert first.shape == (12, 3, size, size) and first.dtype == torch.uint8
    assert torch.equal(first, second) and torch.equal(first_labels, second_labels)
    test_a, _ = collect(loaders.test_loader)
    test_b, _ = collect(loaders.test_loader)
    assert test_a.shape == (9, 3, size, size)
    assert torch.equal(test_a, test_b)


def test_eval_center_crop_resizes_then_crops():
    from torchvision.transforms.v2 import functional as TF

    transform = build_eval_transform(16, 16, center_crop=True, interpolation="nearest")
    image = torch.arange(3 * 16 * 16, dtype=torch.int64).remainder(256).to(torch.uint8).view(3, 16, 16)
    out = transform(image)
    assert out.shape == (3, 16, 16) and out.dtype == torch.uint8
    # Resized to round(16 / 0.875) = 18, then the centre 16x16 kept.
    resized = TF.resize(image, [18, 18], interpolation=TF.InterpolationMode.NEAREST)
    assert torch.equal(out, resized[:, 1:17, 1:17])
    assert not torch.equal(out, image)
    assert build_eval_transform(16, 16, center_crop=False, interpolation="nearest") is None


@pytest.mark.parametrize("spec, expected", [
    ("rand-m9-n3", (3, 9)),
    ("rand-m9-n2", (2, 9)),
    ("rand-n4-m15", (4, 15)),
    ("rand-m7", (2, 7)),
    ("rand-m9-mstd0.5-inc1", (2, 9)),
    ("rand", (2, 9)),
])
def test_parse_rand_augment(spec, expected):
    assert parse_rand_augment(spec) == expected


@pytest.mark.parametrize("spec, fragment", [
    ("randaug-m9-n2", "rand-m9-n2"),
    ("rand-mX-n2", "'mX'"),
    ("rand-m9-n", "'n'"),
    ("rand-m31", "0..30"),
    ("rand--m9", "''"),
])
def test_parse_rand_augment_rejects_malformed(spec, fragment):
    with pytest.raises(UserError, match="AUG.RAND_AUGMENT") as info:
        parse_rand_augment(spec)
    assert fragment in str(info.value)


def test_malformed_rand_augment_in_config_is_a_user_error():
    with pytest.raises(UserError, match="AUG.RAND_AUGMENT"):
        build_loader(digits_cfg("AUG.RAND_AUGMENT", "m9-n2"))


# ---------------------------------------------------------------------------------------------
# Normalize and the sampler
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels_last", [False, True])
def test_normalize_matches_formula(channels_last):
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    values = torch.arange(256, dtype=torch.int64).to(torch.uint8)
    images = torch.stack([values.view(16, 16), values.flip(0).view(16, 16), values.view(16, 16).t()])
    images = torch.stack([images, images.flip(-1)])  # (2, 3, 16, 16)
    before = images.clone()
    out = Normalize(mean, std, channels_last=channels_last)(images)
    assert out.dtype == torch.float32
    assert out.shape == (2, 3, 16, 16)
    expected = (images.double() / 255.0 - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) \
        / torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    assert (out.double() - expected).abs().max().item() < 1e-6
    assert torch.equal(images, before)  # the uint8 input is left alone


def test_normalize_black_image():
    out = Normalize((0.31, 0.31, 0.31), (0.32, 0.32, 0.32))(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    assert torch.allclose(out, torch.full((1, 3, 2, 2), -0.31 / 0.32), atol=1e-6)


def test_epoch_shuffle_sampler():
    sampler = EpochShuffleSampler(50, seed=7)
    assert len(sampler) == 50
    epoch0 = sampler_indices(sampler)
    assert sorted(epoch0) == list(range(50))
    assert sampler_indices(sampler) == epoch0  # same (seed, epoch), same order
    assert sampler_indices(EpochShuffleSampler(50, seed=7)) == epoch0
    sampler.set_epoch(1)
    epoch1 = sampler_indices(sampler)
    assert sorted(epoch1) == list(range(50))
    assert epoch1 != epoch0
    sampler.set_epoch(0)
    assert sampler_indices(sampler) == epoch0
    other = EpochShuffleSampler(50, seed=8)
    assert sampler_indices(other) != epoch0


def test_train_loader_reshuffles_per_epoch(cifar10):
    loaders = build_loader(cifar_cfg("cifar10", cifar10.root))
    sampler = loaders.train_loader.sampler
    assert isinstance(sampler, EpochShuffleSampler)
    _, labels_epoch0 = collect(loaders.train_loader)
    order0 = sampler_indices(sampler)
    sampler.set_epoch(1)
    _, labels_epoch1 = collect(loaders.train_loader)
    order1 = sampler_indices(sampler)
    assert order0 != order1
    np.testing.assert_array_equal(labels_epoch0.numpy(), cifar10.train_labels[order0])
    np.testing.assert_array_equal(labels_epoch1.numpy(), cifar10.train_labels[order1])


def test_shuffle_ranks_interleave_into_the_one_process_order():
    """Rank r of 2 takes items r, r + 2, ... of the 1-process order, seeds included, cut to equal lengths."""
    single = EpochShuffleSampler(101, seed=5)
    ranks = [EpochShuffleSampler(101, seed=5, rank=rank, world_size=2) for rank in range(2)]
    for sampler in (single, *ranks):
        sampler.set_epoch(3)
    shards = [list(sampler) for sampler in ranks]
    assert len(ranks[0]) == len(ranks[1]) == len(shards[0]) == len(shards[1]) == 50
    assert [item for pair in zip(*shards) for item in pair] == list(single)[:100]
    # The permutation is that of earlier versions, so runs shuffled by them keep their order.
    permutation_seed = int(np.random.SeedSequence([5, 3]).generate_state(1, np.uint64)[0])
    expected = torch.randperm(101, generator=torch.Generator().manual_seed(permutation_seed)).tolist()
    assert sampler_indices(single) == expected
    with pytest.raises(ValueError):
        EpochShuffleSampler(10, seed=0, rank=2, world_size=2)


def test_set_start_skips_the_head_of_the_epoch_until_set_epoch():
    sampler = EpochShuffleSampler(40, seed=1, rank=1, world_size=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_start(7)
    assert list(sampler) == full[7:]
    assert list(sampler) == full[7:]  # every pass of the epoch, until set_epoch
    assert len(sampler) == 13
    sampler.set_epoch(2)
    assert list(sampler) == full
    sampler.set_start(13)
    assert list(sampler) == []
    for position in (-1, 14):
        with pytest.raises(ValueError, match="outside 0..13"):
            sampler.set_start(position)


def test_sample_seeds_follow_seed_epoch_and_index():
    def pairs(seed, epoch):
        sampler = EpochShuffleSampler(30, seed)
        sampler.set_epoch(epoch)
        return dict(sampler)

    epoch0 = pairs(4, 0)
    assert pairs(4, 0) == epoch0 and sorted(epoch0) == list(range(30))
    epoch_seed = epoch0[0]
    assert all(seed == sample_seed(epoch_seed, index) for index, seed in epoch0.items())
    assert all(0 <= seed < 2**63 for seed in epoch0.values())
    for other in (pairs(4, 1), pairs(5, 0)):
        assert not set(other.values()) & set(epoch0.values())
    assert sample_seed(2**63 - 1, 1) == 0


def augmenting_digits_cfg(*opts: str):
    """Digits with every augmentation on, over a small train subset to keep the passes fast."""
    return digits_cfg("AUG.RAND_AUGMENT", "rand-m9-n2", "DATA.TRAIN_SUBSET", "320", *opts)


def test_augmented_batches_do_not_depend_on_workers_batches_or_resuming():
    serial = build_loader(augmenting_digits_cfg())
    parallel = build_loader(augmenting_digits_cfg("DATA.NUM_WORKERS", "2")).train_loader
    assert parallel.num_workers == 2
    serial.train_loader.sampler.set_epoch(1)
    parallel.sampler.set_epoch(1)
    batches = list(serial.train_loader)
    assert len(batches) == 10
    for (images_0, labels_0), (images_2, labels_2) in zip(batches, parallel, strict=True):
        assert torch.equal(images_0, images_2) and torch.equal(labels_0, labels_2)
    # Resuming after three batches gives the rest of the same pass, with workers too.
    parallel.sampler.set_start(32 * 3)
    for (images_0, labels_0), (images_2, labels_2) in zip(batches[3:], parallel, strict=True):
        assert torch.equal(images_0, images_2) and torch.equal(labels_0, labels_2)
    # An image asked for on its own, outside any batch, is the one the batch held.
    pairs = list(serial.train_loader.sampler)
    for position in (0, 45, 319):
        image, _ = serial.train_dataset[pairs[position]]
        assert torch.equal(image, batches[position // 32][0][position % 32])


def test_augmentation_changes_with_the_epoch_and_leaves_the_main_process_rng_alone():
    loaders = build_loader(augmenting_digits_cfg())
    sampler = loaders.train_loader.sampler

    def images_by_index(epoch):
        sampler.set_epoch(epoch)
        images, _ = collect(loaders.train_loader)
        return images[np.argsort(sampler_indices(sampler))]

    # A pass without workers draws from the main process's generator only the seed that the
    # DataLoader itself draws on starting; the augmentations leave it alone.
    torch.manual_seed(0)
    iter(loaders.train_loader)
    after_start = torch.get_rng_state()
    torch.manual_seed(0)
    epoch0 = images_by_index(0)
    assert torch.equal(torch.get_rng_state(), after_start)
    rng_state = torch.get_rng_state()
    loaders.train_dataset.__getitems__(list(sampler)[:32])
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.equal(images_by_index(0), epoch0)
    epoch1 = images_by_index(1)
    changed = [not torch.equal(a, b) for a, b in zip(epoch0, epoch1)]
    assert sum(changed) > 0.9 * len(changed)


def test_two_processes_see_the_batches_of_one_with_twice_the_batch_size():
    single = build_loader(augmenting_digits_cfg("DATA.BATCH_SIZE", "64", "TEST.SHUFFLE", "True"))
    ranks = [build_loader(augmenting_digits_cfg("TEST.SHUFFLE", "True"), rank=rank, world_size=2)
             for rank in range(2)]
    for loaders in (single, *ranks):
        loaders.train_loader.sampler.set_epoch(2)
    rank_batches = [list(loaders.train_loader) for loaders in ranks]
    assert len(rank_batches[0]) == len(rank_batches[1]) == len(single.train_loader) == 5
    for (images, labels), *per_rank in zip(single.train_loader, *rank_batches, strict=True):
        for rank, (rank_images, rank_labels) in enumerate(per_rank):
            assert torch.equal(images[rank::2], rank_images) and torch.equal(labels[rank::2], rank_labels)
    # Val and test are split between the ranks, each image once, and unshard restores the order.
    for split in ("val_loader", "test_loader"):
        shards = [list(collect(getattr(loaders, split))[0]) for loaders in ranks]
        assert [len(shard) for shard in shards] == [180, 179]
        assert torch.equal(torch.stack(unshard(shards)), collect(getattr(single, split))[0])
        assert all(isinstance(getattr(loaders, split).sampler, ShardSampler) for loaders in ranks)


@pytest.mark.parametrize("length, world_size", [(10, 3), (9, 3), (2, 4), (0, 2), (7, 1)])
def test_shard_sampler_reads_each_item_once_and_unshard_restores_the_order(length, world_size):
    order = np.random.default_rng(length).permutation(length).tolist()
    samplers = [ShardSampler(length, rank, world_size, order) for rank in range(world_size)]
    shards = [list(sampler) for sampler in samplers]
    assert [len(sampler) for sampler in samplers] == [len(shard) for shard in shards]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert unshard(shards) == order
    plain = [list(ShardSampler(length, rank, world_size)) for rank in range(world_size)]
    assert unshard([[f"item {index}" for index in shard] for shard in plain]) == [f"item {i}" for i in range(length)]


def test_unshard_rejects_shards_that_are_no_interleaved_split():
    assert unshard([[0, 2, 4], [1, 3]]) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="not an interleaved split"):
        unshard([[0, 2], [1, 3, 5]])
    with pytest.raises(ValueError, match="order holds 3 items for length 4"):
        ShardSampler(4, 0, 2, order=[0, 1, 2])


def test_loader_workers_ignore_stop_signals_meant_for_the_main_process():
    import os
    import signal

    loader = build_loader(digits_cfg("DATA.NUM_WORKERS", "2")).train_loader
    iterator = iter(loader)
    next(iterator), next(iterator)  # one batch from each worker: both have run their worker_init_fn
    for worker, signal_number in zip(iterator._workers * 2, (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)):
        os.kill(worker.pid, signal_number)
    assert len(list(iterator)) == len(loader) - 2
    assert all(worker.exitcode is None or worker.exitcode == 0 for worker in iterator._workers)


@pytest.mark.slow
def test_a_crash_with_live_loader_workers_still_exits():
    """Workers ignore SIGTERM, which is how multiprocessing stops them at exit: without the exit
    handler that kills them, a crash that keeps an iterator alive hung forever."""
    import subprocess
    import sys

    script = ("from config import get_config\nfrom data import build_loader\n"
              "loader = build_loader(get_config('configs/quickstart.yaml', ['DATA.NUM_WORKERS', '2']))\n"
              "iterator = iter(loader.train_loader)\nnext(iterator)\nraise RuntimeError('an internal bug')\n")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.rstrip().endswith("RuntimeError: an internal bug")


# --- class names and train subsets ---

def test_class_names_come_from_the_data_set(cifar10, cifar100, medium_imagenet_factory):
    import h5py

    assert build_loader(digits_cfg()).class_names == [str(digit) for digit in range(10)]
    assert build_loader(cifar_cfg("cifar10", cifar10.root)).class_names[:3] == ["airplane", "automobile", "bird"]
    assert build_loader(cifar_cfg("cifar100", cifar100.root)).class_names[99] == "fine_99"
    plain = medium_imagenet_factory("plain.hdf5")
    assert build_loader(mi_cfg(plain.path)).class_names[:3] == ["0", "1", "2"]
    named = medium_imagenet_factory("named.hdf5")
    with h5py.File(named.path, "a") as f:
        f.create_dataset("class-names", data=np.array([f"class {i}".encode() for i in range(200)]))
    assert build_loader(mi_cfg(named.path)).class_names[199] == "class 199"


def test_medium_imagenet_with_fewer_class_names_than_its_labels_is_a_user_error(medium_imagenet_factory):
    import h5py

    fixture = medium_imagenet_factory()
    with h5py.File(fixture.path, "a") as f:
        f.create_dataset("class-names", data=np.array([b"a", b"b"]))
    # The names say how many classes the file has: its labels must lie below that.
    with pytest.raises(UserError, match="'labels-train' has labels outside 0..1"):
        build_loader(mi_cfg(fixture.path))


@pytest.mark.parametrize("subset, expected", [("0.25", 360), ("100", 100), ("0", 1438)])
def test_train_subset_takes_a_fraction_or_a_count_chosen_from_the_seed(subset, expected):
    loaders = build_loader(digits_cfg("DATA.TRAIN_SUBSET", subset))
    assert len(loaders.train_dataset) == expected and len(loaders.val_dataset) == 359
    again = build_loader(digits_cfg("DATA.TRAIN_SUBSET", subset)).train_dataset.indices
    other_seed = build_loader(digits_cfg("DATA.TRAIN_SUBSET", subset, "SEED", "1")).train_dataset.indices
    assert np.array_equal(loaders.train_dataset.indices, again)
    assert np.array_equal(loaders.train_dataset.indices, np.sort(loaders.train_dataset.indices))
    assert expected == 1438 or not np.array_equal(loaders.train_dataset.indices, other_seed)


def test_train_subset_is_taken_from_what_val_split_leaves():
    loaders = build_loader(digits_cfg("DATA.VAL_SPLIT", "0.5", "DATA.TRAIN_SUBSET", "0.5"))
    assert len(loaders.train_dataset) == 360 and len(loaders.val_dataset) == 719
    assert not set(loaders.train_dataset.indices) & set(loaders.val_dataset.indices)


def test_neighbouring_seeds_and_epochs_shuffle_differently():
    def order(seed, epoch):
        sampler = EpochShuffleSampler(100, seed)
        sampler.set_epoch(epoch)
        return sampler_indices(sampler)

    assert order(0, 1) != order(1, 0)
    assert order(3, 2) == order(3, 2) and sorted(order(3, 2)) == list(range(100))


def test_a_shuffled_val_split_is_read_in_one_order_every_epoch_so_a_resumed_run_reads_it_alike():
    val_sampler, test_sampler = build_eval_samplers(50, 7, shuffle_val=True, seed=3, rank=0, world_size=1)
    first_epoch = list(val_sampler)
    assert sorted(first_epoch) == list(range(50)) and first_epoch != list(range(50))
    assert list(val_sampler) == first_epoch
    resumed, _ = build_eval_samplers(50, 7, shuffle_val=True, seed=3, rank=0, world_size=1)
    assert list(resumed) == first_epoch
    assert list(test_sampler) == list(range(7))
