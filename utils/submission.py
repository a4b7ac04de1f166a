"""The Kaggle submission file: one row per test image, in data set order."""
from __future__ import annotations

import csv
import os
from typing import Sequence


def write_submission(path: str, predictions: Sequence[int], header: str = "Id,Category",
                     ids: Sequence[str] | None = None, class_names: Sequence[str] | None = None) -> None:
    """Write `header`, then `id,predicted class` for every test image; atomically. The id is
    the row's index unless `ids` are given, the class its index unless `class_names` are.
    Fields holding a comma or a quote are quoted, as the csv module writes them."""
    if ids is not None and len(ids) != len(predictions):
        raise ValueError(f"{len(ids)} ids for {len(predictions)} predictions")
    row_ids = ids if ids is not None else range(len(predictions))
    labels = [class_names[int(p)] for p in predictions] if class_names is not None else [int(p) for p in predictions]
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with open(tmp_path, "w", encoding="utf-8", newline="") as f:
        f.write(header + "\n")
        csv.writer(f, lineterminator="\n").writerows(zip(row_ids, labels))
    os.replace(tmp_path, path)
