"""DATA.DATASET imagefolder: class folders of JPEG, PNG and WEBP files, decoded in the workers."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import main
from config import get_config
from data import build_loader
from models.build import resolve_num_classes
from tests.conftest import IMAGE_FOLDER_CLASSES as CLASSES
from tests.conftest import write_image_folder
from utils.errors import UserError

# pytest shows warnings that data.image_files filters out of the logs.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
def folder_cfg(root: Path, *opts: str):
    return get_config(opts=["DEVICE", "cpu", "DATA.DATASET", "imagefolder", "DATA.DATA_PATH", str(root),
                            "DATA.NUM_WORKERS", "0", "DATA.PERSISTENT_WORKERS", "False", "DATA.IMG_SIZE", "16",
                            "AUG.CROP_PADDING", "0", "AUG.HFLIP_PROB", "0", "AUG.COLOR_JITTER", "0", *opts])


def test_classes_are_the_sorted_folder_names_and_every_image_is_read_as_rgb(tmp_path):
    root = write_image_folder(tmp_path / "data")
    loaders = build_loader(folder_cfg(root, "DATA.VAL_SPLIT", "0.25"))
    assert loaders.class_names == CLASSES and loaders.num_classes == 3
    assert resolve_num_classes(folder_cfg(root)) == 3
    store = loaders.train_dataset.store
    assert len(store) == 3 * 12 + 2 and all(not path.endswith(".txt") for path in store.paths)
    labels = loaders.train_dataset.labels
    assert np.bincount(labels).tolist() == [14, 12, 12]
    images = store.read(np.arange(len(store)))
    assert images.shape == (38, 3, 16, 16) and images.dtype == np.uint8
    # Each image's strongest channel is its class's, whatever its file type.
    strongest = images.astype(np.int64).mean(axis=(2, 3)).argmax(axis=1)
    gray_row = store.paths.index(str(root / "train" / "cat" / "gray.png"))
    colour_rows = [row for row in range(len(store)) if row != gray_row]
    assert (strongest[colour_rows] == labels[colour_rows]).all()
    assert (images[gray_row, 0] == images[gray_row, 1]).all() and (images[gray_row, 1] == images[gray_row, 2]).all()
    assert len(loaders.train_dataset) + len(loaders.val_dataset) == 38


def test_an_image_of_the_models_size_arrives_unchanged_and_a_larger_one_is_cut_to_its_centre(tmp_path):
    root = tmp_path / "data"
    (root / "train" / "a").mkdir(parents=True)
    exact = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(exact).save(root / "train" / "a" / "exact.png")
    wide = np.zeros((16, 48, 3), np.uint8)
    wide[:, 16:32] = 200  # the centre third, which the square cut keeps
    Image.fromarray(wide).save(root / "train" / "a" / "wide.png")
    store = build_loader(folder_cfg(root, "DATA.VAL_SPLIT", "0.5")).train_dataset.store
    images = store.read(np.arange(2))
    np.testing.assert_array_equal(images[0], exact.transpose(2, 0, 1))
    assert (images[1] == 200).all()


def test_a_val_folder_is_the_val_split_and_without_one_val_split_is_asked_for(tmp_path):
    root = write_image_folder(tmp_path / "data", val_per_class=4)
    loaders = build_loader(folder_cfg(root))
    assert len(loaders.val_dataset) == 12 and np.bincount(loaders.val_dataset.labels).tolist() == [4, 4, 4]
    assert len(loaders.test_dataset) == 7
    # Sorted file names: img_01.jpg first, though it was written last.
    assert [Path(path).name for path in loaders.test_dataset.store.paths][:2] == ["img_01.jpg", "img_02.jpg"]
    no_val = write_image_folder(tmp_path / "no_val")
    with pytest.raises(UserError, match="imagefolder has no val labels; set DATA.VAL_SPLIT"):
        build_loader(folder_cfg(no_val))


@pytest.mark.parametrize("breakage, message", [
    (lambda root: (root / "train").rename(root / "training"), "imagefolder data needs a train folder"),
    (lambda root: (root / "train" / "empty").mkdir(), "the class folder .*empty holds no images"),
    (lambda root: (root / "val" / "horse").mkdir(parents=True), "val has class folders that train/ lacks: horse"),
])
def test_a_broken_layout_is_refused_in_one_line_before_training(tmp_path, capsys, breakage, message):
    root = write_image_folder(tmp_path / "data")
    breakage(root)
    with pytest.raises(UserError, match=message):
        build_loader(folder_cfg(root, "DATA.VAL_SPLIT", "0.25"))


def train_on_folder(tmp_path: Path, root: Path, *opts: str) -> int:
    return main.main(["--cfg", os.path.join(REPO, "configs/quickstart.yaml"), "--output", str(tmp_path / "runs"),
                      "--tag", "run", "--device", "cpu", "--opts", "WANDB.MODE", "disabled",
                      "DATA.DATASET", "imagefolder", "DATA.DATA_PATH", str(root), "DATA.IMG_SIZE", "16",
                      "DATA.BATCH_SIZE", "8", "TRAIN.EPOCHS", "4", "PRINT_FREQ", "2", *opts])


def test_a_corrupt_jpeg_is_named_in_one_line(tmp_path, capsys):
    root = write_image_folder(tmp_path / "data", val_per_class=2)
    broken = root / "train" / "dog" / "dog_000.jpg"
    broken.write_bytes(broken.read_bytes()[:60])  # cut off after the header
    assert train_on_folder(tmp_path, root, "DATA.NUM_WORKERS", "0") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: cannot read the image {broken}: ")
    assert err.endswith("replace or delete the file, or set DATA.SKIP_BAD_IMAGES True to leave out every image "
                        "that cannot be read\n")


def test_skip_bad_images_leaves_out_unreadable_train_and_val_images_and_lists_them(tmp_path):
    root = write_image_folder(tmp_path / "data", val_per_class=2)
    broken = [root / "train" / "dog" / "dog_000.jpg", root / "val" / "cat" / "cat_001.png"]
    for path in broken:
        path.write_bytes(path.read_bytes()[:60])
    (root / "train" / "zebra" / "empty.jpg").write_bytes(b"")
    loaders = build_loader(folder_cfg(root, "DATA.SKIP_BAD_IMAGES", "True"))
    assert len(loaders.train_dataset) == 38 - 1 and len(loaders.val_dataset) == 6 - 1
    assert str(broken[0]) not in loaders.train_dataset.store.paths
    assert len(loaders.notes) == 2 and loaders.notes[0].startswith(
        "DATA.SKIP_BAD_IMAGES: left out 2 train images that cannot be read:\n  ")
    assert str(broken[0]) in loaders.notes[0] and str(root / "train" / "zebra" / "empty.jpg") in loaders.notes[0]
    assert str(broken[1]) in loaders.notes[1]
    assert train_on_folder(tmp_path, root, "DATA.NUM_WORKERS", "0", "DATA.SKIP_BAD_IMAGES", "True") == 0
    log = (tmp_path / "runs" / "lenet_imagefolder" / "run" / "log.txt").read_text()
    assert "left out 2 train images that cannot be read" in log and str(broken[0]) in log


def test_skip_bad_images_cannot_leave_out_a_test_image(tmp_path):
    root = write_image_folder(tmp_path / "data", val_per_class=2)
    broken = root / "test" / "img_03.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=f"cannot read the test image {broken}: .*the submission needs a row for each"):
        build_loader(folder_cfg(root, "DATA.SKIP_BAD_IMAGES", "True"))


def test_stored_size_is_free_for_image_folders_and_96_or_224_for_medium_imagenet(tmp_path):
    assert folder_cfg(tmp_path, "DATA.STORED_SIZE", "64").DATA.STORED_SIZE == 64
    with pytest.raises(UserError, match="DATA.STORED_SIZE must be 96 or 224"):
        get_config(opts=["DATA.DATASET", "medium_imagenet", "DATA.STORED_SIZE", "64"])


def test_with_the_random_resized_crop_images_are_decoded_at_stored_size(tmp_path):
    root = write_image_folder(tmp_path / "data", val_per_class=2)
    loaders = build_loader(folder_cfg(root, "AUG.RRC_SCALE", "(0.5, 1.0)", "DATA.STORED_SIZE", "24"))
    assert loaders.train_dataset.store.image_size == 24 and loaders.val_dataset.store.image_size == 24
    images, _ = next(iter(loaders.train_loader))
    assert images.shape[1:] == (3, 16, 16)


def test_webp_files_are_read_too(tmp_path):
    root = tmp_path / "data"
    (root / "train" / "a").mkdir(parents=True)
    pixels = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "train" / "a" / "lossless.webp", lossless=True)
    store = build_loader(folder_cfg(root, "DATA.VAL_SPLIT", "0.5")).train_dataset.store
    np.testing.assert_array_equal(store.read(np.arange(1))[0], pixels.transpose(2, 0, 1))
