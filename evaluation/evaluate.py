"""Score a model on a split: `evaluate` on labelled data (loss, acc@1, acc@5, and the per-image
predictions when asked) and `predict` on the test split, both with optional test-time
augmentation and gathered from every rank under torchrun."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from data.sampler import gather_shards
from evaluation.competition_metrics import CompetitionMetrics
from evaluation.metrics import ClassificationMeter
from evaluation.tta import tta_log_probs
from evaluation.val_report import ValPredictions
from utils.device import DeviceSetup


def gather_probabilities(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, C), true classes (N,)) of every image of the split, from this rank's
    batches of (targets, probabilities), gathered from every rank under torchrun."""
    rows = gather_shards([row for targets, probabilities in batches
                          for row in zip(targets.cpu().numpy(), probabilities.cpu().numpy())])
    if not rows:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.stack([row[1] for row in rows]), np.asarray([row[0] for row in rows], dtype=np.int64)


@torch.no_grad()
def evaluate(model, normalize, loader, criterion, setup: DeviceSetup, keep_predictions: bool = False,
             tta: str = "none", competition: CompetitionMetrics | None = None) -> dict:
    """{"loss", "acc1", "acc5"} (accuracies in %) over a labelled loader, plus "predictions"
    (ValPredictions, in loader order) with `keep_predictions`, and each of `competition`'s
    metrics (macro_f1, log_loss, ...) from the probabilities of every image.

    With `tta` (evaluation.tta's modes other than none), every number comes from the probabilities
    averaged over the views: the loss is their NLL, the confidence their top value.
    """
    model.eval()
    meter = ClassificationMeter(setup.device)
    kept, scored = [], []
    for images, targets in tqdm(loader, desc="val", leave=False, dynamic_ncols=True, disable=None):
        images = normalize(images.to(setup.device, non_blocking=True))
        targets = targets.to(setup.device, non_blocking=True)
        if tta == "none":
            with setup.autocast():
                logits = model(images)
            loss = criterion(logits.float(), targets)
        else:
            # Log-probabilities are logits too: top-k ranks them, and softmax gives back the probabilities.
            logits = tta_log_probs(model, images, tta, setup.autocast)
            loss = nn.functional.nll_loss(logits, targets)
        meter.update(loss, logits, targets)
        if keep_predictions:
            kept.append((targets, logits.float().log_softmax(dim=1)))
        if competition is not None:
            scored.append((targets, logits.float().softmax(dim=1)))
    summary = meter.summary()
    if competition is not None:
        summary.update(competition.score(*gather_probabilities(scored)))
    if keep_predictions:
        log_probs, targets = gather_probabilities(kept)
        summary["predictions"] = ValPredictions.from_log_probs(targets, log_probs)
    return summary


@torch.no_grad()
def predict_log_probs(model, normalize, loader, setup: DeviceSetup, tta: str = "none") -> np.ndarray:
    """float32 (N, C): the log-probability of every class for every image of `loader`'s split, in
    split order (gathered from every rank under torchrun); with `tta`, of the probabilities
    averaged over the views."""
    model.eval()
    kept = []
    for images, _ in tqdm(loader, desc="test", leave=False, dynamic_ncols=True, disable=None):
        images = normalize(images.to(setup.device, non_blocking=True))
        if tta == "none":
            with setup.autocast():
                logits = model(images)
            log_probs = logits.float().log_softmax(dim=1)
        else:
            log_probs = tta_log_probs(model, images, tta, setup.autocast)
        kept.append(log_probs.cpu().numpy())
    rows = gather_shards([row for batch in kept for row in batch])
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def predict(model, normalize, loader, setup: DeviceSetup, tta: str = "none") -> list[int]:
    """The predicted class of every image of `loader`'s split, in split order (gathered from
    every rank under torchrun); with `tta`, the class of the probabilities averaged over the views."""
    log_probs = predict_log_probs(model, normalize, loader, setup, tta)
    return log_probs.argmax(axis=1).tolist() if len(log_probs) else []
