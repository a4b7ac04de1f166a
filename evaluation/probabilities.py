"""Probability files, the one place that writes and reads them: val_probs.csv (a run's val or
out-of-fold rows), test_probs.csv (beside submission.csv) and the `probs` submission.

    id,true,<class 0>,<class 1>,...
    train/cat/001.jpg,cat,0.912345681,0.0876543224,...

One row per image: its id (an image's id is the same in every run: data.build.Loaders), then,
in val files only, its true class by name, then the probability of every class, in class
order, under the class names. Each probability is written with 9 significant digits (%.9g),
which gives back, read as a float32, the very float32 that was written: the files are lossless.

Reading is a parser of a user's file (scripts read the files a user hands them): a file that is
not this layout is refused in one line naming the file, and the line and column at fault.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from utils import csv_rows
from utils.errors import UserError

ID_COLUMN = "id"
TRUE_COLUMN = "true"
# How far a row's probabilities may sum from 1 when read (float32 rounding stays far below it).
SUM_TOLERANCE = 1e-3


@dataclass
class ProbTable:
    """A probability file's contents, row by row."""
    ids: list[str]
    probs: np.ndarray  # float32 (N, C)
    class_names: list[str]
    targets: np.ndarray | None  # the true class index of every row (val files); None for test files


def format_probability(value: float) -> str:
    """`value` with 9 significant digits: enough for a float32 to round-trip exactly."""
    return f"{value:.9g}"


def write_probs(path: str, ids: Sequence[str], probs: np.ndarray, class_names: Sequence[str],
                targets: np.ndarray | None = None, id_column: str = ID_COLUMN) -> None:
    """Write one row per image (`ids`, float32 `probs` (N, C), the true class indices `targets`
    for a val file) under the header `id_column`[,true],<class names>; atomically."""
    probs = np.asarray(probs, dtype=np.float32)
    if probs.shape != (len(ids), len(class_names)):
        raise ValueError(f"probabilities of shape {probs.shape} for {len(ids)} ids and {len(class_names)} classes")
    if targets is not None and len(targets) != len(ids):
        raise ValueError(f"{len(targets)} targets for {len(ids)} ids")
    header = [id_column, *([TRUE_COLUMN] if targets is not None else []), *class_names]
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with open(tmp_path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        quoting_all = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL)
        # The csv module quotes a cell holding \n but not one holding a lone \r, which readers take
        # for a line end: rows with one are written with every cell quoted.
        (quoting_all if any("\r" in name for name in header) else writer).writerow(header)
        for row, (image_id, values) in enumerate(zip(ids, probs.tolist())):
            true = [class_names[int(targets[row])]] if targets is not None else []
            text = [image_id, *true]
            (quoting_all if any("\r" in cell for cell in text) else writer).writerow(
                [*text, *map(format_probability, values)])
    os.replace(tmp_path, path)


def read_probs(path: str, class_names: Sequence[str] | None = None) -> ProbTable:
    """The probability file at `path`, checked: an `id` first column, then `true` (read as the
    true-class column whenever the second column is so named), then the class columns, which must
    be `class_names` in order when given; unique ids; a probability in [0, 1] in every cell and
    rows that sum to 1 within 1e-3. UserError naming the file, line and column otherwise."""
    header, rows, lines = read_csv_rows(path, "the probability file", "a val_probs.csv or test_probs.csv")
    if not header or header[0] != ID_COLUMN:
        first = repr(header[0]) if header else "nothing"
        raise UserError(f"{path}:1: a probability file starts with an {ID_COLUMN!r} column, but its header starts "
                        f"with {first}; write the header as id[,true],<class names>")
    has_targets = len(header) > 1 and header[1] == TRUE_COLUMN
    if class_names is not None and header[1:] == list(class_names):
        has_targets = False  # a class named "true" comes first
    classes = header[2 if has_targets else 1:]
    _check_classes(path, classes, class_names)
    probs = np.empty((len(rows), len(classes)), dtype=np.float32)
    targets = np.empty(len(rows), dtype=np.int64) if has_targets else None
    class_index = {name: index for index, name in enumerate(classes)}
    first_line_of: dict[str, int] = {}
    for row_number, (row, line) in enumerate(zip(rows, lines)):
        if len(row) != len(header):
            raise UserError(f"{path}:{line}: the row has {len(row)} cells where the header has {len(header)}; "
                            f"quote cells that hold commas")
        image_id = row[0]
        if image_id in first_line_of:
            raise UserError(f"{path}: lines {first_line_of[image_id]} and {line} hold the same id {image_id!r}; "
                            f"keep one row per image")
        first_line_of[image_id] = line
        if targets is not None:
            if row[1] not in class_index:
                raise UserError(f"{path}:{line}: the true class {row[1]!r} is not one of the file's class columns")
            targets[row_number] = class_index[row[1]]
        probs[row_number] = _probabilities(path, line, row[len(header) - len(classes):], classes)
    return ProbTable(list(first_line_of), probs, classes, targets)


def read_csv_rows(path: str, what: str, expected: str) -> tuple[list[str], list[list[str]], list[int]]:
    """(header, rows without blank lines, the line each row starts on) of the CSV at `path`, `what`
    the user gave (e.g. "the sample submission"), which should be `expected`; UserError naming
    the file when it is missing or is no UTF-8 CSV."""
    if not os.path.isfile(path):
        raise UserError(f"{what} {path} does not exist; give the path of {expected}")
    return csv_rows.read_csv_rows(path)


def _check_classes(path: str, classes: list[str], expected: Sequence[str] | None) -> None:
    """UserError when the file has no class columns, names one twice, or differs from `expected`."""
    if not classes:
        raise UserError(f"{path}:1: the header has no class columns after id; write one column per class")
    seen = set()
    for name in classes:
        if name in seen:
            raise UserError(f"{path}:1: the header names the class column {name!r} twice; name each class once")
        seen.add(name)
    if expected is not None and classes != list(expected):
        expected = list(expected)
        at = next((i for i, (got, want) in enumerate(zip(classes, expected)) if got != want),
                  min(len(classes), len(expected)))
        got = repr(classes[at]) if at < len(classes) else "no column"
        want = repr(expected[at]) if at < len(expected) else "no column"
        raise UserError(f"{path}:1: the class columns differ from the {len(expected)} classes expected: class "
                        f"column {at + 1} is {got} where {want} is expected; the file is for other classes")


def _probabilities(path: str, line: int, cells: list[str], classes: list[str]) -> list[float]:
    """The cells of one row as probabilities, checked in [0, 1] and summing to 1."""
    values = []
    for cell, name in zip(cells, classes):
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not 0.0 <= value <= 1.0:  # NaN and the cells that are no number fail this too
            raise UserError(f"{path}:{line}: column {name!r} holds {cell!r}, which is not a probability (a number "
                            f"from 0 to 1)")
        values.append(value)
    total = math.fsum(values)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise UserError(f"{path}:{line}: the probabilities sum to {total:.6g}, not 1 (within {SUM_TOLERANCE:g}); "
                        f"every row holds the probability of each class")
    return values
