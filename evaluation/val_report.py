"""What a model gets right and wrong on the val split: a prediction grid, a confusion matrix,
a reliability diagram, the accuracy per class, and every prediction with its confidence.

Files written into a folder: predictions.png, confusion.png, calibration.png, per_class.csv and
val_predictions.csv (id, true, predicted, confidence; id is the image's index in the val split).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from evaluation.plots import confusion_figure, predictions_figure, reliability_figure, save_figure

# Images in the prediction grid, and the seed that picks them: fixed, so that every run and
# every checkpoint of a data set shows the same images.
GRID_IMAGES = 20
GRID_SEED = 0


@dataclass
class ValPredictions:
    """The model's answer for every val image, in val-split order."""
    targets: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray  # softmax probability of the predicted class
    # float32 (N, C): the log-probability of every class (after TTA), which val_probs.csv and
    # temperature scaling start from; None where only the answers were kept
    log_probs: np.ndarray | None = None

    @classmethod
    def from_log_probs(cls, targets: np.ndarray, log_probs: np.ndarray) -> "ValPredictions":
        """The answers that float32 (N, C) log-probabilities give: the top class and its probability."""
        if not len(log_probs):
            return cls(targets, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), log_probs)
        predicted = log_probs.argmax(axis=1)
        confidence = np.exp(log_probs[np.arange(len(log_probs)), predicted]).astype(np.float32)
        return cls(targets, predicted, confidence, log_probs)


def grid_indices(num_images: int, count: int = GRID_IMAGES, seed: int = GRID_SEED) -> np.ndarray:
    """`count` val indices (all when there are fewer), drawn once from `seed`, sorted."""
    count = min(count, num_images)
    return np.sort(np.random.default_rng(seed).choice(num_images, size=count, replace=False))


def per_class_accuracy(targets: np.ndarray, predicted: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """One row per class: class index, name, val images, correct ones, acc@1 in % (NaN without images)."""
    num_classes = len(class_names)
    images = np.bincount(targets, minlength=num_classes)
    correct = np.bincount(targets[predicted == targets], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = 100.0 * correct / images
    return pd.DataFrame({"class": np.arange(num_classes), "name": list(class_names), "images": images,
                         "correct": correct, "acc1": np.where(images > 0, accuracy, np.nan)})


def write_val_report(out_dir: str, predictions: ValPredictions, grid_images: np.ndarray,
                     class_names: Sequence[str], title: str = "") -> dict[str, str]:
    """Write the report files into `out_dir`; returns {"predictions": png, "confusion": png,
    "calibration": png}. `title` names the run, its model and data set in the pictures.

    `grid_images` are the uint8 images (N, 3, H, W) at `grid_indices(len(predictions.targets))`,
    as the model saw them before normalisation, i.e. as a person sees them.
    """
    targets, predicted = predictions.targets, predictions.predicted
    indices = grid_indices(len(targets))
    paths = {"predictions": os.path.join(out_dir, "predictions.png"),
             "confusion": os.path.join(out_dir, "confusion.png"),
             "calibration": os.path.join(out_dir, "calibration.png")}
    save_figure(predictions_figure(grid_images, [class_names[t] for t in targets[indices]],
                                   [class_names[p] for p in predicted[indices]],
                                   title=f"{title} | val predictions (red: wrong)" if title else ""),
                paths["predictions"])
    matrix = confusion_matrix(targets, predicted, labels=np.arange(len(class_names)))
    save_figure(confusion_figure(matrix, class_names, title=f"{title} | val confusion matrix" if title else ""),
                paths["confusion"])
    save_figure(reliability_figure(predictions.confidence, predicted == targets,
                                   title=f"{title} | val reliability diagram" if title else ""),
                paths["calibration"])
    per_class_accuracy(targets, predicted, class_names).to_csv(
        os.path.join(out_dir, "per_class.csv"), index=False, float_format="%.2f")
    pd.DataFrame({"id": np.arange(len(targets)), "true": targets, "predicted": predicted,
                  "confidence": predictions.confidence}).to_csv(
        os.path.join(out_dir, "val_predictions.csv"), index=False, float_format="%.4f")
    return paths
