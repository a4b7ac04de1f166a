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


# --- labels that are numbers, ids that lead outside the image folder, images named twice --------

def write_rows(root: Path, rows: list[tuple[str, str]], name: str = "train.csv") -> None:
    with open(root / name, "w", newline="") as f:
        csv.writer(f).writerows([("id", "label"), *rows])


def relabelled(root: Path, label_of_class: dict[str, str]) -> list[str]:
    """Rewrite train.csv with each class's label replaced by `label_of_class[class]`; the class of each row."""
    with open(root / "train.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    write_rows(root, [(image_id, label_of_class[label]) for image_id, label in rows])
    return [label for _, label in rows]


def test_number_labels_are_classes_in_numeric_order_named_without_a_trailing_point_zero(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    with open(root / "train.csv", newline="") as f:
        ids = [image_id for image_id, _ in list(csv.reader(f))[1:]]
    # Eleven classes 0.0 .. 10.0: as text, "10.0" would sort before "2.0".
    write_rows(root, [(image_id, f"{i % 11}.0") for i, image_id in enumerate(ids)])
    loaders = build_loader(csv_cfg(root))
    assert loaders.class_names == [str(number) for number in range(11)]
    assert loaders.train_dataset.labels.tolist() == [i % 11 for i in range(len(ids))]


def test_one_number_written_three_ways_is_one_class(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    # cat is written 1, 1.0 and " 1.0 " on different rows; dog is 2.5 and 2.50; zebra -3.
    with open(root / "train.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    spellings = {"cat": ["1", "1.0", " 1.0 "], "dog": ["2.5", "2.50", "+2.5"], "zebra": ["-3", "-3.00", "-03"]}
    write_rows(root, [(image_id, spellings[label][i % 3]) for i, (image_id, label) in enumerate(rows)])
    loaders = build_loader(csv_cfg(root))
    assert loaders.class_names == ["-3", "1", "2.5"]
    expected = {"zebra": 0, "cat": 1, "dog": 2}
    assert loaders.train_dataset.labels.tolist() == [expected[label] for _, label in rows]


def test_text_labels_are_stripped_of_surrounding_whitespace(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    classes = relabelled(root, {"cat": " cat", "dog": "dog ", "zebra": "zebra"})
    loaders = build_loader(csv_cfg(root))
    assert loaders.class_names == ["cat", "dog", "zebra"]
    assert loaders.train_dataset.labels.tolist() == [CHANNEL[label] for label in classes]


def test_a_submission_writes_number_classes_as_they_are_named(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    relabelled(root, {"cat": "2.0", "dog": "10.0", "zebra": "1.0"})
    loaders = build_loader(csv_cfg(root))
    path = tmp_path / "submission.csv"
    # Prediction index 1 is the second class in numeric order: 2.
    write_submission(str(path), [1, 2, 0], "id,label", ids=["a", "b", "c"], class_names=loaders.class_names)
    assert path.read_text().splitlines() == ["id,label", "a,2", "b,10", "c,1"]


@pytest.mark.parametrize("bad_id", ["../outside", "../../outside", "train/../../outside", "ABSOLUTE"])
def test_an_id_leading_outside_the_image_folder_is_refused_naming_it_and_its_line(tmp_path, bad_id):
    root = write_kaggle_layout(tmp_path / "data")
    outside = tmp_path / "outside.jpg"
    Image.new("RGB", (18, 18)).save(outside)
    (root / "outside.jpg").write_bytes(outside.read_bytes())
    if bad_id == "ABSOLUTE":
        bad_id = str(tmp_path / "outside")
    with open(root / "train.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    rows[4] = (bad_id, rows[4][1])
    write_rows(root, rows)
    with pytest.raises(UserError) as refusal:
        build_loader(csv_cfg(root))
    message = str(refusal.value)
    assert "train.csv:6:" in message and repr(bad_id) in message and "\n" not in message


def test_an_id_whose_link_leads_outside_the_image_folder_is_refused(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    secret = tmp_path / "secret.jpg"
    Image.new("RGB", (18, 18)).save(secret)
    (root / "train" / "img005.jpg").unlink()
    (root / "train" / "img005.jpg").symlink_to(secret)
    with pytest.raises(UserError, match=r"train.csv:7: the id 'img005'"):
        build_loader(csv_cfg(root))


def test_a_test_csv_id_leading_outside_the_test_folder_is_refused(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    Image.new("RGB", (18, 18)).save(root / "train" / "t8.jpg")
    write_rows(root, [("t7", "cat"), ("../train/t8", "cat")], name="sample_submission.csv")
    with pytest.raises(UserError, match=r"sample_submission.csv:3: the id '../train/t8'"):
        build_loader(csv_cfg(root, "DATA.TEST_CSV", "sample_submission.csv"))


@pytest.mark.parametrize("second_label", ["cat", "dog"])
def test_an_image_named_on_two_rows_is_refused_with_both_line_numbers(tmp_path, second_label):
    root = write_kaggle_layout(tmp_path / "data")
    with open(root / "train.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    rows[9] = ("./" + rows[3][0], second_label)  # another spelling of line 5's image, on line 11
    write_rows(root, [*rows[:3], (rows[3][0], "cat"), *rows[4:]])
    with pytest.raises(UserError, match=r"train.csv: lines 5 and 11 name the same image .*img003.jpg"):
        build_loader(csv_cfg(root))


def test_line_numbers_count_blank_lines_and_the_header(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    (root / "train.csv").write_text("id,label\n\nimg000,cat\n\n\nimg001,\n")
    with pytest.raises(UserError, match=r"lines 6\)"):
        build_loader(csv_cfg(root))


def test_a_row_with_more_or_fewer_cells_than_the_header_is_refused_naming_its_line(tmp_path):
    root = write_kaggle_layout(tmp_path / "data")
    (root / "train.csv").write_text("id,label\nimg000,cat\nimg001\nimg002,dog\n")
    with pytest.raises(UserError, match=r"train.csv:3: the row has 1 cells where the header has 2"):
        build_loader(csv_cfg(root))
