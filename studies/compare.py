"""Compare runs: read run folders back, tell them apart by the config keys that differ, and
write one graph per metric (every run's curve overlaid) and a table with one row per run.

`scripts/compare.py` and `scripts/sweep.py` are thin command lines around `compare_runs`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd
import yaml

from config import flatten
from engine.summary import MEMORY_KEYS, read_summary
from engine.tracking import read_metrics
from evaluation.plots import comparison_figure, save_figure
from utils.bounded_yaml import load_yaml

DEFAULT_METRICS = ("train_loss", "val_loss", "val_acc1")
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


def _format(value: Any) -> str:
    """A config value as a label shows it: 0.0003 as 0.0003, a blank (a switched-off key) as none."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value not in ("", None) else "none"


def run_label(record: RunRecord, keys: Sequence[str]) -> str:
    """`TRAIN.LR=0.0003, DATA.BATCH_SIZE=64`, or the folder name when no key tells the runs apart."""
    if keys and record.config:
        return ", ".join(f"{key}={_format(record.config.get(key))}" for key in keys)
    return os.path.basename(os.path.normpath(record.run_dir))


def _relative_folders(records: Sequence[RunRecord]) -> list[str]:
    """Each run's folder relative to the runs' common parent: short, and different for every run."""
    parents = [os.path.dirname(os.path.abspath(record.run_dir)) for record in records]
    common = os.path.commonpath(parents) if parents else ""
    return [os.path.relpath(os.path.abspath(record.run_dir), common) for record in records]


def comparison_table(records: Sequence[RunRecord], keys: Sequence[str]) -> pd.DataFrame:
    """One row per run: its folder (relative to the runs' common parent), the differing keys,
    status, best val acc@1 and its epoch, epochs done, median epoch time and images/s,
    parameters and peak memory."""
    table = []
    for record, folder in zip(records, _relative_folders(records)):
        summary, rows = record.summary or {}, record.rows
        row = {"run": folder, **{key: record.config.get(key) for key in keys}, "status": record.status,
               "best_val_acc1": max((r["val_acc1"] for r in rows), default=None),
               "best_epoch": (max(rows, key=lambda r: r["val_acc1"])["epoch"] + 1) if rows else None,
               "epochs": len(rows),
               "epoch_time_s": pd.Series([r["epoch_time"] for r in rows], dtype=float).median(),
               "images_per_sec": pd.Series([r["images_per_sec"] for r in rows], dtype=float).median(),
               "parameters": summary.get("parameters")}
        for key in MEMORY_KEYS:
            values = [r[key] for r in rows if key in r]
            row[key] = max(values) if values else None
        table.append(row)
    frame = pd.DataFrame(table)
    present_memory = [key for key in MEMORY_KEYS if key in frame and frame[key].notna().any()]
    return frame.drop(columns=[key for key in MEMORY_KEYS if key in frame and key not in present_memory])


def markdown_table(frame: pd.DataFrame) -> str:
    """The table as markdown: numbers to 4 significant digits, whole numbers whole, blanks for missing."""
    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return ""
        if isinstance(value, float):
            return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
        return str(value)
    return frame.map(cell).to_markdown(index=False)


def compare_runs(records: Sequence[RunRecord], metrics: Sequence[str], out_png: str) -> pd.DataFrame:
    """Write the graphs to `out_png` and the table beside it (same name, .csv), creating the
    folder if needed; return the table."""
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    keys = differing_keys(records)
    labels = [run_label(record, keys) for record in records]
    # Runs with the same label (same keys) would share a legend entry: add where each one lives.
    folders = _relative_folders(records)
    curves = {}
    for label, folder, record in zip(labels, folders, records):
        curves[f"{label} ({folder})" if labels.count(label) > 1 else label] = record.rows
    save_figure(comparison_figure(curves, metrics), out_png)
    table = comparison_table(records, keys)
    table.to_csv(os.path.splitext(out_png)[0] + ".csv", index=False, float_format="%.4g")
    return table
