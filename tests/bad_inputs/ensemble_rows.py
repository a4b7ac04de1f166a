"""Bad-input rows: scripts/ensemble.py given members it cannot blend (other classes, test ids or
val images; neither probabilities nor a checkpoint to predict them; a corrupt checkpoint; one given
twice), weights that are no weights, an unknown --tta, a sample submission that is missing or
unlike the submission, or an --out that is a run's folder; and `write_run`, which fakes a finished
run's saved probabilities."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from evaluation.probabilities import write_probs
from tests.bad_inputs.row import BadInput, write

CLASSES = ["cat", "dog", "fox", "owl"]
SCRIPT = "scripts/ensemble.py"


def write_run(run_dir: Path, val_probs: np.ndarray, targets: Sequence[int], test_probs: np.ndarray,
              classes: Sequence[str] | None = None, ids: Sequence[str] | None = None,
              test_ids: Sequence[str] | None = None, config: bool = True) -> Path:
    """A finished run as scripts/ensemble.py reads it: config.yaml (unless not `config`),
    val_probs.csv (ids val-0, ... unless `ids`) and test_probs.csv (test-0, ... unless `test_ids`),
    under the first classes of CLASSES unless `classes` are given."""
    run_dir.mkdir(parents=True, exist_ok=True)
    classes = list(classes) if classes is not None else CLASSES[:val_probs.shape[1]]
    if config:
        (run_dir / "config.yaml").write_text(yaml.safe_dump({"SEED": 0, "DATA": {"DATASET": "digits"}}))
    write_probs(str(run_dir / "val_probs.csv"), list(ids) if ids is not None else
                [f"val-{row}" for row in range(len(val_probs))], val_probs, classes, np.asarray(targets))
    write_probs(str(run_dir / "test_probs.csv"), list(test_ids) if test_ids is not None else
                [f"test-{row}" for row in range(len(test_probs))], test_probs, classes)
    return run_dir


def two_runs(workspace: Path, classes: Sequence[str] = ("cat", "dog"), test_ids: Sequence[str] = ("test-0", "test-1"),
             val_ids: Sequence[str] = ("val-0", "val-1", "val-2"), targets: Sequence[int] = (0, 1, 0)) -> list[str]:
    """scripts/ensemble.py's argv for runs/lenet and runs/resnet, lenet of two classes, 3 val and 2
    test images; resnet the same but for the `classes`, `test_ids`, `val_ids` and `targets` given."""
    val = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], dtype=np.float32)
    test = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    write_run(workspace / "runs" / "lenet", val, [0, 1, 0], test, classes=["cat", "dog"])
    write_run(workspace / "runs" / "resnet", val, targets, test, classes=classes, ids=val_ids, test_ids=test_ids)
    return [str(workspace / "runs" / "lenet"), str(workspace / "runs" / "resnet")]


def with_weights(weights: str):
    return lambda ws, run: [*two_runs(ws), "--weights", weights]


def unsaved_run(workspace: Path, run: Path, best_checkpoint: bytes | None = None) -> list[str]:
    """A run folder that holds its config.yaml, no probability files, and a best.pth holding
    `best_checkpoint` (none when None)."""
    write(workspace / "runs" / "unsaved" / "config.yaml", "SEED: 0\n")
    if best_checkpoint is not None:
        write(workspace / "runs" / "unsaved" / "best.pth", best_checkpoint)
    return [str(run), str(workspace / "runs" / "unsaved")]


def unlike_sample(workspace: Path, run: Path) -> list[str]:
    """The finished run ensembled with a sample submission whose header names other columns."""
    sample = write(workspace / "sample_submission.csv", "ImageId,Label\n" + "".join(
        line.split(",")[0] + ",0\n" for line in (run / "submission.csv").read_text().splitlines()[1:]))
    return [str(run), "--sample-submission", str(sample), "--out", str(workspace / "ensemble")]


ROWS: list[BadInput] = [
    BadInput("ensemble-members-of-other-classes", lambda ws, run: two_runs(ws, classes=("cat", "fox")),
             ("resnet", "'fox'", "lenet"), command=SCRIPT),
    BadInput("ensemble-members-of-other-test-ids", lambda ws, run: two_runs(ws, test_ids=("test-0", "test-9")),
             ("resnet", "'test-9'", "row 2"), command=SCRIPT),
    BadInput("ensemble-members-of-test-ids-in-another-order",
             lambda ws, run: two_runs(ws, test_ids=("test-1", "test-0")), ("resnet", "'test-1'", "row 1"),
             command=SCRIPT),
    BadInput("ensemble-members-of-other-val-images",
             lambda ws, run: two_runs(ws, val_ids=("val-0", "val-1", "val-7")), ("'val-2'", "resnet", "lenet"),
             command=SCRIPT),
    BadInput("ensemble-members-of-other-val-labels", lambda ws, run: two_runs(ws, targets=(0, 1, 1)),
             ("'val-2'", "resnet", "lenet"), command=SCRIPT),
    BadInput("ensemble-weights-of-another-count", with_weights("1,2,3"), ("--weights", "3 weights", "2 members"),
             command=SCRIPT),
    BadInput("ensemble-a-negative-weight", with_weights("1,-1"), ("--weights", "'-1'"), command=SCRIPT),
    BadInput("ensemble-a-weight-that-is-no-number", with_weights("1,heavy"), ("--weights", "'heavy'"),
             command=SCRIPT),
    BadInput("ensemble-weights-all-zero", with_weights("0,0"), ("--weights 0,0",), command=SCRIPT),
    BadInput("ensemble-a-member-without-probabilities-or-checkpoint", unsaved_run,
             ("unsaved", "val_probs.csv", "best.pth"), command=SCRIPT),
    BadInput("ensemble-a-member-to-predict-from-a-corrupt-checkpoint",
             lambda ws, run: unsaved_run(ws, run, b"not a checkpoint"), ("unsaved", "best.pth"), command=SCRIPT),
    BadInput("ensemble-a-checkpoint-member-that-is-no-checkpoint",
             lambda ws, run: [str(run), str(write(ws / "weights.pth", b"\x00" * 8))], ("weights.pth",),
             command=SCRIPT),
    BadInput("ensemble-a-member-that-does-not-exist", lambda ws, run: [str(run), str(ws / "runs" / "gone")],
             ("gone", "does not exist"), command=SCRIPT),
    BadInput("ensemble-an-unknown-tta", lambda ws, run: [str(run), "--tta", "vflip"], ("--tta", "vflip", "hflip"),
             command=SCRIPT),
    BadInput("ensemble-a-missing-sample-submission",
             lambda ws, run: [str(run), "--sample-submission", str(ws / "sample_submission.csv")],
             ("sample_submission.csv",), command=SCRIPT),
    BadInput("ensemble-a-submission-unlike-the-sample", unlike_sample, ("sample_submission.csv", "header", "ImageId"),
             command=SCRIPT),
    BadInput("ensemble-a-member-given-twice", lambda ws, run: [str(run), str(run)], ("done", "twice"),
             command=SCRIPT),
    BadInput("ensemble-a-folder-without-runs",
             lambda ws, run: [str(run), str(write(ws / "empty" / "notes.txt", "").parent)], ("empty", "no runs"),
             command=SCRIPT),
    BadInput("ensemble-out-into-a-run-folder", lambda ws, run: [*two_runs(ws), "--out", str(run)], ("--out", "done"),
             command=SCRIPT),
    BadInput("ensemble-topk-more-than-the-classes",
             lambda ws, run: [*two_runs(ws), "--format", "topk", "--topk", "3"], ("--topk 3", "2 classes"),
             command=SCRIPT),
]
