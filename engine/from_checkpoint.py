"""The modes that start from a checkpoint instead of training: --eval (the val report,
val_probs.csv and the verification scores), --predict (test_probs.csv, submission.csv,
verify_submission.csv) and --export-embeddings (a split's embeddings as HDF5)."""
from __future__ import annotations

import os
from functools import partial

import numpy as np

from config import get_config
from data.dataset import NO_LABEL
from engine.build import build_training_parts, run_title
from engine.checkpoint import check_config_matches_checkpoint, checkpoint_path_from, load_model_weights
from engine.finish import (evaluate_val_in_order, predict_verification, report_on_val, report_verification,
                           temperature_for, write_test_predictions, write_val_probs)
from engine.parts import TrainingParts
from engine.run_dir import log_outputs, new_timestamped_dir
from evaluation.embeddings import embed_items, write_embeddings
from evaluation.evaluate import predict_log_probs
from evaluation.probs_record import write_probs_record
from evaluation.selection import METRIC_LABELS, WEIGHT_LABELS, format_score
from evaluation.submission import SampleSubmission
from evaluation.tta import num_views
from utils.checkpoint_io import load_checkpoint
from utils.device import resolve_device
from utils.errors import UserError
from utils.logger import create_logger

# Splits --export-embeddings reads (train images would come augmented, so train is not one).
EXPORT_SPLITS = ("val", "test", "holdout")


def export_embeddings(parts: TrainingParts, split: str, out_dir: str, logger) -> str:
    """--export-embeddings: the L2-normalised embeddings of a split's images, with their ids and
    labels, into `out_dir`/embeddings_<split>.h5 (evaluation.embeddings.write_embeddings)."""
    loaders = parts.loaders
    datasets = {"val": loaders.val_dataset, "test": loaders.test_dataset, "holdout": loaders.holdout_dataset}
    dataset = datasets[split]
    if dataset is None:
        raise UserError("--export-embeddings holdout needs DATA.HOLDOUT_CLASSES, which this config leaves empty; "
                        "export val or test")
    items = np.arange(len(dataset))
    embeddings = embed_items(parts.model, parts.normalize, partial(loaders.make_loader, split), items, parts.setup,
                             parts.tta)
    store_ids = getattr(dataset.store, "ids", None)  # file ids, for data read from files
    ids = [store_ids[int(i)] for i in dataset.indices] if store_ids is not None else [str(i) for i in items]
    labels = dataset.labels[dataset.indices] if dataset.labels is not None else np.full(len(items), NO_LABEL)
    path = os.path.join(out_dir, f"embeddings_{split}.h5")
    write_embeddings(path, embeddings, labels, ids, split)
    logger.info("%d %s embeddings of %d dimensions written to %s", len(embeddings), split, embeddings.shape[1], path)
    return path


def run_from_checkpoint(cfg, cfg_file: str | None, checkpoint_opts: list[str], evaluate_val: bool,
                        write_predictions: bool, export_split: str | None = None,
                        sample: SampleSubmission | None = None) -> str:
    """--eval, --predict and --export-embeddings: score the val split (and the verification
    pairs), predict the test split (and the verification test pairs; submission.csv checked
    against `sample` when given), or export a split's embeddings with a checkpoint, writing into
    an eval-<time> folder beside it, whose path it returns; probs.json there records the
    checkpoint, TTA and temperature of the probability files. Without a --cfg file (`cfg_file` None), the checkpoint's own
    config is used, with the command's flags and --opts (`checkpoint_opts`) laid over it."""
    logger = create_logger(None)
    path = checkpoint_path_from(cfg)
    checkpoint = load_checkpoint(path)
    stored_cfg = get_config(base_yaml=checkpoint["config"])
    if cfg_file is None:
        cfg = get_config(None, checkpoint_opts, base_yaml=checkpoint["config"])
    check_config_matches_checkpoint(cfg, stored_cfg, path)
    if write_predictions and cfg.DATA.TEST_SUBSET != 0:
        raise UserError(f"--predict writes submission.csv, and Kaggle needs every test row, but DATA.TEST_SUBSET "
                        f"{cfg.DATA.TEST_SUBSET:g} predicts part of the test split; set DATA.TEST_SUBSET 0")
    cfg.defrost()
    # The weights come from `path`, and compiling would cost more than the one pass it speeds up.
    cfg.MODEL.PRETRAINED, cfg.MODEL.FREEZE, cfg.TRAIN.COMPILE = "", "none", False
    cfg.freeze()
    parts = build_training_parts(cfg, resolve_device(cfg.DEVICE))
    weights = load_model_weights(parts.model, checkpoint, path, cfg, best_scoring=True,
                                 class_names=parts.loaders.class_names)
    if weights != "model":
        logger.info("using the checkpoint's %s weights, which scored best on val", WEIGHT_LABELS[weights])
    out_dir = new_timestamped_dir(os.path.dirname(os.path.abspath(path)), prefix="eval-")
    os.makedirs(out_dir)
    with_tta = f" with TTA {parts.tta} ({num_views(parts.tta)} views)" if parts.tta != "none" else ""
    temperature = None
    if evaluate_val:
        title = run_title(cfg, out_dir, parts.loaders.subsets)
        metrics, _ = report_on_val(parts, out_dir, title)
        temperature = temperature_for(cfg, metrics["predictions"], logger)
        write_val_probs(out_dir, parts.loaders, metrics["predictions"], temperature)
        subset = parts.loaders.subsets.get("val")
        images = (f"a subset: {subset[0]:,} of {subset[1]:,} images, DATA.VAL_SUBSET" if subset
                  else f"{len(parts.loaders.val_dataset)} images")
        competition = "".join(f"  {METRIC_LABELS['val_' + name]} {format_score(metrics[name], 'val_' + name)}"
                              for name in (parts.competition.names if parts.competition else ()))
        logger.info("%s on %s val (%s)%s: loss %.4f  acc@1 %.2f%%  acc@5 %.2f%%%s", path, cfg.DATA.DATASET, images,
                    with_tta, metrics["loss"], metrics["acc1"], metrics["acc5"], competition)
        report_verification(parts, out_dir, logger, weights, title)
    if write_predictions:
        if temperature is None:  # without --eval, val is scored only for auto to fit on
            fit_on = evaluate_val_in_order(parts)["predictions"] if cfg.TEST.TEMPERATURE == "auto" else None
            temperature = temperature_for(cfg, fit_on, logger)
        log_probs = predict_log_probs(parts.forward_model, parts.normalize, parts.loaders.test_loader, parts.setup,
                                      tta=parts.tta)
        predict_verification(cfg, parts, out_dir, logger)
        logger.info("%d test predictions of %s written%s", len(log_probs), path, with_tta)
        write_test_predictions(cfg, parts.loaders, log_probs, temperature, out_dir, sample)
    if evaluate_val or write_predictions:
        write_probs_record(out_dir, path, parts.tta, temperature)
    if export_split:
        export_embeddings(parts, export_split, out_dir, logger)
    log_outputs(logger, out_dir)
    return out_dir


def predict_with_checkpoint(path: str, tta: str | None = None, device: str = "auto",
                            data_path: str | None = None) -> str:
    """`main.py --eval --predict --resume path`, with the checkpoint's own config (TEST.TTA `tta`
    instead of its own when given, on `device`, reading DATA.DATA_PATH `data_path` when given):
    val_probs.csv, test_probs.csv and probs.json in a new eval-<time> folder beside `path`, whose
    path it returns."""
    opts = ["MODEL.RESUME", path, "DEVICE", device, *(["TEST.TTA", tta] if tta else []),
            *(["DATA.DATA_PATH", data_path] if data_path else [])]
    return run_from_checkpoint(get_config(None, opts), None, opts, evaluate_val=True, write_predictions=True)
