"""Experiment tracking: metrics.jsonl in the run folder, and Weights & Biases when enabled.

wandb is imported only when WANDB.MODE is not "disabled", and a missing package or an
unreachable server costs a warning, never the run.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any

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


class WandbRun:
    """A W&B run logging the config once and the epoch metrics after, or nothing at all.

    `mode` is online, offline or disabled. Online falls back to offline when the server can't be
    reached; offline runs print how to sync them later.
    """

    def __init__(self, mode: str, project: str, entity: str, name: str, run_dir: str, config: dict,
                 resume_id: str | None = None):
        self.run = None
        if mode == "disabled":
            return
        try:
            import wandb
        except ImportError:
            logger.warning("W&B: wandb is not installed, so nothing is logged there; pip install wandb, "
                           "or set WANDB.MODE disabled to silence this")
            return
        self._wandb = wandb
        for attempt_mode in ([mode, "offline"] if mode == "online" else [mode]):
            try:
                self.run = wandb.init(project=project, entity=entity or None, name=name, dir=run_dir,
                                      config=config, mode=attempt_mode, id=resume_id, resume="allow",
                                      settings=wandb.Settings(init_timeout=60, console="off", silent=True))
                break
            except Exception as e:  # network, auth, or service start-up failure: train anyway
                logger.warning("W&B: could not start in %s mode (%s)", attempt_mode, str(e).splitlines()[0][:200])
        if self.run is None:
            return
        if attempt_mode == "offline":
            logger.info("W&B: logging offline; sync later with: wandb sync %s", os.path.dirname(self.run.dir))

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
