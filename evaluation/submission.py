"""The Kaggle submission files: one row per test image, in data set order (submission.csv), and
one row per verification pair, in the pairs file's order (verify_submission.csv); and the check of
a submission against the competition's sample_submission.csv.

submission.csv comes in the formats competitions ask for (SUBMISSION_FORMATS):
- label: `id,class`, the predicted class of each image;
- probs: `id,<class 0>,<class 1>,...`, the probability of every class (log-loss competitions);
- topk: `id,labels`, the k most probable classes, best first, separated by spaces (MAP@k).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import numpy as np

from evaluation.probabilities import read_csv_rows, write_probs
from utils.errors import UserError

SUBMISSION_FORMATS = ("label", "probs", "topk")


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


def write_probs_submission(path: str, probs: np.ndarray, class_names: Sequence[str], id_column: str = "Id",
                           ids: Sequence[str] | None = None) -> None:
    """Write `id_column`,<class names>, then `id,p0,p1,...` for every test image (float32 `probs`
    (N, C), lossless as evaluation.probabilities writes them); atomically. The id is the row's
    index unless `ids` are given."""
    row_ids = list(ids) if ids is not None else [str(row) for row in range(len(probs))]
    write_probs(path, row_ids, probs, class_names, id_column=id_column)


def top_k_classes(probs: np.ndarray, k: int) -> np.ndarray:
    """(N, k): the k most probable classes of every row, best first; a tie goes to the lower index."""
    return np.argsort(-np.asarray(probs), axis=1, kind="stable")[:, :k]


def write_topk_submission(path: str, probs: np.ndarray, k: int, header: str = "Id,Category",
                          ids: Sequence[str] | None = None, class_names: Sequence[str] | None = None) -> None:
    """Write `header`, then `id,c1 c2 ... ck` for every test image: its `k` most probable classes
    under `probs` (N, C), best first, separated by spaces; atomically. The id is the row's index
    unless `ids` are given, each class its index unless `class_names` are."""
    if ids is not None and len(ids) != len(probs):
        raise ValueError(f"{len(ids)} ids for {len(probs)} rows of probabilities")
    row_ids = ids if ids is not None else range(len(probs))
    top = top_k_classes(probs, k) if len(probs) else np.zeros((0, k), dtype=np.int64)
    labels = [" ".join(str(class_names[c]) if class_names is not None else str(c) for c in row) for row in top]
    _write_rows(path, header, zip(row_ids, labels))


def submission_writer(submission_format: str, probs: np.ndarray, class_names: Sequence[str], header: str,
                      ids: Sequence[str] | None, label_names: Sequence[str] | None, k: int) -> Callable[[str], None]:
    """A function writing the submission of test probabilities `probs` to a path, in
    `submission_format` (SUBMISSION.FORMAT: label, probs or topk) under `header`: rows named by
    `ids` (None: their index), classes by `label_names` (None: their index)."""
    writers = {
        "label": partial(write_submission, predictions=probs.argmax(axis=1), header=header, ids=ids,
                         class_names=label_names),
        "probs": partial(write_probs_submission, probs=probs, class_names=class_names,
                         id_column=header.split(",")[0], ids=ids),
        "topk": partial(write_topk_submission, probs=probs, k=k, header=header, ids=ids, class_names=label_names),
    }
    return writers[submission_format]


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


@dataclass(frozen=True)
class SampleSubmission:
    """A competition's sample_submission.csv: what a submission's header, ids and order must be."""
    path: str
    header: list[str]
    ids: list[str]  # the first column of every row, in order


def read_sample_submission(path: str) -> SampleSubmission:
    """The header and ids of the CSV at `path`; UserError naming it when it is missing, empty or no CSV."""
    header, rows, _ = read_csv_rows(path, "the sample submission", "the competition's sample_submission.csv")
    if not header:
        raise UserError(f"the sample submission {path} is empty; it needs a header line, then one row per test image")
    return SampleSubmission(path, header, [row[0] for row in rows])


def first_difference(written: SampleSubmission, sample: SampleSubmission) -> str | None:
    """The first way `written` (a submission, read as a sample) differs from `sample`: its header,
    an id of the sample it lacks, an id the sample lacks, or the order; None when they match."""
    if written.header != sample.header:
        return f"its header is {','.join(written.header)} where the sample's is {','.join(sample.header)}"
    written_ids, sample_ids = set(written.ids), set(sample.ids)
    for row, image_id in enumerate(sample.ids, start=1):
        if image_id not in written_ids:
            return f"it is missing the id {image_id!r} (row {row} of the sample)"
    for row, image_id in enumerate(written.ids, start=1):
        if image_id not in sample_ids:
            return f"its row {row} holds the id {image_id!r}, which the sample lacks"
    for row, (ours, theirs) in enumerate(zip(written.ids, sample.ids), start=1):
        if ours != theirs:
            return f"its row {row} holds the id {ours!r} where the sample has {theirs!r}"
    if len(written.ids) != len(sample.ids):
        return f"it has {len(written.ids)} rows where the sample has {len(sample.ids)}"
    return None


def write_checked_submission(path: str, write: Callable[[str], None], sample: SampleSubmission | None) -> None:
    """`write(path)`, or, with a `sample`, `write` into a file beside `path` first, checked against
    the sample: moved onto `path` when it matches, else kept as `path`.rejected, with `path` left as
    it was (an earlier good submission is never replaced by one that fails), and UserError naming
    the first difference."""
    if sample is None:
        write(path)
        return
    candidate = f"{path}.unchecked-{os.getpid()}"
    write(candidate)
    difference = first_difference(read_sample_submission(candidate), sample)
    if difference is None:
        os.replace(candidate, path)
        return
    rejected = f"{path}.rejected"
    os.replace(candidate, rejected)
    raise UserError(f"{os.path.basename(path)} does not match the sample submission {sample.path}: {difference}; "
                    f"it is kept as {rejected}, and {path} is not written (an earlier one stays as it was); set "
                    f"SUBMISSION.HEADER, SUBMISSION.ID, SUBMISSION.FORMAT and SUBMISSION.LABELS (and DATA.TEST_CSV "
                    f"for the order) to match the sample")
