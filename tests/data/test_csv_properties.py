"""Property: whatever a CSV label file holds (ids, labels, whitespace, duplicates, paths), the csv data
set either comes out with the meaning of every row kept, or is refused with a UserError in one line.
Never another exception, never a silent change of meaning."""
from __future__ import annotations

import csv
import os
import re
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from torchvision.transforms.v2 import InterpolationMode

from data.csv_labels import CsvLayout, load_csv_dataset
from utils.errors import UserError

# Labels in plain decimal notation (not "1e3", not "1 0"), as the README describes number labels.
DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)")
# Files of the image folder (empty: the parser only checks that they exist), and ids that do not name one.
IMAGES = [f"img{i}.png" for i in range(8)] + ["sub/img8.png", "a,b.png", 'q"uote.png', "link.png"]
GOOD_IDS = [f"img{i}" for i in range(8)] + ["sub/img8", "a,b", 'q"uote']
# Other spellings of an image above, and ids that lead outside train/ or to no file.
ALIASES = ["./img0", "sub/../img1", "sub/./img8"]
BAD_IDS = ["img2 ", "missing", "../outside", "link", "ABSOLUTE", "", "sub", "sub/../../outside"]
NUMBERS = ["0", "1", "2", "10", "1.0", " 1.0", "01", "+1", "-1", "-0", "2.50", ".5", "5.", "0.0", "10.0", "3 "]
TEXTS = ["cat", " cat", "cat ", "Cat", "dog", "nan", "1 0", "é", "1e3", "0x1", ""]


@pytest.fixture(scope="module")
def data_root():
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "data"
        for image in IMAGES[:-1]:  # link.png is a link out of train/
            (root / "train" / image).parent.mkdir(parents=True, exist_ok=True)
            (root / "train" / image).touch()
        (root / "outside.png").touch()
        (root / "train" / "link.png").symlink_to(root / "outside.png")
        yield root


def layout(root: Path) -> CsvLayout:
    return CsvLayout.under(str(root), "train.csv", "train", "", "test", "id", "label", ".png")


def expected_refusal(root: Path, ids: list[str], labels: list[str]) -> bool:
    """Whether the rows must be refused: an empty label, an id outside train/ or of no file, one image twice."""
    image_dir = os.path.realpath(root / "train")
    files = [os.path.realpath(os.path.join(root / "train", image_id + ".png")) for image_id in ids]
    outside = any(not path.startswith(image_dir + os.sep) for path in files)
    return (any(not label.strip() for label in labels) or outside or not all(map(os.path.isfile, files))
            or len(set(files)) < len(files))


# Mostly rows that can be read (repeats weigh an entry), so that most examples check a data set, not a refusal.
image_ids = st.sampled_from(GOOD_IDS * 8 + ALIASES + BAD_IDS)
rows = st.lists(st.tuples(image_ids, st.sampled_from(NUMBERS + TEXTS)), min_size=1, max_size=8,
                unique_by=lambda row: row[0])


@settings(max_examples=200, deadline=None)
@given(rows=rows, numbers_only=st.booleans(), repeated=st.sampled_from([False] * 5 + [True]))
def test_a_csv_label_file_comes_out_with_its_meaning_or_is_refused_in_one_line(data_root, rows, numbers_only,
                                                                              repeated):
    if numbers_only:  # half the files hold numbers only, so that the numeric case is common
        rows = [(image_id, label if label in NUMBERS else "3") for image_id, label in rows]
    if repeated:  # the first row's image again, under another label
        rows = [*rows, (rows[0][0], "7")]
    rows = [(str(data_root / "outside") if image_id == "ABSOLUTE" else image_id, label) for image_id, label in rows]
    with open(data_root / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([("id", "label"), *rows])
    ids, labels = [image_id for image_id, _ in rows], [label for _, label in rows]
    try:
        splits, classes = load_csv_dataset(layout(data_root), 16, InterpolationMode.BILINEAR, False, 1, 10**6)
    except UserError as refusal:
        event("refused")
        assert "\n" not in str(refusal)
        assert expected_refusal(data_root, ids, labels)
        return
    assert not expected_refusal(data_root, ids, labels)
    store, indices = splits["train"]
    # Ids unchanged, in the file's order.
    assert store.paths == [os.path.join(data_root / "train", image_id + ".png") for image_id in ids]
    stripped = [label.strip() for label in labels]
    if all(DECIMAL.fullmatch(label) for label in stripped):
        # Classes: the distinct values in increasing order; each row's class has the row's value.
        assert [Decimal(name) for name in classes] == sorted({Decimal(label) for label in stripped})
        assert [Decimal(classes[index]) for index in indices] == [Decimal(label) for label in stripped]
        assert all(name == name.strip() and not name.endswith(".0") and "e" not in name.lower() for name in classes)
    else:
        assert classes == sorted(set(stripped))
        assert [classes[index] for index in indices] == stripped
