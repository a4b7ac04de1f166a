"""The Kaggle submission files: one row per test image, in data set order (submission.csv), and
one row per verification pair, in the pairs file's order (verify_submission.csv)."""
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
    _write_rows(path, header, zip(row_ids, labels))


def write_verify_submission(path: str, similarities: Sequence[float], header: str = "Id,Category",
                            ids: Sequence[str] | None = None) -> None:
    """Write `header`, then `id,cosine similarity` for every verification pair; atomically. The
    id is the pair's index unless `ids` (e.g. "img_a img_b" as the pairs file wrote them) are given."""
    if ids is not None and len(ids) != len(similarities):
        raise ValueError(f"{len(ids)} ids for {len(similarities)} similarities")
    row_ids = ids if ids is not None else range(len(similarities))
    _write_rows(path, header, ((row_id, f"{float(value):.6f}") for row_id, value in zip(row_ids, similarities)))


def _write_rows(path: str, header: str, rows) -> None:
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with open(tmp_path, "w", encoding="utf-8", newline="") as f:
        f.write(header + "\n")
        csv.writer(f, lineterminator="\n").writerows(rows)
    os.replace(tmp_path, path)
