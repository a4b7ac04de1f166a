"""probs.json: what made the probability files beside it (val_probs.csv, test_probs.csv).

    {"checkpoint": "../best.pth", "tta": "hflip", "temperature": 1.0}

A run writes it at its end (checkpoint "best.pth", or null when SAVE.CHECKPOINTS keeps no best.pth
and the final weights predicted), and `main.py --eval`/`--predict` in its eval-<time> folder. The
checkpoint is stored relative to the record's folder, so that a run folder moved or copied whole
still names its own checkpoint. scripts/ensemble.py reads it to tell whether saved probabilities
are those of the checkpoint and TTA it asks for, and predicts anew when they are not.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

PROBS_RECORD = "probs.json"


@dataclass(frozen=True)
class ProbsRecord:
    """The record of one folder's probability files."""
    checkpoint: str | None  # absolute path of the checkpoint that predicted them; None: a run's final weights
    tta: str  # TEST.TTA they were predicted with
    temperature: float  # the TEST.TEMPERATURE applied (fitted, for auto)


def write_probs_record(folder: str, checkpoint: str | None, tta: str, temperature: float) -> str:
    """Write `folder`/probs.json (atomically) for the probability files in `folder`; returns its path."""
    relative = os.path.relpath(os.path.abspath(checkpoint), os.path.abspath(folder)) if checkpoint else None
    path = os.path.join(folder, PROBS_RECORD)
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with open(tmp_path, "w", encoding="utf-8") as f:
        json.dump({"checkpoint": relative, "tta": tta, "temperature": float(temperature)}, f, indent=1)
        f.write("\n")
    os.replace(tmp_path, path)
    return path


def read_probs_record(folder: str) -> ProbsRecord | None:
    """The record in `folder`; None when there is none or it cannot be read as one (the files beside
    it are then of unknown origin: a reader predicts anew rather than trust them)."""
    try:
        with open(os.path.join(folder, PROBS_RECORD), encoding="utf-8") as f:
            stored = json.load(f)
        checkpoint, tta, temperature = stored["checkpoint"], stored["tta"], float(stored["temperature"])
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(tta, str) or not (checkpoint is None or isinstance(checkpoint, str)):
        return None
    # normpath, not realpath: a link in the way is followed when the caller compares realpaths.
    absolute = os.path.normpath(os.path.join(os.path.abspath(folder), checkpoint)) if checkpoint else None
    return ProbsRecord(absolute, tta, temperature)
