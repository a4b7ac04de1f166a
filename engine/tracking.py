"""Experiment tracking: metrics.jsonl, steps.csv, curves.png and summary.json in the run folder,
with the same numbers forwarded to Weights & Biases (engine/wandb_run.py)."""
from __future__ import annotations

import csv
import json
import logging
import os
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from engine.preemption import Preempted
from engine.summary import summarize, write_summary
from engine.wandb_run import WandbRun
from evaluation.plots import curves_figure, save_figure

logger = logging.getLogger(__name__)


class MetricsFile:
    """Appends one JSON object per epoch to run_dir/metrics.jsonl."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, "metrics.jsonl")

    def drop_epochs_from(self, epoch: int) -> None:
        """Forget lines of epochs >= `epoch`: a resumed run logs them again from its checkpoint."""
        if not os.path.isfile(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            kept = [line for line in f if line.strip() and json.loads(line).get("epoch", -1) < epoch]
        tmp_path = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp_path, "w", encoding="utf-8") as f:
            f.writelines(kept)
        os.replace(tmp_path, self.path)

    def log(self, metrics: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
            f.flush()

    def read(self) -> list[dict[str, Any]]:
        """Every epoch logged so far, in order."""
        return read_metrics(os.path.dirname(self.path))


def read_metrics(run_dir: str) -> list[dict[str, Any]]:
    """The rows of run_dir/metrics.jsonl ([] when there is none); a torn last line is skipped."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def read_steps(run_dir: str) -> tuple[list[int], list[float]]:
    """(global steps, train losses) of run_dir/steps.csv, in order (empty when there is none); a
    torn or damaged row is skipped."""
    path = os.path.join(run_dir, "steps.csv")
    steps, losses = [], []
    if not os.path.isfile(path):
        return steps, losses
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            try:
                step, loss = int(row["global_step"]), float(row["train_loss"])
            except (KeyError, TypeError, ValueError):
                continue
            steps.append(step)
            losses.append(loss)
    return steps, losses


class StepsFile:
    """run_dir/steps.csv: the train loss and learning rate of every iteration, with its global step."""

    COLUMNS = ("global_step", "epoch", "lr", "train_loss")

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, "steps.csv")

    def drop_epochs_from(self, epoch: int) -> None:
        """Forget the steps of epochs >= `epoch`: a resumed run logs them again."""
        self._keep(lambda row: int(row["epoch"]) < epoch)

    def drop_steps_from(self, global_step: int) -> None:
        """Forget the steps >= `global_step`: a run resumed inside an epoch logs them again."""
        self._keep(lambda row: int(row["global_step"]) < global_step)

    def _keep(self, wanted) -> None:
        if not os.path.isfile(self.path):
            return
        with open(self.path, encoding="utf-8", newline="") as f:
            kept = [row for row in csv.DictReader(f) if wanted(row)]
        tmp_path = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp_path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, self.COLUMNS)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(tmp_path, self.path)

    def log(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows holding the COLUMNS keys."""
        new_file = not os.path.isfile(self.path)
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, self.COLUMNS)
            if new_file:
                writer.writeheader()
            writer.writerows(rows)


class RunTracker:
    """Everything a run records as it goes, behind three calls: `log_steps`, `log_epoch` and
    `set_status`. Writes metrics.jsonl, steps.csv, curves.png and summary.json in the run folder
    and forwards the numbers to `wandb_run`; with `enabled` False (torchrun's ranks other than 0)
    it writes nothing.

    `summary_fields` are summarize()'s fixed arguments: epochs_planned, parameters, macs and
    changed_config. What a resumed run logs again is forgotten first: epochs from `start_epoch`
    on, and steps from `first_step` on (the start of `start_epoch` when not given).
    """

    def __init__(self, run_dir: str, start_epoch: int, wandb_run: WandbRun, summary_fields: dict[str, Any],
                 first_step: int | None = None, enabled: bool = True, title: str = "", train_loss: str = "",
                 select_metric: str = "val_acc1"):
        self.run_dir = run_dir
        self.title = title  # curves.png's: the run, its model and data set
        # curves.png draws a train loss that is not the val loss apart, and marks best.pth's epoch.
        self.curve_labels = dict(title=title, train_loss=train_loss, select_metric=select_metric)
        self.enabled = enabled
        self.metrics_file, self.steps_file = MetricsFile(run_dir), StepsFile(run_dir)
        if enabled:
            self.metrics_file.drop_epochs_from(start_epoch)
            if first_step is None:
                self.steps_file.drop_epochs_from(start_epoch)
            else:
                self.steps_file.drop_steps_from(first_step)
        self.wandb_run = wandb_run
        self.summary_fields = summary_fields

    def log_steps(self, rows: Sequence[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        self.steps_file.log(rows)
        self.wandb_run.log_steps(rows)

    def log_epoch(self, metrics: dict[str, Any]) -> None:
        """One epoch's metrics; redraws curves.png and keeps summary.json at "running"."""
        if not self.enabled:
            return
        self.metrics_file.log(metrics)
        self.wandb_run.log_epoch(metrics)
        save_figure(curves_figure(self.metrics_file.read(), **self.curve_labels),
                    os.path.join(self.run_dir, "curves.png"))
        self.set_status("running")

    @contextmanager
    def recording_interruptions(self, resume_hint: str) -> Iterator[None]:
        """Mark summary.json running; if the block is interrupted (Ctrl-C) or fails, mark it so,
        close the W&B run and let the exception go on. Ctrl-C also logs `resume_hint`."""
        self.set_status("running")
        try:
            yield
        except Preempted:
            self.set_status("interrupted")
            raise
        except KeyboardInterrupt:
            self.set_status("interrupted")
            logger.info("interrupted; continue with: %s", resume_hint)
            raise
        except Exception as e:
            self.set_status("failed", error=f"{e.__class__.__name__}: {e}")
            raise

    def set_status(self, status: str, error: str | None = None) -> None:
        """Rewrite summary.json with `status` (see engine.summary.STATUSES). Any status but running
        ends the W&B run, after logging curves.png and the summary's numbers there."""
        if not self.enabled:
            return
        summary = summarize(self.metrics_file.read(), status, error=error, **self.summary_fields)
        write_summary(self.run_dir, summary)
        if status != "running":
            self.wandb_run.log_run_summary(summary, {"curves": os.path.join(self.run_dir, "curves.png")})
            self.wandb_run.finish()
