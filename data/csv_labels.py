"""DATA.DATASET csv: a CSV of image ids and labels beside a folder of images, Kaggle's usual layout.

    DATA_PATH/
      train.csv          DATA.TRAIN_CSV: columns DATA.CSV_ID and DATA.CSV_LABEL (e.g. id,label)
      train/             DATA.IMAGE_DIR: the image of id X is X, or X + DATA.IMAGE_EXT
      test/              DATA.TEST_DIR, optional: the images to predict, in sorted file order ...
      test.csv           ... or DATA.TEST_CSV, optional: their ids (column DATA.CSV_ID), in its order

Labels are read as text and become class indices in sorted order (numerically when every label is
a whole number). A missing file or column, an empty label cell and a row without its image are
refused in one line, before anything trains.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torchvision.transforms.v2 import InterpolationMode

from data.image_files import ImageFileStore, check_test_images, list_image_files, readable_only
from utils.errors import UserError


@dataclass(frozen=True)
class CsvLayout:
    """The DATA keys of the csv data set, with paths relative to DATA_PATH resolved."""
    train_csv: str
    image_dir: str
    test_csv: str  # "" for none
    test_dir: str
    id_column: str
    label_column: str
    image_ext: str

    @classmethod
    def under(cls, data_path: str, train_csv: str, image_dir: str, test_csv: str, test_dir: str, id_column: str,
              label_column: str, image_ext: str) -> "CsvLayout":
        root = os.path.expanduser(data_path)
        return cls(os.path.join(root, train_csv), os.path.join(root, image_dir),
                   os.path.join(root, test_csv) if test_csv else "", os.path.join(root, test_dir), id_column,
                   label_column, image_ext)


def read_table(path: str, key: str, columns: list[str]) -> pd.DataFrame:
    """The CSV at `path` (named by config `key`) with `columns` read as text; one line if it cannot be."""
    if not os.path.isfile(path):
        raise UserError(f"{key}: {path} does not exist; set {key} (relative to DATA.DATA_PATH)")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise UserError(f"{key}: {path} is not a readable CSV file: {str(error).strip().splitlines()[0]}") from error
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise UserError(f"{path} has no column {missing[0]!r}; its columns are {', '.join(map(repr, table.columns))}; "
                        f"set DATA.CSV_ID and DATA.CSV_LABEL to the id and label columns")
    return table


def sorted_class_names(labels: pd.Series) -> list[str]:
    """The distinct labels in sorted order: numerically when all are whole numbers, else as text."""
    names = labels.unique().tolist()
    if all(name.lstrip("-").isdigit() for name in names):
        return sorted(names, key=int)
    return sorted(names)


def train_labels(layout: CsvLayout) -> tuple[pd.DataFrame, list[str]]:
    table = read_table(layout.train_csv, "DATA.TRAIN_CSV", [layout.id_column, layout.label_column])
    empty = np.flatnonzero((table[layout.label_column].str.strip() == "").to_numpy())
    if len(empty):
        # Line numbers of the file: the header is line 1.
        lines = ", ".join(str(row + 2) for row in empty[:5])
        raise UserError(f"{layout.train_csv}: {len(empty)} rows have an empty {layout.label_column!r} (lines {lines}"
                        f"{', ...' if len(empty) > 5 else ''}); fill them in or remove those rows")
    return table, sorted_class_names(table[layout.label_column])


def count_classes(layout: CsvLayout) -> int:
    return len(train_labels(layout)[1])


def image_paths(folder: str, ids: pd.Series, extension: str, csv_path: str) -> list[str]:
    """The image file of every id, which must exist."""
    paths = [os.path.join(folder, f"{image_id}{extension}") for image_id in ids]
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise UserError(f"{len(missing)} images named in {csv_path} are missing, e.g. {missing[0]}; check "
                        f"DATA.IMAGE_DIR, DATA.TEST_DIR and DATA.IMAGE_EXT (the ending added to each id)")
    return paths


def load_csv_dataset(layout: CsvLayout, image_size: int, interpolation: InterpolationMode, skip_bad_images: bool,
                     threads: int):
    """({"train", "test": (ImageFileStore, labels or None)}, class names). The test store's ids are
    the test CSV's, as written there, or the test files' names without their endings. With
    `skip_bad_images`, the train images that do not decode are left out (the store's `left_out`)."""
    table, classes = train_labels(layout)
    index = {name: label for label, name in enumerate(classes)}
    labels = table[layout.label_column].map(index).to_numpy(dtype=np.int64)
    train_paths = image_paths(layout.image_dir, table[layout.id_column], layout.image_ext, layout.train_csv)
    left_out = []
    if skip_bad_images:
        train_paths, labels, left_out = readable_only(train_paths, labels, threads)
    if layout.test_csv:
        test_ids = read_table(layout.test_csv, "DATA.TEST_CSV", [layout.id_column])[layout.id_column]
        test_paths = image_paths(layout.test_dir, test_ids, layout.image_ext, layout.test_csv)
        ids = test_ids.tolist()
    else:
        test_paths = list_image_files(layout.test_dir) if os.path.isdir(layout.test_dir) else []
        ids = None
    if skip_bad_images:
        check_test_images(test_paths, threads)
    splits = {"train": (ImageFileStore(train_paths, image_size, interpolation, left_out=left_out), labels),
              "test": (ImageFileStore(test_paths, image_size, interpolation, ids), None)}
    return splits, classes
