"""The reports a run ends with, also written by --eval and --predict: the val report and
val_probs.csv, the verification report, test_probs.csv, submission.csv (in SUBMISSION.FORMAT,
checked against a sample submission when given) and verify_submission.csv."""
from __future__ import annotations

import os
from functools import partial

import numpy as np
from torch import nn

from data import Loaders
from data.sampler import ShardSampler
from data.subset import subset_note
from engine.build import run_title
from engine.checkpoint import load_model_weights
from engine.epoch_scores import verify_pairs_with
from engine.parts import TrainingParts
from engine.run_dir import BEST_CHECKPOINT
from engine.tracking import WandbRun
from evaluation.calibration import fit_temperature, nll_at_temperature, tempered_probabilities
from evaluation.embeddings import similarities_of_pairs
from evaluation.evaluate import evaluate, predict_log_probs
from evaluation.plots import roc_figure, save_figure
from evaluation.probabilities import write_probs
from evaluation.probs_record import write_probs_record
from evaluation.selection import WEIGHT_LABELS, BestSoFar
from evaluation.submission import (SampleSubmission, submission_writer, write_checked_submission,
                                   write_verify_submission)
from evaluation.val_report import ValPredictions, grid_indices, write_val_report
from utils.checkpoint_io import load_checkpoint
from utils.distributed import broadcast_from_main, rank_and_size


def evaluate_val_in_order(parts: TrainingParts) -> dict:
    """evaluate() on the val split with TEST.TTA, keeping every image's predictions in split order."""
    loaders = parts.loaders
    # Per-image reports follow the split's order (TEST.SHUFFLE may shuffle the epoch passes);
    # under torchrun each rank reads its shard and evaluate() gathers them.
    rank, world_size = rank_and_size()
    loader = loaders.make_loader("val", ShardSampler(len(loaders.val_dataset), rank, world_size))
    return evaluate(parts.forward_model, parts.normalize, loader, parts.criterion, parts.setup,
                    keep_predictions=True, tta=parts.tta, competition=parts.competition)


def report_on_val(parts: TrainingParts, out_dir: str | None, title: str = "") -> tuple[dict, dict[str, str]]:
    """Evaluate on the val split in order and write the val report into `out_dir` (None: the
    numbers only, as on torchrun's ranks other than 0), its pictures titled with `title`.

    Returns (the metrics with their ValPredictions, {"predictions": png, "confusion": png}).
    """
    loaders = parts.loaders
    metrics = evaluate_val_in_order(parts)
    indices = grid_indices(len(loaders.val_dataset))
    grid_images = np.stack([image.numpy() for image, _ in loaders.val_dataset.__getitems__(indices.tolist())])
    paths = write_val_report(out_dir, metrics["predictions"], grid_images, loaders.class_names,
                             title) if out_dir else {}
    return metrics, paths


def submission_columns(cfg, loaders: Loaders) -> dict:
    """write_submission's `ids` and `class_names`, as SUBMISSION.ID and SUBMISSION.LABELS ask."""
    return {"ids": loaders.test_ids if cfg.SUBMISSION.ID == "file" else None,
            "class_names": loaders.class_names if cfg.SUBMISSION.LABELS == "name" else None}


def temperature_for(cfg, val_predictions: ValPredictions | None, logger) -> float:
    """TEST.TEMPERATURE: the number it holds, or, for auto, the temperature fitted on
    `val_predictions`, logged with the val NLL it brings."""
    if cfg.TEST.TEMPERATURE != "auto":
        return float(cfg.TEST.TEMPERATURE)
    log_probs, targets = val_predictions.log_probs, val_predictions.targets
    temperature = fit_temperature(log_probs, targets)
    logger.info("TEST.TEMPERATURE auto: temperature %.4f fitted on %d val images (val NLL %.4f at 1, %.4f at it); "
                "it scales val_probs.csv, test_probs.csv and a probs or topk submission", temperature, len(targets),
                nll_at_temperature(log_probs, targets, 1.0), nll_at_temperature(log_probs, targets, temperature))
    return temperature


def write_val_probs(out_dir: str, loaders: Loaders, val_predictions: ValPredictions, temperature: float) -> None:
    """val_probs.csv in `out_dir`: every val image's id, true class and class probabilities at
    `temperature` (for a fold run, its out-of-fold rows)."""
    write_probs(os.path.join(out_dir, "val_probs.csv"), loaders.val_ids,
                tempered_probabilities(val_predictions.log_probs, temperature), loaders.class_names,
                val_predictions.targets)


def write_test_predictions(cfg, loaders: Loaders, log_probs: np.ndarray, temperature: float, out_dir: str,
                           sample: SampleSubmission | None = None) -> None:
    """test_probs.csv (every test image's id and class probabilities at `temperature`), then
    submission.csv as SUBMISSION.FORMAT asks, checked against `sample` when given (evaluation.
    submission.write_checked_submission: a file that does not match raises UserError, unwritten)."""
    class_names = loaders.class_names
    log_probs = log_probs if log_probs.size else np.zeros((0, len(class_names)), dtype=np.float32)
    probs = tempered_probabilities(log_probs, temperature)
    write_probs(os.path.join(out_dir, "test_probs.csv"), loaders.test_ids, probs, class_names)
    columns = submission_columns(cfg, loaders)
    write = submission_writer(cfg.SUBMISSION.FORMAT, probs, class_names, cfg.SUBMISSION.HEADER, columns["ids"],
                              columns["class_names"], cfg.SUBMISSION.TOPK)
    write_checked_submission(os.path.join(out_dir, "submission.csv"), write, sample)


def report_verification(parts: TrainingParts, out_dir: str | None, logger, weights: str = "model",
                        title: str = "") -> None:
    """Score the labelled verification pairs with the weights in `parts.model` and TEST.TTA: a
    log line, and their ROC curve in `out_dir`/roc.png (None: computed only, as on torchrun's
    ranks other than 0), labelled with the `weights` loaded (model, ema, swa). Nothing without pairs."""
    pairs = parts.loaders.verify_pairs
    if pairs is None:
        return
    result = verify_pairs_with(parts.model, parts, parts.tta)
    if out_dir:
        curve = (result.fpr, result.tpr, result.auc, result.eer)
        save_figure(roc_figure({f"{WEIGHT_LABELS[weights]} weights": curve},
                               f"{title} | {pairs.split} pairs" if title else ""), os.path.join(out_dir, "roc.png"))
    logger.info("verification on %d %s pairs: AUC %.4f, EER %.2f%%, TAR %.2f%% at FAR %g, accuracy %.2f%% at "
                "similarity >= %.3f", len(pairs.first), pairs.split, result.auc, 100 * result.eer, 100 * result.tar,
                result.far, 100 * result.accuracy, result.threshold)


def predict_verification(cfg, parts: TrainingParts, out_dir: str | None, logger) -> None:
    """verify_submission.csv in `out_dir` (None: computed only): the cosine similarity of every
    unlabelled pair (DATA.VERIFY_TEST_PAIRS), with the weights in `parts.model` and TEST.TTA."""
    pairs = parts.loaders.verify_test_pairs
    if pairs is None:
        return
    similarities = similarities_of_pairs(parts.model, parts.normalize, partial(parts.loaders.make_loader, pairs.split),
                                         pairs.first, pairs.second, parts.setup, parts.tta)
    if out_dir:
        ids = pairs.names if cfg.SUBMISSION.VERIFY_ID == "pair" else None
        write_verify_submission(os.path.join(out_dir, "verify_submission.csv"), similarities,
                                cfg.SUBMISSION.VERIFY_HEADER, ids)
    logger.info("%d verification pair similarities written to verify_submission.csv", len(similarities))


def finish_run(cfg, parts: TrainingParts, run_dir: str | None, wandb_run: WandbRun, best: BestSoFar,
               logger, final_weights: tuple[str, nn.Module | None] = ("model", None),
               sample: SampleSubmission | None = None) -> None:
    """After the last epoch: the val report, val_probs.csv, test_probs.csv and submission.csv
    (checked against `sample` when given) from the best checkpoint's best-scoring weights
    (trained, EMA or SWA), or, when SAVE.CHECKPOINTS keeps no best.pth, from `final_weights`: (the
    name of the weights that scored best in the last epoch, their AveragedModel, None for the
    trained weights). `run_dir` is None on ranks other than 0, which compute their shards and
    write nothing."""
    # Every rank loads rank 0's best.pth: torchrun across nodes needs a shared disk, as on resume.
    best_path = broadcast_from_main(os.path.join(run_dir, BEST_CHECKPOINT) if run_dir else None)
    predicted_by = None  # the checkpoint whose weights predict: best.pth, or None for the final weights
    if broadcast_from_main(run_dir is not None and os.path.isfile(best_path)):
        name = load_model_weights(parts.model, load_checkpoint(best_path), best_path, cfg, best_scoring=True)
        weights, predicted_by = f"the best checkpoint's {WEIGHT_LABELS[name]} weights", best_path
    else:
        name, average = final_weights
        if average is not None:
            parts.model.load_state_dict(average.module.state_dict())
        weights = (f"the final weights (SAVE.CHECKPOINTS {cfg.SAVE.CHECKPOINTS} keeps no best.pth)"
                   + ("" if name == "model" else f", their {WEIGHT_LABELS[name]} average, which scored best"))
    title = run_title(cfg, run_dir, parts.loaders.subsets) if run_dir else ""
    metrics, image_paths = report_on_val(parts, run_dir, title)
    log_probs = predict_log_probs(parts.forward_model, parts.normalize, parts.loaders.test_loader, parts.setup,
                                  tta=parts.tta)
    report_verification(parts, run_dir, logger, name, title)
    predict_verification(cfg, parts, run_dir, logger)
    if run_dir is None:
        return
    # roc.png, when verification wrote one, is now the ROC of the weights the report used.
    wandb_run.log_val_report({**image_paths, "roc": os.path.join(run_dir, "roc.png")},
                             metrics["predictions"].targets, metrics["predictions"].predicted,
                             parts.loaders.class_names)
    temperature = temperature_for(cfg, metrics["predictions"], logger)
    write_val_probs(run_dir, parts.loaders, metrics["predictions"], temperature)
    write_probs_record(run_dir, predicted_by, parts.tta, temperature)
    best_score = best.describe(with_label=True) if best.score is not None else f"{best.label} none (no epoch trained)"
    tta = f", with TTA {parts.tta}" if parts.tta != "none" else ""
    logger.info("best %s; val report and %d test predictions written with %s%s", best_score, len(log_probs),
                weights, tta)
    # A test subset (DATA.TEST_SUBSET) still runs the test pass end to end, on part of the split, so
    # a short study shows that a full run's end works; but Kaggle needs every row, and the subset's
    # probabilities are not the test set's.
    if "test" in parts.loaders.subsets:
        logger.info("no submission.csv or test_probs.csv: DATA.TEST_SUBSET predicts %s, and Kaggle needs every "
                    "test row; set it to 0 for them", subset_note({"test": parts.loaders.subsets["test"]}))
    else:
        write_test_predictions(cfg, parts.loaders, log_probs, temperature, run_dir, sample)
