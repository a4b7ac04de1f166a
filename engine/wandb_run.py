"""A Weights & Biases run that never costs the training run.

wandb is imported only when WANDB.MODE is not "disabled", and a missing package or an
unreachable server costs a warning, never the run.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Sequence

logger = logging.getLogger(__name__)


class WandbRun:
    """A W&B run logging the config once, then metrics and pictures, or nothing at all.

    `mode` is online, offline or disabled. Online falls back to offline when the server can't be
    reached; offline runs print how to sync them later. Epoch metrics are plotted against
    `epoch`, per-step ones (`step/...`) against `global_step`.
    """

    def __init__(self, mode: str, project: str, entity: str, name: str, run_dir: str, config: dict,
                 resume_id: str | None = None, group: str = ""):
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
                                      group=group or None, config=config, mode=attempt_mode, id=resume_id,
                                      resume="allow",
                                      settings=wandb.Settings(init_timeout=60, console="off", silent=True))
                break
            except Exception as e:  # network, auth, or service start-up failure: train anyway
                logger.warning("W&B: could not start in %s mode (%s)", attempt_mode, str(e).splitlines()[0][:200])
        if self.run is None:
            return
        if attempt_mode == "offline":
            logger.info("W&B: logging offline; sync later with: wandb sync %s", os.path.dirname(self.run.dir))
        self.run.define_metric("epoch")
        self.run.define_metric("global_step")
        self.run.define_metric("step/*", step_metric="global_step")
        self._epoch_keys: set[str] = set()

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    def log_epoch(self, metrics: dict[str, Any]) -> None:
        """One epoch's metrics (holding `epoch`), plotted against the epoch."""
        if self.run is None:
            return
        for key in metrics.keys() - self._epoch_keys - {"epoch"}:
            self.run.define_metric(key, step_metric="epoch")
            self._epoch_keys.add(key)
        self.run.log(metrics)

    def log_steps(self, rows: Sequence[dict[str, Any]]) -> None:
        """Per-iteration rows as StepsFile writes them, plotted against the global step."""
        if self.run is None:
            return
        for row in rows:
            self.run.log({"global_step": row["global_step"], "step/train_loss": row["train_loss"],
                          "step/lr": row["lr"]})

    def log_val_report(self, image_paths: dict[str, str], targets: Sequence[int], predicted: Sequence[int],
                       class_names: Sequence[str]) -> None:
        """The val report's pictures (e.g. {"predictions": path}) and W&B's own confusion matrix."""
        if self.run is None:
            return
        wandb = self._wandb
        self.run.log({**{name: wandb.Image(path) for name, path in image_paths.items()},
                      "confusion_matrix": wandb.plot.confusion_matrix(y_true=list(targets), preds=list(predicted),
                                                                      class_names=list(class_names))})

    def log_images(self, image_paths: dict[str, str | None], epoch: int) -> None:
        """Pictures by name (e.g. {"roc": path}) at `epoch`; entries whose path is None are skipped."""
        images = {name: path for name, path in image_paths.items() if path}
        if self.run is None or not images:
            return
        self.run.log({"epoch": epoch, **{name: self._wandb.Image(path) for name, path in images.items()}})

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
