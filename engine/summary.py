"""summary.json: one file per run that says how it stands and how it did, kept current each epoch.

Fields: status (running, finished, interrupted or failed, with `error` for a failure), epochs
completed and planned, best val acc@1 and its epoch (counted from 1, as the log and the plots
count), the last epoch's metrics, total train time, median images/s, parameters, MACs, peak
memory (`peak_memory_mb` of the GPU; on CPU `peak_tensor_mb`, the same quantity measured over an
epoch's first steps, and `peak_rss_mb` of the whole process), and the config keys that differ
from the defaults. `best_<metric>` holds the best value of each other metric TEST.SELECT_METRIC
can choose that the run scored (verify_auc, val_log_loss, ...), over every epoch and weights.

`subsets` ({split: [images chosen, images in the split]}) appears only when val or test was
scored in part (DATA.VAL_SUBSET, DATA.TEST_SUBSET).
"""
from __future__ import annotations

import json
import math
import os
import statistics
import time
from typing import Any, Sequence

from evaluation.selection import LOWER_IS_BETTER, SELECT_METRICS

SUMMARY_FILE = "summary.json"
# "pruned": a search's pruner stopped it (studies/search.py), which rewrites the status.
STATUSES = ("running", "finished", "interrupted", "failed", "pruned")
# The GPU's figure, the CPU's figure of the same quantity, then the whole process's (CPU).
MEMORY_KEYS = ("peak_memory_mb", "peak_tensor_mb", "peak_rss_mb")


# Val acc@1 of the trained weights, of their EMA (TRAIN.EMA) and of their SWA (TRAIN.SWA, last epoch).
VAL_ACC1_KEYS = ("val_acc1", "val_acc1_ema", "val_acc1_swa")


def best_val_acc1(row: dict) -> float:
    """An epoch's val acc@1: that of its best-scoring weights, as best.pth is chosen."""
    return max(row[key] for key in VAL_ACC1_KEYS if key in row)


def summarize(rows: Sequence[dict], status: str, epochs_planned: int, parameters: int, macs: int | None,
              changed_config: dict[str, Any], error: str | None = None,
              subsets: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """The summary of a run from its metrics rows (one per epoch, as in metrics.jsonl); `subsets`
    are the splits scored in part (DATA.VAL_SUBSET, DATA.TEST_SUBSET), {split: (chosen, of)}."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    summary: dict[str, Any] = {"status": status, "epochs_completed": len(rows), "epochs_planned": epochs_planned}
    if error:
        summary["error"] = error
    if rows:
        best = max(rows, key=best_val_acc1)  # the first epoch that reached the best
        summary.update({
            "best_val_acc1": best_val_acc1(best), "best_epoch": best["epoch"] + 1, "last": dict(rows[-1]),
            "train_time_s": sum(row["epoch_time"] for row in rows),
            "median_images_per_sec": statistics.median(row["images_per_sec"] for row in rows),
        })
        for key in MEMORY_KEYS:
            values = [row[key] for row in rows if key in row]
            if values:
                summary[key] = max(values)
        # Verification (TEST.VERIFY_NUM_PAIRS, DATA.VERIFY_PAIRS) and the competition metrics
        # (TEST.METRICS): the best of any weights and epoch, which a diverged epoch's NaN is not.
        for key in [metric for metric in SELECT_METRICS if metric != "val_acc1"]:
            values = [row[name] for row in rows for name in (key, f"{key}_ema", f"{key}_swa")
                      if name in row and not math.isnan(row[name])]
            if values:
                summary[f"best_{key}"] = (min if key in LOWER_IS_BETTER else max)(values)
    if subsets:
        summary["subsets"] = {split: list(counts) for split, counts in subsets.items()}
    summary.update({"parameters": parameters, "macs": macs, "config": changed_config,
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return summary


def write_summary(run_dir: str, summary: dict[str, Any]) -> None:
    """Write run_dir/summary.json atomically."""
    path = os.path.join(run_dir, SUMMARY_FILE)
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with open(tmp_path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp_path, path)


def read_summary(run_dir: str) -> dict[str, Any] | None:
    """run_dir/summary.json, or None when it is missing or unreadable."""
    try:
        with open(os.path.join(run_dir, SUMMARY_FILE), encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None
