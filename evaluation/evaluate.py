"""Score a model on a split: `evaluate` on labelled data (loss, acc@1, acc@5, and the per-image
predictions when asked) and `predict` on the test split, both with optional test-time
augmentation and gathered from every rank under torchrun."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from data.sampler import gather_shards
from evaluation.metrics import ClassificationMeter
from evaluation.tta import tta_log_probs
from evaluation.val_report import ValPredictions
from utils.device import DeviceSetup


@torch.no_grad()
def evaluate(model, normalize, loader, criterion, setup: DeviceSetup, keep_predictions: bool = False,
             tta: str = "none") -> dict:
    """{"loss", "acc1", "acc5"} (accuracies in %) over a labelled loader, plus "predictions"
    (ValPredictions, in loader order) with `keep_predictions`.

    With `tta` (evaluation.tta's modes other than none), every number comes from the probabilities
    averaged over the views: the loss is their NLL, the confidence their top value.
    """
    model.eval()
    meter = ClassificationMeter(setup.device)
    kept = []
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
            confidence, predicted = logits.float().softmax(dim=1).max(dim=1)
            kept.append((targets, predicted, confidence))
    summary = meter.summary()
    if keep_predictions:
        # Under torchrun each rank holds a shard: gather them back into split order.
        rows = gather_shards(list(zip(*(torch.cat(column).cpu().tolist() for column in zip(*kept)))))
        targets, predicted, confidence = (np.asarray(column) for column in zip(*rows))
        summary["predictions"] = ValPredictions(targets, predicted, confidence.astype(np.float32))
    return summary


@torch.no_grad()
def predict(model, normalize, loader, setup: DeviceSetup, tta: str = "none") -> list[int]:
    """The predicted class of every image of `loader`'s split, in split order (gathered from
    every rank under torchrun); with `tta`, the class of the probabilities averaged over the views."""
    model.eval()
    predictions = []
    for images, _ in tqdm(loader, desc="test", leave=False, dynamic_ncols=True, disable=None):
        images = normalize(images.to(setup.device, non_blocking=True))
        if tta == "none":
            with setup.autocast():
                logits = model(images)
        else:
            logits = tta_log_probs(model, images, tta, setup.autocast)
        predictions.append(logits.argmax(dim=1).cpu())
    return gather_shards(torch.cat(predictions).tolist() if predictions else [])
