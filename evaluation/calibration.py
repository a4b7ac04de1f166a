"""How well a model's probabilities are calibrated, and how to calibrate them (Guo et al. 2017,
"On Calibration of Modern Neural Networks"): the confidence against how often the model is right
in equal-width confidence bins, the expected calibration error (ECE) they add up to, and
temperature scaling, one temperature fitted on val that divides the logits."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# Guo et al. 2017 bin the confidences into 15 equal-width bins.
ECE_BINS = 15


@dataclass
class ReliabilityBins:
    """Equal-width confidence bins ((m-1)/M, m/M], the first one holding 0 too: per bin, its
    images, the fraction of them predicted right and their mean confidence (NaN when empty)."""
    edges: np.ndarray  # M + 1 bin edges from 0 to 1
    counts: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray

    @property
    def expected_calibration_error(self) -> float:
        """The gap between accuracy and confidence in each bin, weighted by the bin's share of
        the images: 0 for a calibrated model, up to 1."""
        filled = self.counts > 0
        if not filled.any():
            return float("nan")
        weights = self.counts[filled] / self.counts.sum()
        return float(np.sum(weights * np.abs(self.accuracy[filled] - self.confidence[filled])))


def reliability_bins(confidences: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> ReliabilityBins:
    """Bin each image's confidence (the probability of its predicted class) with whether that
    prediction was `correct`, into `bins` equal-width bins over [0, 1]."""
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # right=True puts a confidence on an edge into the bin below it, as the bins ((m-1)/M, m/M] ask.
    index = np.digitize(confidences, edges[1:-1], right=True)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, weights=correct, minlength=bins) / counts
        confidence = np.bincount(index, weights=confidences, minlength=bins) / counts
    return ReliabilityBins(edges, counts, accuracy, confidence)


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over `bins` equal-width confidence bins: sum over the bins of (images in the bin / all
    images) * |accuracy in the bin - mean confidence in the bin|."""
    return reliability_bins(confidences, correct, bins).expected_calibration_error


def fit_temperature(logits: np.ndarray, targets: np.ndarray, max_iter: int = 100) -> float:
    """The temperature T > 0 that minimises the NLL of softmax(logits / T) on (`logits` (N, C),
    `targets`), by LBFGS as Guo et al. 2017: T > 1 softens an overconfident model's probabilities.
    Log-probabilities serve as logits (softmax takes no notice of a constant per row). Fitted on
    log T, so that T stays positive; 1 where there is nothing to fit on."""
    if len(targets) == 0:
        return 1.0
    logits_t = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    targets_t = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    log_temperature = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_temperature], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def nll() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits_t / log_temperature.exp(), targets_t)
        loss.backward()
        return loss

    optimizer.step(nll)
    temperature = float(log_temperature.detach().exp())
    return temperature if math.isfinite(temperature) else 1.0


def tempered_probabilities(log_probs: np.ndarray, temperature: float) -> np.ndarray:
    """float32 softmax(log_probs / temperature), row by row: the probabilities at `temperature`
    (1 gives back exp(log_probs)). The order of the classes in each row does not change."""
    scaled = np.asarray(log_probs, dtype=np.float64) / temperature
    if not scaled.size:
        return scaled.astype(np.float32)
    scaled -= scaled.max(axis=1, keepdims=True)
    probs = np.exp(scaled)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def nll_at_temperature(log_probs: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """The mean NLL of the true classes `targets` under softmax(log_probs / temperature)."""
    scaled = torch.as_tensor(np.asarray(log_probs), dtype=torch.float64) / temperature
    return float(torch.nn.functional.cross_entropy(scaled, torch.as_tensor(np.asarray(targets), dtype=torch.long)))
