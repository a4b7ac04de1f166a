"""Which val metric makes a checkpoint the best one (TEST.SELECT_METRIC), which way is better,
and the run's best so far."""
from __future__ import annotations

import math
from dataclasses import dataclass

from evaluation import competition_metrics

# Metric name -> the key of one set of weights' val scores (engine.epoch_scores.score_weights) that
# holds it; the competition metrics (TEST.METRICS) are there when computed.
SELECT_METRICS = {"val_acc1": "acc1", "verify_auc": "verify_auc", "verify_eer": "verify_eer",
                  **{f"val_{name}": name for name in competition_metrics.METRIC_NAMES}}
# Error rates, losses and calibration errors improve downwards; accuracies and areas upwards.
LOWER_IS_BETTER = frozenset({"verify_eer", *(f"val_{name}" for name in competition_metrics.LOWER_IS_BETTER)})
# The weights a checkpoint can score and ship (trained, their EMA, their SWA), as the log names them.
WEIGHT_LABELS = {"model": "trained", "ema": "EMA", "swa": "SWA"}


def selected_score(stats: dict, metric: str) -> float:
    """The value of `metric` in one set of weights' val scores."""
    return stats[SELECT_METRICS[metric]]


def is_better(value: float, best: float | None, metric: str) -> bool:
    """Whether `value` beats `best` (None: nothing yet, so any value does) for `metric`; a tie does
    not. NaN (the log-loss of a diverged model) beats nothing, and anything beats it."""
    if best is None or (math.isnan(best) and not math.isnan(value)):
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


# How the log names each metric.
METRIC_LABELS = {"val_acc1": "val acc@1", "verify_auc": "verify AUC", "verify_eer": "verify EER",
                 "val_macro_f1": "val macro-F1", "val_log_loss": "val log-loss", "val_ece": "val ECE",
                 "val_top_k_accuracy": "val top-k-accuracy"}
# Metrics logged as plain numbers, not in % (verify_eer is a fraction logged in %).
PLAIN_NUMBER_METRICS = frozenset({"verify_auc", "val_macro_f1", "val_log_loss", "val_ece"})


def format_score(value: float | None, metric: str) -> str:
    """For the log: val_acc1 and val_top_k_accuracy (percentages) and verify_eer (a fraction) in
    %, the others (AUC, macro-F1, log-loss, ECE) as plain numbers; 'none' before the first epoch."""
    if value is None:
        return "none"
    if metric in PLAIN_NUMBER_METRICS:
        return f"{value:.4f}"
    return f"{100 * value:.2f}%" if metric == "verify_eer" else f"{value:.2f}%"


def best_of(scores: dict[str, dict], best: float | None, metric: str) -> tuple[str, bool]:
    """(the weights among `scores` (model, ema, swa) that score best on `metric`, the first of
    them on a tie; whether that beats `best`). The first epoch of a run is its best so far,
    even at 0% accuracy."""
    names = list(scores)
    name = names[0]
    for candidate in names[1:]:
        if is_better(selected_score(scores[candidate], metric), selected_score(scores[name], metric), metric):
            name = candidate
    return name, is_better(selected_score(scores[name], metric), best, metric)


@dataclass
class BestSoFar:
    """A run's best value of `metric` and the weights (model, ema, swa) that reached it, the
    epochs since (for TRAIN.EARLY_STOP_PATIENCE), and which weights scored best in the last
    epoch scored (what --eval of that epoch's checkpoint uses). Kept in every checkpoint."""
    metric: str = "val_acc1"
    score: float | None = None
    weights: str = "model"
    epochs_since: int = 0
    last_epoch_weights: str = "model"

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> "BestSoFar":
        return cls(checkpoint.get("best_metric", "val_acc1"), checkpoint["best_score"],
                   checkpoint.get("best_weights") or "model", checkpoint.get("epochs_since_best", 0),
                   checkpoint.get("eval_weights") or "model")

    def checkpoint_fields(self) -> dict:
        return {"best_metric": self.metric, "best_score": self.score, "best_weights": self.weights,
                "epochs_since_best": self.epochs_since, "eval_weights": self.last_epoch_weights}

    def describe(self, with_label: bool = False) -> str:
        """The best so far for the log: '97.50%' (val acc@1), 'AUC 0.9312', 'EER 6.80%'; with
        `with_label`, 'val acc@1 97.50%', 'verify AUC 0.9312', ..."""
        label = METRIC_LABELS[self.metric] if with_label else METRIC_LABELS[self.metric].split(" ")[-1]
        value = format_score(self.score, self.metric)
        return value if label == "acc@1" else f"{label} {value}"

    @property
    def label(self) -> str:
        return METRIC_LABELS[self.metric]

    def ends_run_unless_improved(self, scores: dict[str, dict], patience: int) -> bool:
        """Whether early stopping ends the run after an epoch with `scores`, unless a later
        contender (the SWA weights) beats the best."""
        return not best_of(scores, self.score, self.metric)[1] and 0 < patience <= self.epochs_since + 1

    def record(self, scores: dict[str, dict]) -> bool:
        """Take an epoch's val scores; returns whether they set a new best."""
        self.last_epoch_weights, is_best = best_of(scores, self.score, self.metric)
        if is_best:
            self.score = selected_score(scores[self.last_epoch_weights], self.metric)
            self.weights, self.epochs_since = self.last_epoch_weights, 0
        else:
            self.epochs_since += 1
        return is_best
