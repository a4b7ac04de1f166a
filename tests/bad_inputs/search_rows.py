"""Bad-input rows: scripts/search.py given a space it cannot search (an unknown key, a malformed
distribution, a low bound above the high one, a choice the key rejects), a metric the runs do not
score, a grid sampler over a continuous range, or a --storage that is no database; each refused before a trial starts."""
from __future__ import annotations

from pathlib import Path

from tests.bad_inputs.row import QUICKSTART, BadInput

SCRIPT = "scripts/search.py"


def search_argv(*space: str, flags: tuple[str, ...] = ()):
    def prepare(workspace: Path, run: Path) -> list[str]:
        return ["--cfg", QUICKSTART, *[item for entry in space for item in ("--space", entry)], "--trials", "2",
                "--output", str(workspace / "out"), *flags]
    return prepare


ROWS: list[BadInput] = [
    BadInput("search-an-unknown-key", search_argv("TRAIN.LRR=loguniform:1e-4:1e-1"), ("TRAIN.LRR", "TRAIN.LR"),
             command=SCRIPT),
    BadInput("search-a-malformed-distribution", search_argv("TRAIN.LR=loguniform:1e-4"), ("TRAIN.LR", "two bounds"),
             command=SCRIPT),
    BadInput("search-low-above-high", search_argv("TRAIN.LR=uniform:0.1:0.01"), ("0.1", "0.01", "not below"),
             command=SCRIPT),
    BadInput("search-a-choice-the-key-rejects", search_argv("MODEL.NAME=choice:lenet,resnet19"),
             ("MODEL.NAME", "resnet19", "resnet18"), command=SCRIPT),
    BadInput("search-a-metric-the-runs-do-not-score", search_argv("TRAIN.LR=loguniform:1e-4:1e-1",
                                                                  flags=("--metric", "val_log_loss")),
             ("val_log_loss", "TEST.METRICS"), command=SCRIPT),
    BadInput("search-a-storage-that-is-no-database", search_argv("TRAIN.LR=loguniform:1e-4:1e-1",
                                                                 flags=("--storage", "nodb://host/study")),
             ("--storage nodb://host/study", "cannot be opened"), command=SCRIPT),
    BadInput("search-a-grid-over-a-continuous-range", search_argv("TRAIN.LR=loguniform:1e-4:1e-1",
                                                                  flags=("--sampler", "grid")),
             ("--sampler grid", "TRAIN.LR"), command=SCRIPT),
]
