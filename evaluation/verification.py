"""Face-verification metrics: how well pair similarities tell "same person" from "different people".

`pair_similarities` turns embeddings and index pairs into cosine similarities; `verification_metrics`
reads the ROC curve of those scores (scikit-learn's `roc_curve`, every threshold kept) into AUC, EER,
TAR at a fixed FAR and the best accuracy with its threshold. A pair is called "same" when its
similarity is >= the threshold. Rates are fractions 0..1, not percentages.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

# Pairs gathered per step in pair_similarities: two (chunk, D) float64 blocks stay a few tens of MiB
# even for 10^5 pairs of 512-d embeddings.
SIMILARITY_CHUNK = 8192


@dataclass
class VerificationResult:
    """The verification metrics of one set of scored pairs, and the ROC curve they were read from."""
    auc: float  # area under the ROC curve
    eer: float  # equal error rate: where FPR = FNR (1 - TPR), linearly interpolated between ROC points
    tar: float  # true accept rate (TPR) at the largest ROC point whose FPR <= far
    far: float  # the false accept rate target that tar was read at
    accuracy: float  # best share of pairs called right over all thresholds
    threshold: float  # the similarity threshold of that accuracy (same pair when similarity >= threshold)
    fpr: np.ndarray  # the ROC curve, from (0, 0) to (1, 1), for plotting
    tpr: np.ndarray

    def metrics(self, prefix: str = "verify_") -> dict[str, float]:
        """The scalar metrics as a flat dict for metrics rows and tracking: {prefix + auc, eer, tar, acc,
        threshold} as plain floats."""
        values = {"auc": self.auc, "eer": self.eer, "tar": self.tar, "acc": self.accuracy, "threshold": self.threshold}
        return {f"{prefix}{name}": float(value) for name, value in values.items()}


def pair_similarities(embeddings: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The cosine similarity (float64, shape (M,)) of rows first[i] and second[i] of `embeddings` (N, D);
    a pair with an all-zero row scores 0."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    first, second = np.asarray(first), np.asarray(second)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (images, features), got shape {embeddings.shape}")
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(f"first and second must be 1-D index arrays of one length, got shapes {first.shape} "
                         f"and {second.shape}")
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    # A zero row has no direction; dividing it by 1 keeps it zero, so its dot products (its similarity) are 0.
    unit = embeddings / np.where(norms > 0, norms, 1.0)
    similarities = np.empty(len(first), dtype=np.float64)
    for start in range(0, len(first), SIMILARITY_CHUNK):
        chunk = slice(start, start + SIMILARITY_CHUNK)
        similarities[chunk] = np.einsum("ij,ij->i", unit[first[chunk]], unit[second[chunk]])
    # Rounding can put the dot product of two unit vectors a hair outside [-1, 1].
    return np.clip(similarities, -1.0, 1.0)


def check_scored_pairs(similarities: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(similarities as float64, same as bool), both 1-D of one length with both classes present."""
    similarities, same = np.asarray(similarities, dtype=np.float64), np.asarray(same)
    if similarities.ndim != 1 or same.ndim != 1 or len(similarities) != len(same):
        raise ValueError(f"similarities and same must be 1-D and of one length, got shapes {similarities.shape} "
                         f"and {same.shape}")
    if not np.isfinite(similarities).all():
        raise ValueError("similarities contain NaN or infinity; check the embeddings the pairs were scored from")
    if same.dtype != bool and not np.isin(same, (0, 1)).all():
        raise ValueError("same must hold booleans or 0/1 (1: the pair shows one person)")
    same = same.astype(bool)
    if same.all() or not same.any():
        kind = "same-person" if same.any() else "different-people"
        raise ValueError(f"all {len(same)} pairs are {kind} pairs; ROC AUC, EER and TAR need pairs of both kinds")
    return similarities, same


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The rate where FPR and FNR (1 - TPR) cross, interpolated linearly between the two ROC points around it."""
    # FPR - FNR only grows along the curve, from -1 at (0, 0) to 1 at (1, 1), so it crosses 0 once and a
    # crossing never sits at the first point.
    gap = fpr - (1.0 - tpr)
    after = int(np.argmax(gap >= 0))
    if gap[after] == 0:
        return float(fpr[after])
    before = after - 1
    weight = -gap[before] / (gap[after] - gap[before])
    return float(fpr[before] + weight * (fpr[after] - fpr[before]))


def verification_metrics(similarities: np.ndarray, same: np.ndarray, far: float = 1e-3) -> VerificationResult:
    """The VerificationResult of pairs scored `similarities` (higher: more alike) whose truth is `same`
    (True/1: one person), with TAR read at false accept rate `far`. Raises ValueError for pairs of one
    kind only (the ROC curve is undefined) or arrays of different lengths."""
    if not 0 <= far <= 1:
        raise ValueError(f"far must be a rate between 0 and 1, got {far}")
    similarities, same = check_scored_pairs(similarities, same)
    fpr, tpr, thresholds = roc_curve(same, similarities, drop_intermediate=False)
    positives, negatives = int(same.sum()), int((~same).sum())
    # Counts back from the rates (roc_curve divides them by P and N) so that accuracy is an exact fraction.
    correct = np.rint(tpr * positives) + negatives - np.rint(fpr * negatives)
    best = int(np.argmax(correct))
    threshold = float(thresholds[best])
    if not np.isfinite(threshold):
        # The first ROC point (nothing accepted) has threshold +inf; the next float above the highest score
        # accepts nothing too, so it is the same point, and a threshold that can be written down and reused.
        threshold = float(np.nextafter(thresholds[1], np.inf))
    return VerificationResult(
        auc=float(roc_auc_score(same, similarities)), eer=equal_error_rate(fpr, tpr),
        # TPR never falls along the curve, so the last point within the FAR target has the highest TPR there.
        tar=float(tpr[fpr <= far].max()), far=float(far), accuracy=float(correct[best] / len(same)),
        threshold=threshold, fpr=fpr, tpr=tpr)
