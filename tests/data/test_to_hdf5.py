"""scripts/to_hdf5.py: an imagefolder or csv data set converted into the MediumImageNet layout."""
from __future__ import annotations

import csv
import os

import h5py
import numpy as np
import pytest

from config import get_config
from data import build_loader
from tests.conftest import IMAGE_FOLDER_CLASSES, write_image_folder

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def folder_loaders(root, *opts: str):
    return build_loader(get_config(opts=["DATA.DATASET", "imagefolder", "DATA.DATA_PATH", str(root),
                                         "DATA.IMG_SIZE", "16", "DATA.NUM_WORKERS", "0", *opts]))


@pytest.mark.parametrize("layout", ["chw", "hwc"])
def test_the_file_holds_the_pixels_labels_and_names_that_reading_the_folder_gives(tmp_path, to_hdf5, layout, capsys):
    root = write_image_folder(tmp_path / "data", val_per_class=3)
    out = tmp_path / "converted" / "faces-16.hdf5"
    assert to_hdf5.main(["--src", str(root), "--out", str(out), "--size", "16", "--layout", layout,
                         "--workers", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    direct = folder_loaders(root)
    with h5py.File(out, "r") as f:
        for split, dataset in (("train", direct.train_dataset), ("val", direct.val_dataset),
                               ("test", direct.test_dataset)):
            images = f[f"images-{split}"][:]
            if layout == "hwc":
                images = images.transpose(0, 3, 1, 2)
            np.testing.assert_array_equal(images, dataset.store.read(np.arange(len(dataset.store))))
            if split != "test":
                np.testing.assert_array_equal(f[f"labels-{split}"][:], dataset.labels)
        assert [name.decode() for name in f["class-names"][:]] == IMAGE_FOLDER_CLASSES
        assert [name.decode() for name in f["ids-test"][:]] == [f"img_{i:02d}" for i in range(1, 8)]
        assert f["images-train"].chunks == ((1, 3, 16, 16) if layout == "chw" else (1, 16, 16, 3))
    # Read back through the medium_imagenet path: the same batches, names and class count.
    converted = build_loader(get_config(opts=["DATA.DATASET", "medium_imagenet", "DATA.DATA_PATH", str(out),
                                              "DATA.IMG_SIZE", "16", "DATA.NUM_WORKERS", "0"]))
    assert converted.class_names == IMAGE_FOLDER_CLASSES and converted.num_classes == 3
    assert converted.test_ids == [f"img_{i:02d}" for i in range(1, 8)]
    np.testing.assert_array_equal(converted.val_dataset.__getitems__([0])[0][0].numpy(),
                                  direct.val_dataset.__getitems__([0])[0][0].numpy())


def test_without_a_val_folder_part_of_train_is_held_out_from_the_seed(tmp_path, to_hdf5):
    root = write_image_folder(tmp_path / "data")
    out = tmp_path / "out.hdf5"
    assert to_hdf5.main(["--src", str(root), "--out", str(out), "--size", "16", "--val-split", "0.25"]) == 0
    with h5py.File(out, "r") as f:
        assert len(f["images-train"]) + len(f["images-val"]) == 38 and len(f["images-val"]) == 10
        assert f["images-train"].shape[1:] == (3, 16, 16)


def test_a_csv_data_set_converts_with_its_data_keys(tmp_path, to_hdf5):
    root = tmp_path / "kaggle"
    write_image_folder(tmp_path / "folder")
    (root / "train").mkdir(parents=True)
    rows = []
    for label in IMAGE_FOLDER_CLASSES:
        for path in sorted((tmp_path / "folder" / "train" / label).glob("*.jpg")):
            os.replace(path, root / "train" / f"{label}-{path.stem}.jpg")
            rows.append((f"{label}-{path.stem}", label))
    with open(root / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([("image", "species"), *rows])
    out = tmp_path / "kaggle.hdf5"
    assert to_hdf5.main(["--src", str(root), "--out", str(out), "--size", "16", "--opts", "DATA.CSV_ID", "image",
                         "DATA.CSV_LABEL", "species", "DATA.IMAGE_EXT", ".jpg"]) == 0
    with h5py.File(out, "r") as f:
        assert len(f["images-train"]) + len(f["images-val"]) == len(rows) and len(f["images-test"]) == 0


def test_an_interrupted_conversion_leaves_no_file_behind(tmp_path, to_hdf5, monkeypatch):
    root = write_image_folder(tmp_path / "data", val_per_class=2)
    out = tmp_path / "out.hdf5"
    real_write = to_hdf5.write_split

    def write_split(file, split, *args):
        real_write(file, split, *args)
        if split == "val":
            raise KeyboardInterrupt

    monkeypatch.setattr(to_hdf5, "write_split", write_split)
    with pytest.raises(KeyboardInterrupt):
        to_hdf5.main(["--src", str(root), "--out", str(out), "--size", "16"])
    assert os.listdir(tmp_path) == ["data"]


def test_a_bad_source_is_one_line(tmp_path, to_hdf5, capsys):
    assert to_hdf5.main(["--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.hdf5"), "--size", "16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: imagefolder data needs a train folder") and err.count("\n") == 1
    assert not (tmp_path / "x.hdf5").exists()


def test_an_output_that_cannot_be_written_is_one_line(tmp_path, to_hdf5, capsys):
    root = write_image_folder(tmp_path / "data")
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / "a_file" / "out.hdf5"
    assert to_hdf5.main(["--src", str(root), "--out", str(out), "--size", "16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {out}: ") and err.endswith("; choose another --out\n")
    assert err.count("\n") == 1
