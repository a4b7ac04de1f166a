"""The val scores of an epoch: the trained weights, their EMA, and at the end their SWA average,
each with its verification scores when pairs are scored; and the log line that reports them."""
from __future__ import annotations

import os
from functools import partial
from itertools import islice

from torch import nn

from engine.loop import LoopSettings
from engine.parts import TrainingParts
from engine.weight_averaging import StochasticWeightAveraging
from evaluation.competition_metrics import METRIC_NAMES
from evaluation.embeddings import similarities_of_pairs
from evaluation.evaluate import evaluate
from evaluation.plots import roc_figure, save_figure
from evaluation.selection import METRIC_LABELS, WEIGHT_LABELS, BestSoFar, format_score
from evaluation.verification import VerificationResult, verification_metrics
from utils.distributed import broadcast_from_main


def verify_pairs_with(module: nn.Module, parts: TrainingParts, tta: str) -> VerificationResult:
    """Verification scores of `module` (a plain ImageClassifier) on the labelled pairs
    (DATA.VERIFY_PAIRS, or drawn by TEST.VERIFY_NUM_PAIRS)."""
    pairs = parts.loaders.verify_pairs
    similarities = similarities_of_pairs(module, parts.normalize, partial(parts.loaders.make_loader, pairs.split),
                                         pairs.first, pairs.second, parts.setup, tta)
    return verification_metrics(similarities, pairs.same, parts.verify_far)


def score_weights(parts: TrainingParts, module: nn.Module, tta: str, plain_module: nn.Module | None = None) -> dict:
    """Val metrics of `module` (loss, acc1, acc5, and the competition metrics of TEST.METRICS), and
    with verification pairs also its verify_* metrics and their VerificationResult ("verification");
    `plain_module` is `module` without its DDP or torch.compile wrapper, whose embeddings
    verification reads."""
    stats = evaluate(module, parts.normalize, parts.loaders.val_loader, parts.criterion, parts.setup, tta=tta,
                     competition=parts.competition)
    if parts.loaders.verify_pairs is not None:
        result = verify_pairs_with(plain_module or module, parts, tta)
        stats.update(result.metrics(), verification=result)
    return stats


def score_on_val(parts: TrainingParts, tta: str) -> dict[str, dict]:
    """{"model": val scores of the trained weights, "ema": of their EMA (with TRAIN.EMA)}."""
    scores = {"model": score_weights(parts, parts.forward_model, tta, parts.model)}
    if parts.ema is not None:
        scores["ema"] = score_weights(parts, parts.ema.module, tta)
    return scores


def finish_swa(swa: StochasticWeightAveraging, parts: TrainingParts, loop: LoopSettings, epoch: int,
               tta: str) -> dict:
    """Recompute the SWA weights' BatchNorm statistics over the train split (update_bn; rank 0's
    under torchrun, shared with every rank), then score them on val."""
    loader = parts.loaders.train_loader
    loader.sampler.set_epoch(epoch)
    loader.sampler.set_start(0)
    device = parts.setup.device
    swa.recompute_batchnorm(parts.normalize(images.to(device, non_blocking=True))
                            for images, _ in islice(loader, loop.num_batches))
    module = swa.average.module
    shared = broadcast_from_main({name: buffer.cpu() for name, buffer in module.named_buffers()})
    for name, buffer in module.named_buffers():
        buffer.copy_(shared[name])
    return score_weights(parts, module, tta)


def score_epoch(parts: TrainingParts, swa: StochasticWeightAveraging | None, loop: LoopSettings, epoch: int,
                val_tta: str, last_planned_epoch: bool, best: BestSoFar, patience: int) -> dict[str, dict]:
    """The epoch's val scores: the trained weights and their EMA, and the SWA average too when
    the run ends with this epoch (its last planned one, or an early stop)."""
    scores = score_on_val(parts, val_tta)
    if (last_planned_epoch or best.ends_run_unless_improved(scores, patience)) and swa is not None \
            and swa.epochs_averaged:
        scores["swa"] = finish_swa(swa, parts, loop, epoch, val_tta)
    return scores


def score_metrics(scores: dict[str, dict]) -> dict[str, float]:
    """The val scores as metrics: val_loss, val_acc1, val_acc5, val_<name> for each competition
    metric of TEST.METRICS (val_log_loss, ...), the verify_* metrics when pairs are scored, and the
    same with _ema / _swa."""
    return {f"{metric if metric.startswith('verify_') else 'val_' + metric}{'' if name == 'model' else '_' + name}":
            value for name, stats in scores.items() for metric, value in stats.items()
            if metric in ("loss", "acc1", "acc5", *METRIC_NAMES) or metric.startswith("verify_")}


def write_roc(run_dir: str, scores: dict[str, dict], title: str = "") -> str | None:
    """roc.png in `run_dir`, titled `title`: the ROC curve of every set of weights scored on
    verification pairs; returns its path, or None when no pairs were scored."""
    curves = {WEIGHT_LABELS[name]: (stats["verification"].fpr, stats["verification"].tpr, stats["verify_auc"],
                                    stats["verify_eer"]) for name, stats in scores.items() if "verification" in stats}
    if not curves:
        return None
    path = os.path.join(run_dir, "roc.png")
    save_figure(roc_figure(curves, f"{title} | verification pairs" if title else ""), path)
    return path


def epoch_line(epoch: int, epochs: int, train_stats: dict, scores: dict[str, dict], best: BestSoFar,
               mixing: bool = False) -> str:
    """The log line that closes an epoch: train stats, then the val scores of the trained
    weights and of their EMA and SWA when they exist, with their competition metrics (TEST.METRICS)
    and their verification scores when pairs are scored. With mixup/cutmix, train acc@1 is on each
    image's dominant label, and says so."""
    skipped = train_stats["nonfinite_updates"]

    def competition(stats: dict) -> str:
        return "".join(f" {METRIC_LABELS[metric].removeprefix('val ')} {format_score(stats[name], metric)}"
                       for name in METRIC_NAMES if name in stats for metric in [f"val_{name}"])

    def verify(stats: dict) -> str:
        return f" verify AUC {stats['verify_auc']:.4f} EER {100 * stats['verify_eer']:.2f}%" if "verify_auc" in stats \
            else ""

    val = scores["model"]
    averages = "".join(f" | {WEIGHT_LABELS[name]} val loss {stats['loss']:.4f} acc@1 {stats['acc1']:.2f}%"
                       f"{competition(stats)}{verify(stats)}" for name, stats in scores.items() if name != "model")
    best_of = f" ({WEIGHT_LABELS[best.weights]} weights)" if len(scores) > 1 or best.weights != "model" else ""
    return (f"epoch {epoch + 1}/{epochs}  train loss {train_stats['train_loss']:.4f} "
            f"acc@1{' (dominant label)' if mixing else ''} "
            f"{train_stats['train_acc1']:.2f}% | val loss {val['loss']:.4f} acc@1 {val['acc1']:.2f}% "
            f"acc@5 {val['acc5']:.2f}%{competition(val)}{verify(val)}{averages} | best {best.describe()}{best_of} | "
            f"{train_stats['epoch_time']:.1f}s, {train_stats['images_per_sec']:.0f} img/s"
            + (f" | {skipped} updates skipped for a NaN/Inf loss" if skipped else ""))
