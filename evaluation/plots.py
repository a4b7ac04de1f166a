"""The pictures of one run or one study: a run's curves, predictions, confusion matrix and
reliability diagram, the throughput scan, the LR range test, the augmentation preview and the
face-verification ROC curves. The comparison of runs is evaluation/comparison_figure.py.

Each `*_figure` function returns a matplotlib Figure built with the object-oriented API (no
pyplot, so no display and no global state), and `save_figure` writes it. Tests inspect the
Figure objects (lines, titles), not pixels.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from evaluation.calibration import ECE_BINS, reliability_bins
from evaluation.plot_axes import MIN_FRACTION_SPAN, MIN_PERCENT_SPAN, finite, loss_limits, use_log_scale, widen_to
from evaluation.selection import LOWER_IS_BETTER, SELECT_METRICS

# Wrong predictions are drawn in this colour in the prediction grid.
WRONG_COLOR = "tab:red"
RIGHT_COLOR = "black"
# Class names are written along the confusion matrix's axes up to this many classes.
MAX_LABELLED_CLASSES = 30
# Cell counts are written inside the confusion matrix up to this many classes.
MAX_ANNOTATED_CLASSES = 12
# The ROC figure's log FPR axis starts here; points at FPR 0 are drawn on this edge.
MIN_ROC_FPR = 1e-4


def save_figure(figure: Figure, path: str, dpi: int = 100) -> None:
    """Write `figure` as PNG to `path` atomically, so that a reader never sees half a file."""
    tmp_path = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        figure.savefig(tmp_path, format="png", dpi=dpi, bbox_inches="tight")
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


# The val metric that picks best.pth (TEST.SELECT_METRIC), the metrics rows' keys that hold it (the
# trained weights, their EMA and their SWA) and which way is better.
BEST_KEYS = {metric: ((metric, f"{metric}_ema", f"{metric}_swa"), min if metric in LOWER_IS_BETTER else max)
             for metric in SELECT_METRICS}
WEIGHT_SUFFIXES = (("", ""), ("_ema", " (EMA)"), ("_swa", " (SWA)"))  # TRAIN.EMA, TRAIN.SWA
BEST_COLOR = "tab:gray"


def best_epoch(rows: Sequence[dict], select_metric: str) -> tuple[int, float] | None:
    """(epoch counted from 1, value) where `select_metric` was best, as best.pth is chosen: the
    best of any weights, the first epoch on a tie; None when no row has the metric (a NaN, the
    log-loss of a diverged epoch, is none)."""
    keys, best_of = BEST_KEYS[select_metric]
    scored = [(row["epoch"] + 1, max(values) if best_of is max else min(values)) for row in rows
              for values in [[row[key] for key in keys if row.get(key) is not None and not math.isnan(row[key])]]
              if values]
    if not scored:
        return None
    value = best_of(value for _, value in scored)
    return next(point for point in scored if point[1] == value)


def _plot_metric(axis, rows: Sequence[dict], key: str, label: str) -> list[float]:
    """Plot `key` of the rows that have it against the epoch (from 1); returns the values."""
    points = [(row["epoch"] + 1, row[key]) for row in rows if row.get(key) is not None]
    if points:
        axis.plot(*zip(*points), marker="o", markersize=3, label=label)
    return [value for _, value in points]


def curves_figure(rows: Sequence[dict], title: str = "", train_loss: str = "", val_loss: str = "cross-entropy",
                  select_metric: str = "val_acc1") -> Figure:
    """A run's curves, one point per epoch (x counted from 1), from its metrics rows: loss, acc@1
    (train, val, and val of the EMA and SWA weights where the rows have them) and, when pairs
    were scored, verification's AUC and EER. `title` names the run.

    `train_loss` names the train loss when it is not `val_loss` (ArcFace, CosFace, triplet,
    mixup's soft targets, label smoothing): the two then get separate graphs, each labelled with
    what it is, since one axis would read a metric loss of 30 against a cross-entropy of 0.1. The
    epoch best.pth came from (by `select_metric`) is marked with a dotted line in every graph and
    a star on the metric that chose it."""
    graphs = [("loss", f"loss ({val_loss})", ("train_loss", "val_loss"))] if not train_loss else [
        ("train_loss", f"train loss ({train_loss})", ("train_loss",)),
        ("val_loss", f"val loss ({val_loss})", ("val_loss",))]
    graphs.append(("acc1", "acc@1 (%)", ("train_acc1", "val_acc1")))
    if any(row.get("verify_auc") is not None for row in rows):
        graphs.append(("verify", "verification AUC, EER", ("verify_auc", "verify_eer")))
    figure = Figure(figsize=(5 * len(graphs), 4), layout="constrained")
    if title:
        figure.suptitle(title)
    best = best_epoch(rows, select_metric)
    axes = np.atleast_1d(figure.subplots(1, len(graphs), squeeze=False)).ravel()
    for axis, (name, ylabel, keys) in zip(axes, graphs):
        values = []
        for key in keys:
            split, metric = key.split("_", 1)
            for suffix, weights in WEIGHT_SUFFIXES:
                if split == "train" and suffix:
                    continue
                label = f"{metric.upper() if name == 'verify' else split}{weights}"  # val (EMA), AUC (EMA)
                values += _plot_metric(axis, rows, key + suffix, label)
        if "loss" in name and len(finite(values)) and loss_limits(values)[2]:  # a spike of 30 over a loss of 0.1
            use_log_scale(axis)
        widen_to(axis, values, MIN_PERCENT_SPAN if name == "acc1" else MIN_FRACTION_SPAN if name == "verify" else 0)
        if best is not None:
            epoch, value = best
            axis.axvline(epoch, color=BEST_COLOR, linestyle=":", label=f"best.pth (epoch {epoch})")
            if select_metric in keys:
                axis.plot([epoch], [value], linestyle="none", marker="*", markersize=12, color=BEST_COLOR,
                          label=f"best {select_metric.replace('_', ' ')} {value:.4g}")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    return figure


def predictions_figure(images: np.ndarray, true_names: Sequence[str], predicted_names: Sequence[str],
                       columns: int = 5, title: str = "") -> Figure:
    """A grid of uint8 images (N, 3, H, W), each titled with its true and predicted class; wrong
    predictions get a red title and frame. `title` names the run and the split."""
    count = len(images)
    rows = max(1, math.ceil(count / columns))
    figure = Figure(figsize=(2.2 * columns, 2.5 * rows), layout="constrained")
    if title:
        figure.suptitle(title)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for axis in axes[count:]:
        figure.delaxes(axis)
    for axis, image, true, predicted in zip(axes, images, true_names, predicted_names):
        axis.imshow(np.asarray(image).transpose(1, 2, 0))
        color = RIGHT_COLOR if true == predicted else WRONG_COLOR
        axis.set_title(f"true: {true}\npred: {predicted}", color=color, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(1 if true == predicted else 3)
    return figure


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], title: str = "") -> Figure:
    """The confusion matrix (rows: true class, columns: predicted), coloured by the share of
    each true class, with counts written in the cells when there are few classes. `title` names
    the run and the split."""
    num_classes = len(class_names)
    size = max(6.0, min(16.0, 3 + 0.4 * num_classes))  # wide enough for its title
    figure = Figure(figsize=(size, size * 0.85), layout="constrained")
    if title:
        figure.suptitle(title, fontsize=10)
    axis = figure.subplots()
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    shown = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(shown, ax=axis, label="share of the true class")
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    if num_classes <= MAX_LABELLED_CLASSES:
        axis.set_xticks(range(num_classes), class_names, rotation=90)
        axis.set_yticks(range(num_classes), class_names)
    if num_classes <= MAX_ANNOTATED_CLASSES:
        for true in range(num_classes):
            for predicted in range(num_classes):
                axis.text(predicted, true, int(matrix[true, predicted]), ha="center", va="center", fontsize=8,
                          color="white" if shares[true, predicted] > 0.5 else "black")
    return figure


def throughput_figure(rows: Sequence[dict], title: str = "") -> Figure:
    """Images/s against batch size (log2 x, a tick at each batch size tried): the model fed by the
    real loader, and the model alone. `title` names the model, device and precision."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axis = figure.subplots()
    sizes = [row["batch_size"] for row in rows]
    axis.plot(sizes, [row["loader_images_per_sec"] for row in rows], marker="o", label="with the data loader")
    axis.plot(sizes, [row["model_images_per_sec"] for row in rows], marker="s", label="model alone (synthetic batches)")
    axis.set_xscale("log", base=2)
    axis.set_xticks(sizes, [str(int(size)) for size in sizes])  # 256, not 2^8 or 256.0
    axis.xaxis.set_minor_formatter(NullFormatter())
    if title:
        axis.set_title(title)
    axis.set_xlabel("batch size")
    axis.set_ylabel("training images/s")
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    return figure


def lr_find_figure(lrs: Sequence[float], losses: Sequence[float], suggestion: float | None, title: str = "") -> Figure:
    """The smoothed training loss against the learning rate (log x), the suggestion marked;
    `title` names the study, its model and data set."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axis = figure.subplots()
    if title:
        axis.set_title(title)
    axis.plot(lrs, losses, label="smoothed train loss")
    if suggestion is not None:
        axis.axvline(suggestion, color=WRONG_COLOR, linestyle="--", label=f"suggested LR {suggestion:.2e}")
    axis.set_xscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("loss")
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    return figure


def augmentations_figure(originals: Sequence[np.ndarray], draws: Sequence[Sequence[np.ndarray]],
                         labels: Sequence[str], note: str = "") -> Figure:
    """One row per image: its original, then its augmented draws, all uint8 (3, H, W) and shown
    as they are; the row is labelled with `labels`, the figure titled with `note`."""
    rows, columns = len(originals), 1 + len(draws[0])
    figure = Figure(figsize=(1.4 * columns, 1.5 * rows + 0.4), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for row, (original, row_draws, label) in enumerate(zip(originals, draws, labels)):
        for column, image in enumerate([original, *row_draws]):
            axis = axes[row, column]
            axis.imshow(np.asarray(image).transpose(1, 2, 0), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title("original" if column == 0 else f"draw {column}", fontsize=9)
        axes[row, 0].set_ylabel(label, fontsize=9)
    if note:
        figure.suptitle(note, fontsize=9)
    return figure


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float, float]], title: str = "") -> Figure:
    """Face-verification ROC curves: TPR against FPR (log x from MIN_ROC_FPR to 1), one line per entry of
    `curves`, which maps a legend label to (fpr, tpr, auc, eer), and the chance diagonal; `title`
    names the run and its pairs."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axis = figure.subplots()
    if title:
        axis.set_title(title)
    for label, (fpr, tpr, auc, eer) in curves.items():
        # Every ROC curve starts at FPR 0, which a log axis cannot show.
        axis.plot(np.maximum(fpr, MIN_ROC_FPR), tpr, label=f"{label} (AUC {auc:.3f}, EER {eer:.1%})")
    chance = np.logspace(math.log10(MIN_ROC_FPR), 0, 200)  # TPR = FPR bends on a log axis, so draw it in points
    axis.plot(chance, chance, color="gray", linestyle="--", label="chance")
    axis.set_xscale("log")
    # Plain numbers (0.001, not 10^-3): log axes' default labels are mathtext, whose font lookups
    # write warnings into the run's log.
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlim(MIN_ROC_FPR, 1)
    axis.set_ylim(0, 1.01)
    axis.set_xlabel("false accept rate (FPR)")
    axis.set_ylabel("true accept rate (TPR)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="lower right")
    return figure


def reliability_figure(confidences: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS, title: str = "") -> Figure:
    """The reliability diagram: the accuracy of the predictions in each of `bins` equal-width
    confidence bins as a bar, against the diagonal where accuracy equals confidence; a bar below
    it is overconfident. The legend gives the expected calibration error, `title` names the run."""
    binned = reliability_bins(confidences, correct, bins)
    figure = Figure(figsize=(5.5, 5), layout="constrained")
    axis = figure.subplots()
    if title:
        axis.set_title(title, fontsize=10)
    filled = binned.counts > 0
    axis.bar(binned.edges[:-1][filled], binned.accuracy[filled], width=np.diff(binned.edges)[filled], align="edge",
             edgecolor="black", alpha=0.8, label=f"accuracy (ECE {binned.expected_calibration_error:.4f})")
    axis.plot([0, 1], [0, 1], color="gray", linestyle="--", label="calibrated: accuracy = confidence")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel(f"confidence (top-1 probability, {bins} bins)")
    axis.set_ylabel("accuracy")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left")
    return figure
