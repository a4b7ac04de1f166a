"""The metrics Kaggle competitions score by (TEST.METRICS), computed on val from every image's
class probabilities beside acc@1 and acc@5: macro-F1, log-loss and top-k accuracy as
scikit-learn computes them, and the expected calibration error."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import f1_score, log_loss, top_k_accuracy_score

from evaluation.calibration import expected_calibration_error

# The names TEST.METRICS takes; each is logged and recorded as val_<name>.
METRIC_NAMES = ("macro_f1", "log_loss", "top_k_accuracy", "ece")
# Losses and calibration errors improve downwards; the others upwards.
LOWER_IS_BETTER = frozenset({"log_loss", "ece"})


def macro_f1(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """The unweighted mean of the per-class F1 scores of the top-1 predictions, over the classes
    that are true or predicted at least once (scikit-learn's average="macro"), in [0, 1]."""
    return float(f1_score(targets, probabilities.argmax(axis=1), average="macro", zero_division=0))


def multiclass_log_loss(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """The mean negative log-probability of the true class (scikit-learn's log_loss over every class)."""
    return float(log_loss(targets, probabilities, labels=np.arange(probabilities.shape[1])))


def top_k_accuracy(probabilities: np.ndarray, targets: np.ndarray, k: int) -> float:
    """The % of images whose true class is among the `k` most probable ones."""
    num_classes = probabilities.shape[1]
    if k >= num_classes:  # every class is among the top k (scikit-learn warns)
        return 100.0
    # Two classes are one score to scikit-learn: the second's probability.
    scores = probabilities[:, 1] if num_classes == 2 else probabilities
    return 100.0 * float(top_k_accuracy_score(targets, scores, k=k, labels=np.arange(num_classes)))


def calibration_error(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """The expected calibration error of the top-1 predictions (evaluation.calibration)."""
    return expected_calibration_error(probabilities.max(axis=1), probabilities.argmax(axis=1) == targets)


@dataclass(frozen=True)
class CompetitionMetrics:
    """Which of METRIC_NAMES to compute (TEST.METRICS) and the k of top_k_accuracy (TEST.TOP_K)."""
    names: tuple[str, ...]
    top_k: int = 3

    def score(self, probabilities: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """{name: value} for each of `names`, from the class probabilities (N, C) of N images and
        their true classes. Probabilities that are not finite (a diverged model), or no images,
        score NaN."""
        if not len(targets) or not np.isfinite(probabilities).all():
            return {name: float("nan") for name in self.names}
        compute = {"macro_f1": macro_f1, "log_loss": multiclass_log_loss, "ece": calibration_error,
                   "top_k_accuracy": lambda p, t: top_k_accuracy(p, t, self.top_k)}
        return {name: compute[name](probabilities, targets) for name in self.names}
