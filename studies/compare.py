"""Compare runs: read run folders back, tell them apart by the config keys that differ, and
write one graph per metric (every run's curve overlaid, per epoch or per step), and a table with
one row per run that holds the numbers the homework asks for.

`scripts/compare.py` and `scripts/sweep.py` are thin command lines around `compare_runs`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd
import yaml

from config import flatten
from data.subset import subset_note
from engine.summary import MEMORY_KEYS, best_val_acc1, read_summary
from engine.tracking import read_metrics, read_steps
from evaluation.comparison_figure import DEFAULT_SMOOTHING, comparison_figure, steps_comparison_figure
from evaluation.plots import save_figure
from studies.run_labels import short_label
from utils.bounded_yaml import load_yaml

DEFAULT_METRICS = ("train_loss", "val_loss", "val_acc1")
# The columns of steps.csv that `--x step` can plot.
STEP_METRICS = ("train_loss",)
# Table columns that count things, written as whole numbers.
INTEGER_COLUMNS = ("best_epoch", "epochs", "parameters")
# A cross-entropy train loss this many times what guessing scores (ln of the class count), or a
# last one this many times the lowest it reached and above guessing, has diverged.
DIVERGED_RISE = 2.0
# Keys that name where and how a run was kept, not what it trained: never used to tell runs apart.
BOOKKEEPING_KEYS = frozenset({
    "TAG", "OUTPUT", "MODEL.RESUME", "EVAL_MODE", "DEVICE", "DATA.DATA_PATH", "DATA.NUM_WORKERS", "DATA.PIN_MEMORY",
    "DATA.PERSISTENT_WORKERS", "PRINT_FREQ", "SAVE_FREQ", "SAVE.CHECKPOINTS", "WANDB.MODE", "WANDB.PROJECT",
    "WANDB.ENTITY", "WANDB.GROUP"})


@dataclass
class RunRecord:
    """What a run folder holds: its flat config, metrics rows and summary (each may be missing)."""
    run_dir: str
    config: dict[str, Any] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    summary: dict | None = None
    status_override: str | None = None  # e.g. a sweep's "failed (exit 2)" for a run that wrote nothing
    num_classes: int | None = None  # from classes.json: what guessing would score

    @property
    def status(self) -> str:
        if self.status_override:
            return self.status_override
        if not os.path.isdir(self.run_dir):
            return "missing"
        if self.summary:
            return self.summary.get("status", "unknown")
        return "no metrics yet" if not self.rows else "no summary"


def load_run(run_dir: str) -> RunRecord:
    """The record of one run folder; a missing folder or file gives an empty part, never an error."""
    record = RunRecord(run_dir)
    try:
        with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as f:
            stored = load_yaml(f)
        record.config = flatten(stored) if isinstance(stored, dict) else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):  # a damaged config.yaml: the run without its keys
        pass
    record.rows = read_metrics(run_dir)
    record.summary = read_summary(run_dir)
    try:
        with open(os.path.join(run_dir, "classes.json"), encoding="utf-8") as f:
            classes = json.load(f)
        record.num_classes = len(classes) if isinstance(classes, list) and classes else None
    except (OSError, ValueError):  # no classes.json yet, or a damaged one: chance level unknown
        pass
    return record


def find_runs(paths: Sequence[str]) -> tuple[list[RunRecord], list[str]]:
    """(records, problems): each path is a run folder (it holds config.yaml) or a folder searched
    for runs at any depth; a path with no run is reported as a problem, not an error."""
    records, problems = [], []
    for path in paths:
        if not os.path.isdir(path):
            problems.append(f"{path}: no such folder")
            continue
        found = []
        for folder, subfolders, files in os.walk(path):
            if "config.yaml" in files:
                found.append(folder)
                subfolders.clear()  # a run's own subfolders (wandb, eval-*) hold no runs
        found.sort()
        if not found:
            problems.append(f"{path}: no runs (no folder with a config.yaml)")
        records.extend(load_run(folder) for folder in found)
    return records, problems


def differing_keys(records: Sequence[RunRecord]) -> list[str]:
    """Config keys whose values differ between the runs, bookkeeping keys left out, in config order."""
    configs = [record.config for record in records if record.config]
    keys = list(dict.fromkeys(key for config in configs for key in config))
    return [key for key in keys if key not in BOOKKEEPING_KEYS
            and len({repr(config.get(key)) for config in configs}) > 1]


def run_label(record: RunRecord, keys: Sequence[str]) -> str:
    """`lenet, lr 3e-4, bs 64` (studies/run_labels.py), or the folder name when no key tells the
    runs apart."""
    if keys and record.config:
        return short_label(record.config, keys)
    return os.path.basename(os.path.normpath(record.run_dir))


def has_diverged(record: RunRecord) -> bool:
    """Whether the run's loss blew up: the NaN/Inf guard stopped it (TRAIN.MAX_NONFINITE), or an
    epoch's train loss is NaN or Inf. For a cross-entropy train loss (TRAIN.LOSS ce, with or
    without smoothing and mixing), also when an epoch's train loss was more than DIVERGED_RISE
    times what guessing scores (ln of the class count: confidently wrong), or when it ended above
    guessing after having come down (it learned, then lost it)."""
    summary = record.summary or {}
    if summary.get("status") == "failed" and "NaN or Inf" in str(summary.get("error", "")):
        return True
    losses = [row["train_loss"] for row in record.rows if isinstance(row.get("train_loss"), (int, float))]
    if any(not math.isfinite(loss) for loss in losses):
        return True
    if not losses or not record.num_classes or record.num_classes < 2 or record.config.get("TRAIN.LOSS", "ce") != "ce":
        return False
    guessing = math.log(record.num_classes)
    return max(losses) > DIVERGED_RISE * guessing or (losses[-1] > guessing and losses[-1] > DIVERGED_RISE * min(losses))


def table_status(record: RunRecord) -> str:
    """finished, interrupted, failed or running as the run says; diverged when it ended so."""
    status = record.status
    return "diverged" if status in ("finished", "failed") and has_diverged(record) else status


def _relative_folders(records: Sequence[RunRecord]) -> list[str]:
    """Each run's folder relative to the runs' common parent: short, and different for every run."""
    parents = [os.path.dirname(os.path.abspath(record.run_dir)) for record in records]
    common = os.path.commonpath(parents) if parents else ""
    return [os.path.relpath(os.path.abspath(record.run_dir), common) for record in records]


def comparison_table(records: Sequence[RunRecord], keys: Sequence[str], labels: Sequence[str]) -> pd.DataFrame:
    """One row per run, in the homework's order: what was changed (its folder relative to the
    runs' common parent, its legend label and the full value of each differing key), how well
    it did (status, best val acc@1 and its epoch as best.pth was chosen, last val acc@1, best and
    last train acc@1, epochs; best verification AUC and EER when scored), how long it took and
    what it cost (total train time, median images/s, parameters, peak memory). Numbers come
    from summary.json where the run has one, else from its metrics rows."""
    table = []
    for record, folder, label in zip(records, _relative_folders(records), labels):
        summary, rows = record.summary or {}, record.rows
        train_acc1 = [r["train_acc1"] for r in rows if r.get("train_acc1") is not None]
        best = max(rows, key=best_val_acc1) if rows else None
        row = {"run": folder, "label": label, **{key: record.config.get(key) for key in keys},
               "status": table_status(record),
               "best_val_acc1": summary.get("best_val_acc1", best_val_acc1(best) if best else None),
               "best_epoch": summary.get("best_epoch", best["epoch"] + 1 if best else None),
               "last_val_acc1": rows[-1].get("val_acc1") if rows else None,
               "best_train_acc1": max(train_acc1, default=None),
               "last_train_acc1": train_acc1[-1] if train_acc1 else None,
               "epochs": len(rows),
               **{key: summary.get(key) for key in ("best_verify_auc", "best_verify_eer")},
               "train_time_s": summary.get("train_time_s", sum(r["epoch_time"] for r in rows) if rows else None),
               "images_per_sec": summary.get("median_images_per_sec",
                                             pd.Series([r["images_per_sec"] for r in rows], dtype=float).median()),
               "parameters": summary.get("parameters")}
        for key in MEMORY_KEYS:
            values = [r[key] for r in rows if key in r]
            row[key] = summary.get(key, max(values) if values else None)
        table.append(row)
    frame = pd.DataFrame(table)
    for column in INTEGER_COLUMNS:  # 11173962 parameters, not 1.117e+07; blank where unknown
        frame[column] = pd.to_numeric(frame[column]).round().astype("Int64")
    optional = [*MEMORY_KEYS, "best_verify_auc", "best_verify_eer"]
    return frame.drop(columns=[key for key in optional if key in frame and not frame[key].notna().any()])


def markdown_table(frame: pd.DataFrame) -> str:
    """The table as markdown: numbers to 4 significant digits, whole numbers whole, blanks for missing."""
    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return ""
        if isinstance(value, float):
            return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
        return str(value)
    return frame.map(cell).to_markdown(index=False)


def comparison_title(records: Sequence[RunRecord], name: str) -> str:
    """`name: lenet vs alexnet on digits`: what the runs trained, on what; `name` is the sweep's or
    the comparison's."""
    def values(key: str) -> str:
        found = list(dict.fromkeys(str(record.config[key]) for record in records if record.config.get(key)))
        return " vs ".join(found) if len(found) <= 4 else f"{len(found)} {key.split('.')[-1].lower()}s"
    what = f"{values('MODEL.NAME') or 'runs'} on {values('DATA.DATASET') or 'their data'}"
    # Scores from part of a split (DATA.VAL_SUBSET) must not pass for the whole split's.
    notes = list(dict.fromkeys(subset_note((record.summary or {}).get("subsets") or {}) for record in records))
    notes = [note for note in notes if note]
    subsets = f" ({notes[0]})" if len(notes) == 1 else " (scored on subsets; see each run)" if notes else ""
    return (f"{name}: {what}" if name else what) + subsets


def compare_runs(records: Sequence[RunRecord], metrics: Sequence[str], out_png: str, name: str = "",
                 x: str = "epoch", smoothing: float = DEFAULT_SMOOTHING) -> pd.DataFrame:
    """Write the graphs to `out_png` and the table beside it (same name, .csv), creating the
    folder if needed; return the table. `x` is "epoch" (the metrics per epoch) or "step" (the
    train loss of every step, from steps.csv, EMA-smoothed with weight `smoothing`); `name`
    titles the figure with the sweep or comparison."""
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    keys = differing_keys(records)
    labels = [run_label(record, keys) for record in records]
    # Runs with the same label (same keys) would share a legend entry: add where each one lives.
    folders = _relative_folders(records)
    labels = [f"{label} ({folder})" if labels.count(label) > 1 else label for label, folder in zip(labels, folders)]
    diverged = [label for label, record in zip(labels, records) if has_diverged(record)]
    title = comparison_title(records, name)
    if x == "step":
        figure = steps_comparison_figure({label: read_steps(record.run_dir) for label, record in zip(labels, records)},
                                         title, diverged, smoothing)
    else:
        figure = comparison_figure(dict(zip(labels, (record.rows for record in records))), metrics, title, diverged)
    save_figure(figure, out_png)
    table = comparison_table(records, keys, labels)
    table.to_csv(os.path.splitext(out_png)[0] + ".csv", index=False, float_format="%.6g")
    return table
