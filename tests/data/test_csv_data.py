"""DATA.DATASET csv (a Kaggle-style CSV of ids and labels beside image folders), and submissions
that name rows by file and classes by name."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import main
from config import get_config
from data import build_loader
from evaluation.submission import write_submission
from utils.errors import UserError

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABELS = ["zebra", "cat", "dog"]  # as they come in the CSV; sorted: cat 0, dog 1, zebra 2
CHANNEL = {"cat": 0, "dog": 1, "zebra": 2}
TEST_ORDER = ["t7", "t2", "t9", "t1", "t5"]  # sample_submission.csv's order, not sorted


def coloured(rng: np.random.Generator, label: str) -> np.ndarray:
    pixels = rng.integers(0, 90, (18, 18, 3), dtype=np.uint8)
    pixels[..., CHANNEL[label]] += 160
    return pixels


def write_kaggle_layout(root: Path, per_class: int = 16, extension_in_id: bool = False) -> Path:
    """train.csv (id,label with string labels), train/<id>.jpg, test/<id>.jpg and sample_submission.csv."""
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows = []
    for i in range(per_class * len(LABELS)):
        label = LABELS[i % len(LABELS)]
        image_id = f"img{i:03d}"
        Image.fromarray(coloured(rng, label)).save(root / "train" / f"{image_id}.jpg", quality=95)
        rows.append((f"{image_id}.jpg" if extension_in_id else image_id, label))
    with open(root / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([("id", "label"), *rows])
    for k, image_id in enumerate(TEST_ORDER):
        Image.fromarray(coloured(rng, LABELS[k % 3])).save(root / "test" / f"{image_id}.jpg", quality=95)
    with open(root / "sample_submission.csv", "w", newline="") as f:
        csv.writer(f).writerows([("id", "label"), *[(image_id, "cat") for image_id in TEST_ORDER]])
    return root


def csv_cfg(root: Path, *opts: str):
    return get_config(opts=["DEVICE", "cpu", "DATA.DATASET", "csv", "DATA.DATA_PATH", str(root),
                            "DATA.IMAGE_EXT", ".jpg", "DATA.NUM_WORKERS", "0", "DATA.IMG_SIZE", "16",
                            "DATA.VAL_SPLIT", "0.25", *opts])


def test_string_labels_become_indices_in_sorted_order_and_rows_find_their_images(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    loaders = build_loader(csv_cfg(root))
    assert loaders.class_names == ["cat", "dog", "zebra"]
    store, labels = loaders.train_dataset.store, loaders.train_dataset.labels
    assert Path(store.paths[0]).name == "img000.jpg" and labels[0] == 2  # zebra
    assert np.bincount(labels).tolist() == [16, 16, 16]
    images = store.read(np.arange(len(store)))
    assert (images.astype(np.int64).mean(axis=(2, 3)).argmax(axis=1) == labels).all()
    # Without a test CSV: every image of test/, in sorted order, named by its file.
    assert loaders.test_ids == sorted(TEST_ORDER)


def test_ids_that_already_end_in_jpg_need_no_image_ext(tmp_path):
    root = write_kaggle_layout(tmp_path / "data", extension_in_id=True)
    loaders = build_loader(csv_cfg(root, "DATA.IMAGE_EXT", "''"))
    assert len(loaders.train_dataset) + len(loaders.val_dataset) == 48


def test_whole_number_labels_sort_as_numbers(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    table = (root / "train.csv").read_text().replace("zebra", "10").replace("cat", "2").replace("dog", "1")
    (root / "train.csv").write_text(table)
    assert build_loader(csv_cfg(root)).class_names == ["1", "2", "10"]


def test_a_test_csv_gives_the_ids_to_predict_in_its_order(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    loaders = build_loader(csv_cfg(root, "DATA.TEST_CSV", "sample_submission.csv"))
    assert loaders.test_ids == TEST_ORDER
    assert [Path(path).stem for path in loaders.test_dataset.store.paths] == TEST_ORDER


@pytest.mark.parametrize("breakage, opts, message", [
    (None, ["DATA.TRAIN_CSV", "labels.csv"], r"DATA.TRAIN_CSV: .*labels.csv does not exist; set DATA.TRAIN_CSV"),
    (None, ["DATA.CSV_LABEL", "breed"],
     r"train.csv has no column 'breed'; its columns are 'id', 'label'; set DATA.CSV_ID and DATA.CSV_LABEL"),
    (lambda root: (root / "train.csv").write_text((root / "train.csv").read_text().replace("img004,cat", "img004,")),
     [], r"train.csv: 1 rows have an empty 'label' \(lines 6\); fill them in or remove those rows"),
    (lambda root: (root / "train" / "img007.jpg").unlink(), [],
     r"1 images named in .*train.csv are missing, e.g. .*img007.jpg; check DATA.IMAGE_DIR"),
    (lambda root: (root / "test" / "t9.jpg").unlink(), ["DATA.TEST_CSV", "sample_submission.csv"],
     r"1 images named in .*sample_submission.csv are missing, e.g. .*t9.jpg"),
])
def test_bad_csv_data_is_refused_in_one_line_before_training(tmp_path, breakage, opts, message):
    root = write_kaggle_layout(tmp_path / "data")
    if breakage:
        breakage(root)
    with pytest.raises(UserError, match=message):
        build_loader(csv_cfg(root, *opts))


def train(tmp_path: Path, *opts: str) -> int:
    return main.main(["--cfg", os.path.join(REPO, "configs/quickstart.yaml"), "--output", str(tmp_path / "runs"),
                      "--tag", "run", "--device", "cpu", "--opts", "WANDB.MODE", "disabled", "DATA.IMG_SIZE", "16",
                      "DATA.BATCH_SIZE", "8", "TRAIN.EPOCHS", "4", "PRINT_FREQ", "2", *opts])


def test_file_ids_on_a_data_set_without_files_are_refused_before_training(tmp_path, capsys):
    assert train(tmp_path, "SUBMISSION.ID", "file") == 2
    assert capsys.readouterr().err == ("error: SUBMISSION.ID file names each row by its test image's file, but the "
                                       "test images of DATA.DATASET digits are not files; use SUBMISSION.ID index\n")
    assert not (tmp_path / "runs").exists()


def test_submission_fields_with_commas_or_quotes_are_quoted(tmp_path):
    path = tmp_path / "submission.csv"
    write_submission(str(path), [0, 1], "Id,Category", ids=["a,1", 'b"2'], class_names=["x", "y, z"])
    with open(path, newline="") as f:
        assert list(csv.reader(f)) == [["Id", "Category"], ["a,1", "x"], ['b"2', "y, z"]]


def test_skip_bad_images_leaves_out_a_csv_rows_unreadable_image(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    (root / "train" / "img010.jpg").write_bytes(b"garbage")
    loaders = build_loader(csv_cfg(root, "DATA.VAL_SPLIT", "0.1", "DATA.SKIP_BAD_IMAGES", "True"))
    assert len(loaders.train_dataset) + len(loaders.val_dataset) == 47
    assert str(root / "train" / "img010.jpg") not in loaders.train_dataset.store.paths
    assert "left out 1 train images" in loaders.notes[0]
