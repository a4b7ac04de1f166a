"""Bad-input rows: K-fold cross-validation (DATA.FOLDS and DATA.FOLD that contradict each other or
the val split, a class too small for the folds, scripts/sweep.py --folds, and fold runs that
scripts/folds.py cannot put together); and `write_fold_run`, which fakes a finished fold run."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from evaluation.probabilities import write_probs
from tests.bad_inputs.row import FAST_OPTS, QUICKSTART, BadInput, quickstart_argv

FOLD_CLASSES = ["cat", "dog"]


def write_fold_run(run_dir: Path, fold: int, ids: Sequence[str], targets: Sequence[int], num_folds: int = 3,
                   seed: int = 0, test_probs: np.ndarray | None = None, predicted: Sequence[int] | None = None) -> Path:
    """A finished fold run as scripts/folds.py reads it: config.yaml, val_probs.csv (0.9 on the
    `predicted` class, the true one when None) and, when given, test_probs.csv (ids test-0, ...)."""
    run_dir.mkdir(parents=True)
    config = {"SEED": seed, "DATA": {"DATASET": "digits", "FOLDS": num_folds, "FOLD": fold, "HOLDOUT_CLASSES": []}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    predicted = list(targets) if predicted is None else list(predicted)
    probs = np.full((len(ids), len(FOLD_CLASSES)), 0.1 / (len(FOLD_CLASSES) - 1), dtype=np.float32)
    probs[np.arange(len(ids)), predicted] = 0.9
    write_probs(str(run_dir / "val_probs.csv"), list(ids), probs, FOLD_CLASSES, np.asarray(targets))
    if test_probs is not None:
        write_probs(str(run_dir / "test_probs.csv"), [f"test-{row}" for row in range(len(test_probs))], test_probs,
                    FOLD_CLASSES)
    return run_dir


def three_folds(workspace: Path, skip: int | None = None, shared_id: bool = False,
                short_fold: int | None = None) -> list[str]:
    """scripts/folds.py's argv for three faked folds of 12 images (two per class per fold), with
    fold `skip` left out, fold 1 holding fold 0's first id (`shared_id`), or fold `short_fold`
    missing its two dogs."""
    sweep = workspace / "out" / "sweeps" / "lenet_digits-folds3"
    for fold in range(3):
        if fold == skip:
            continue
        ids = [f"train-{4 * fold + row}" for row in range(4)]
        targets = [0, 0, 1, 1]
        if shared_id and fold == 1:
            ids[0] = "train-0"
        if fold == short_fold:
            ids, targets = ids[:2], targets[:2]
        write_fold_run(sweep / "lenet_digits" / f"fold{fold}", fold, ids, targets)
    return [str(sweep)]


def sweep_argv(workspace: Path, *flags: str) -> list[str]:
    return ["--cfg", QUICKSTART, "--output", str(workspace / "out"), *flags, "--opts", *FAST_OPTS,
            "TRAIN.EPOCHS", "1"]


ROWS: list[BadInput] = [
    BadInput("folds-fewer-than-two", lambda ws, run: quickstart_argv(ws, "DATA.FOLDS", "1"), ("DATA.FOLDS", "1")),
    BadInput("fold-outside-the-folds", lambda ws, run: quickstart_argv(ws, "DATA.FOLDS", "3", "DATA.FOLD", "3"),
             ("DATA.FOLD", "3")),
    BadInput("fold-without-folds", lambda ws, run: quickstart_argv(ws, "DATA.FOLD", "2"), ("DATA.FOLD", "DATA.FOLDS")),
    BadInput("folds-with-a-val-split", lambda ws, run: quickstart_argv(ws, "DATA.FOLDS", "3", "DATA.VAL_SPLIT", "0.1"),
             ("DATA.FOLDS", "DATA.VAL_SPLIT")),
    BadInput("folds-with-a-val-subset",
             lambda ws, run: quickstart_argv(ws, "DATA.FOLDS", "3", "DATA.VAL_SUBSET", "0.5"),
             ("DATA.FOLDS", "DATA.VAL_SUBSET")),
    # The digits have 1,438 train images, 131 to 158 of each class.
    BadInput("folds-more-than-a-class-has-images", lambda ws, run: quickstart_argv(ws, "DATA.FOLDS", "150"),
             ("DATA.FOLDS 150", "class")),
    BadInput("sweep-folds-fewer-than-two", lambda ws, run: sweep_argv(ws, "--folds", "1"), ("--folds", "1"),
             command="scripts/sweep.py"),
    BadInput("sweep-folds-and-a-fold-grid", lambda ws, run: sweep_argv(ws, "--folds", "3", "--grid", "DATA.FOLD=0,1"),
             ("--folds", "DATA.FOLD"), command="scripts/sweep.py"),
    BadInput("sweep-folds-disagreeing-with-opts",
             lambda ws, run: sweep_argv(ws, "--folds", "3") + ["DATA.FOLDS", "4"], ("--folds 3", "DATA.FOLDS 4"),
             command="scripts/sweep.py"),
    BadInput("assemble-a-run-that-is-no-fold", lambda ws, run: [str(ws / "out")], ("done", "DATA.FOLDS"),
             command="scripts/folds.py"),
    BadInput("assemble-one-run-folder", lambda ws, run: [str(run)], ("done", "sweep folder"),
             command="scripts/folds.py"),
    BadInput("assemble-with-a-fold-missing", lambda ws, run: three_folds(ws, skip=1), ("fold 1",),
             command="scripts/folds.py"),
    BadInput("assemble-an-image-in-two-folds", lambda ws, run: three_folds(ws, shared_id=True),
             ("train-0", "fold 0", "fold 1"), command="scripts/folds.py"),
    BadInput("assemble-a-fold-short-of-rows", lambda ws, run: three_folds(ws, short_fold=2),
             ("fold 2", "dog"), command="scripts/folds.py"),
]
