"""DATA.DATASET csv: a CSV of image ids and labels beside a folder of images, Kaggle's usual layout.

    DATA_PATH/
      train.csv          DATA.TRAIN_CSV: columns DATA.CSV_ID and DATA.CSV_LABEL (e.g. id,label)
      train/             DATA.IMAGE_DIR: the image of id X is X, or X + DATA.IMAGE_EXT
      test/              DATA.TEST_DIR, optional: the images to predict, in sorted file order ...
      test.csv           ... or DATA.TEST_CSV, optional: their ids (column DATA.CSV_ID), in its order

Labels are read as text with the whitespace around them stripped. When every label is a decimal
number, the classes are the distinct numbers in numeric order, each named in its shortest form
("1.0", "01" and " 1" are one class, named "1"); otherwise they are the distinct texts in sorted
order. A missing file or column, an empty label cell, a row without its image, an id that leads
outside its image folder and an image named twice are refused in one line, before anything trains.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from torchvision.transforms.v2 import InterpolationMode

from data.image_files import ImageFileStore, check_test_images, list_image_files, path_inside, readable_only
from utils.csv_rows import read_csv_rows
from utils.errors import UserError

# A label in plain decimal notation: "3", "-2", "0.50", ".5", "7.". Exponents are left out on purpose:
# a code such as "1E10" is more likely a name than ten billion.
DECIMAL_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?", re.ASCII)


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


@dataclass(frozen=True)
class CsvColumns:
    """The cells of some columns of a CSV file, row by row, and the line of the file each row starts on."""
    path: str
    cells: dict[str, list[str]]  # column name -> its cell in every row, as written
    lines: list[int]  # the header is line 1


def read_table(path: str, key: str, columns: list[str]) -> CsvColumns:
    """`columns` of the CSV at `path` (named by config `key`), read as text; one line if it cannot be.
    Blank lines are skipped; a row with more or fewer cells than the header is refused."""
    if not os.path.isfile(path):
        raise UserError(f"{key}: {path} does not exist; set {key} (relative to DATA.DATA_PATH)")
    header, rows, lines = read_csv_rows(path, key)
    if not header:
        raise UserError(f"{key}: {path} is empty; it needs a header line naming its columns")
    missing = [column for column in columns if column not in header]
    if missing:
        raise UserError(f"{path} has no column {missing[0]!r}; its columns are {', '.join(map(repr, header))}; "
                        f"set DATA.CSV_ID and DATA.CSV_LABEL to the id and label columns")
    twice = [column for column in columns if header.count(column) > 1]
    if twice:
        raise UserError(f"{path} has {header.count(twice[0])} columns named {twice[0]!r}; rename all but one")
    ragged = [(line, len(row)) for line, row in zip(lines, rows) if len(row) != len(header)]
    if ragged:
        line, count = ragged[0]
        raise UserError(f"{path}:{line}: the row has {count} cells where the header has {len(header)}; "
                        f"quote cells that hold commas")
    positions = {column: header.index(column) for column in columns}
    return CsvColumns(path, {column: [row[position] for row in rows] for column, position in positions.items()},
                      lines)


def decimal_name(label: str) -> str | None:
    """The shortest form of `label` when it is a decimal number ("+01.50" -> "1.5", "2.0" -> "2",
    "-0" -> "0"), else None."""
    match = DECIMAL_NUMBER.fullmatch(label)
    if match is None:
        return None
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    if not whole and not fraction:
        return None
    whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
    name = whole + (f".{fraction}" if fraction else "")
    return f"-{name}" if sign == "-" and name != "0" else name


def class_names_of_labels(labels: list[str]) -> tuple[list[str], list[str]]:
    """(the class name of every label, the distinct class names in class order). Labels are
    stripped; when all are decimal numbers they are named in their shortest form and ordered by
    value, else they are ordered as text."""
    stripped = [label.strip() for label in labels]
    numbers = [decimal_name(label) for label in stripped]
    if stripped and all(name is not None for name in numbers):
        # Decimal compares exactly, whatever the number of digits.
        return numbers, sorted(set(numbers), key=Decimal)
    return stripped, sorted(set(stripped))


def train_labels(layout: CsvLayout) -> tuple[CsvColumns, list[str], list[str]]:
    """(the train CSV's id and label columns, each row's class name, the class names in class order)."""
    table = read_table(layout.train_csv, "DATA.TRAIN_CSV", [layout.id_column, layout.label_column])
    empty = [line for line, label in zip(table.lines, table.cells[layout.label_column]) if not label.strip()]
    if empty:
        lines = ", ".join(map(str, empty[:5]))
        raise UserError(f"{layout.train_csv}: {len(empty)} rows have an empty {layout.label_column!r} (lines {lines}"
                        f"{', ...' if len(empty) > 5 else ''}); fill them in or remove those rows")
    row_classes, classes = class_names_of_labels(table.cells[layout.label_column])
    return table, row_classes, classes


def count_classes(layout: CsvLayout) -> int:
    return len(train_labels(layout)[2])


def image_paths(folder: str, table: CsvColumns, id_column: str, extension: str) -> list[str]:
    """The image file of every id of `table`, which must exist inside `folder` (after following
    links and `..`) and be named by one row only."""
    paths, row_of_image = [], {}
    for line, image_id in zip(table.lines, table.cells[id_column]):
        path = path_inside(folder, f"{image_id}{extension}")
        if path is None:
            raise UserError(f"{table.path}:{line}: the id {image_id!r} names a file outside {folder}; an id must be "
                            f"a path inside DATA.IMAGE_DIR (or DATA.TEST_DIR), with no absolute path and no "
                            f"'..' or link leading out of it")
        real = os.path.realpath(path)
        if real in row_of_image:
            first_line, first_id = row_of_image[real]
            raise UserError(f"{table.path}: lines {first_line} and {line} name the same image {path} (ids "
                            f"{first_id!r} and {image_id!r}); keep one row per image, since a repeated row counts "
                            f"the image twice")
        row_of_image[real] = line, image_id
        paths.append(path)
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise UserError(f"{len(missing)} images named in {table.path} are missing, e.g. {missing[0]}; check "
                        f"DATA.IMAGE_DIR, DATA.TEST_DIR and DATA.IMAGE_EXT (the ending added to each id)")
    return paths


def load_csv_dataset(layout: CsvLayout, image_size: int, interpolation: InterpolationMode, skip_bad_images: bool,
                     threads: int, max_pixels: int):
    """({"train", "test": (ImageFileStore, labels or None)}, class names). The test store's ids are
    the test CSV's, as written there, or the test files' names without their endings. Images over
    `max_pixels` are refused like unreadable ones; with `skip_bad_images`, the train images that
    do not decode are left out (the store's `left_out`)."""
    table, row_classes, classes = train_labels(layout)
    index = {name: label for label, name in enumerate(classes)}
    labels = np.array([index[name] for name in row_classes], dtype=np.int64)
    train_paths = image_paths(layout.image_dir, table, layout.id_column, layout.image_ext)
    left_out = []
    if skip_bad_images:
        train_paths, labels, left_out = readable_only(train_paths, labels, threads, max_pixels)
    if layout.test_csv:
        test_table = read_table(layout.test_csv, "DATA.TEST_CSV", [layout.id_column])
        test_paths = image_paths(layout.test_dir, test_table, layout.id_column, layout.image_ext)
        ids = test_table.cells[layout.id_column]
    else:
        test_paths = list_image_files(layout.test_dir) if os.path.isdir(layout.test_dir) else []
        ids = None
    if skip_bad_images:
        check_test_images(test_paths, threads, max_pixels)
    splits = {"train": (ImageFileStore(train_paths, image_size, interpolation, max_pixels, left_out=left_out),
                        labels),
              "test": (ImageFileStore(test_paths, image_size, interpolation, max_pixels, ids), None)}
    return splits, classes
