"""Train, validate and predict: `python main.py --cfg configs/X.yaml [flags] [--opts KEY VALUE ...]`.

The recipe, top to bottom: parse the config, build the model, optimizer and data, train with a
val pass every epoch (checkpointing, plotting and summarising as it goes), then report on the
val split and predict the test split with the best checkpoint.

Other modes: `--eval` / `--predict` / `--export-embeddings` from any checkpoint, `--throughput`
(images/s against batch size until out of memory), `--lr-find` (LR range test) and `--list-models`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import warnings
from contextlib import nullcontext
from functools import partial
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import RandomSampler
from tqdm import tqdm

from config import changed_from_defaults, flatten, get_config
from data import Loaders, build_loader
from data.dataset import NO_LABEL
from data.normalize import Normalize
from data.mix import BatchMixer, build_batch_mixer
from data.sampler import ShardSampler
from models import build_model, list_models
from models.build import build_loss, resolve_num_classes
from models.losses import TrainingLoss
from models.complexity import count_macs, count_parameters, format_count
from optimizer import build_optimizer, build_scheduler, load_scheduler_state, lr_at_current_step
from utils.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from utils.cli import OneLineErrorParser
from utils.device import DeviceSetup, peak_memory, reset_peak_memory, resolve_device
from utils.distributed import (World, broadcast_from_main, close_world, device_for_rank, gather_shards, init_world,
                               is_main_process, launched_by_torchrun, rank_and_size, restart_count)
from utils.errors import UserError
from utils.logger import create_logger
from utils.lr_finder import MAX_LR, MIN_LR, lr_range_test
from utils.embeddings import embed_items, similarities_of_pairs, write_embeddings
from utils.metrics import ClassificationMeter
from utils.plots import lr_find_figure, roc_figure, save_figure, throughput_figure
from utils.preemption import Preempted, StopRequest, signal_name
from utils.resume import RESUMABLE_KEYS, describe_change, differing_keys, may_change_on_resume
from utils.run_dir import (BEST_CHECKPOINT, LAST_CHECKPOINT, experiment_dir, latest_run_with_checkpoint,
                           new_timestamped_dir, plan_run_dir)
from utils.selection import BestSoFar, format_score
from utils.submission import write_submission, write_verify_submission
from utils.throughput import default_batch_sizes, scan_throughput
from utils.tracking import RunTracker, WandbRun
from utils.train_step import backward, forward, optimizer_step
from utils.tta import num_views, tta_log_probs
from utils.update_guard import UpdateGuard
from utils.weight_averaging import WEIGHT_LABELS, ExponentialMovingAverage, StochasticWeightAveraging, eval_weights
from utils.val_report import ValPredictions, grid_indices, write_val_report
from utils.verification import VerificationResult, verification_metrics

# Keys that fix a checkpoint's architecture and what its outputs mean: --eval and --predict
# refuse a config that changes them.
CHECKPOINT_IDENTITY_KEYS = ("MODEL.NAME", "MODEL.NUM_CLASSES", "MODEL.STEM", "MODEL.WIDTH_MULT", "MODEL.AUX_LOGITS",
                            "MODEL.CONVNEXT.NORM", "MODEL.EMBED_DIM", "DATA.DATASET", "DATA.IMG_SIZE",
                            "DATA.HOLDOUT_CLASSES")
# Splits --export-embeddings reads (train images would come augmented, so train is not one).
EXPORT_SPLITS = ("val", "test", "holdout")
# Largest batch of the default --throughput scan on CPU, which never runs out of memory first.
CPU_MAX_BATCH = 256
# Largest batch of the default --throughput scan on CUDA when it has not run out of memory by then.
CUDA_MAX_BATCH = 65536


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expects a positive whole number, got {text!r}")
    return int(text)


def batch_size_list(text: str) -> list[int]:
    """"1,2,4,8" -> [1, 2, 4, 8] (sorted, without repeats); every item a positive integer."""
    items = [item.strip() for item in text.split(",")]
    bad = [item for item in items if not item.isdigit() or int(item) < 1]
    if bad:
        raise argparse.ArgumentTypeError(f"takes positive whole numbers separated by commas, e.g. 1,2,4,8; "
                                         f"{bad[0]!r} is not one")
    return sorted({int(item) for item in items})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineErrorParser("python main.py", description="Train an image classifier from a YAML config.")
    parser.add_argument("--cfg", help="YAML config file (defaults only when omitted; --eval and --predict "
                                      "take the checkpoint's own config when omitted)")
    parser.add_argument("--batch-size", type=int, help="DATA.BATCH_SIZE")
    parser.add_argument("--data-path", help="DATA.DATA_PATH")
    parser.add_argument("--output", help="OUTPUT: root folder for runs")
    parser.add_argument("--tag", help="TAG: name of the run folder")
    parser.add_argument("--resume", help="MODEL.RESUME: a checkpoint path, or 'auto' for this run's latest")
    parser.add_argument("--eval", action="store_true",
                        help="EVAL_MODE: evaluate the --resume checkpoint on the val split; writes a report "
                             "into an eval-<time> folder beside it")
    parser.add_argument("--predict", action="store_true",
                        help="write submission.csv from the --resume checkpoint into an eval-<time> folder beside it")
    parser.add_argument("--export-embeddings", metavar="SPLIT", choices=EXPORT_SPLITS,
                        help="write the L2-normalised embeddings of the --resume checkpoint for a split "
                             f"({', '.join(EXPORT_SPLITS)}), with their ids and labels, to embeddings_SPLIT.h5 in an "
                             "eval-<time> folder beside it")
    parser.add_argument("--device", help="DEVICE: auto, cpu, cuda or cuda:N")
    parser.add_argument("--throughput", action="store_true",
                        help="time training steps at growing batch sizes until out of memory; writes "
                             "throughput.csv and throughput.png")
    parser.add_argument("--batch-sizes", type=batch_size_list,
                        help="batch sizes for --throughput, e.g. 1,2,4 (default: 1, 2, 4, ... until out of memory)")
    parser.add_argument("--max-batch", type=positive_int,
                        help=f"largest batch of the default --throughput scan (default {CPU_MAX_BATCH} on CPU, "
                             f"{CUDA_MAX_BATCH} on CUDA)")
    parser.add_argument("--lr-find", action="store_true",
                        help="LR range test: writes lr_find.png and prints the suggested TRAIN.LR")
    parser.add_argument("--list-models", action="store_true",
                        help="print every model with its parameters and MACs at --img-size, then exit")
    parser.add_argument("--img-size", type=int, default=224, help="input size for --list-models (default 224)")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="KEY VALUE pairs applied last, e.g. --opts TRAIN.LR 1e-3 TRAIN.EPOCHS 10")
    args = parser.parse_args(argv)
    modes = [name for name, chosen in (("--eval/--predict/--export-embeddings",
                                        args.eval or args.predict or args.export_embeddings),
                                       ("--throughput", args.throughput), ("--lr-find", args.lr_find)) if chosen]
    if len(modes) > 1:
        parser.error(f"{' and '.join(modes)} cannot be combined; run them one at a time")
    if not args.throughput and (args.batch_sizes or args.max_batch):
        parser.error("--batch-sizes and --max-batch belong to --throughput; add it, or leave them out")
    return args


def config_from_args(args: argparse.Namespace, base_yaml: str | None = None):
    """Flags become --opts pairs placed before the user's --opts, so --opts wins.

    `base_yaml` (a checkpoint's stored config) replaces the defaults as the starting point; its
    DEVICE is then replaced by auto, since the machine that wrote it may have had other devices.
    """
    misplaced = [item for item in args.opts[0::2] if item.startswith("--")]
    if misplaced:
        raise UserError(f"{misplaced[0]} comes after --opts, which reads everything after it as KEY VALUE "
                        f"pairs; put flags before --opts")
    flags = {"DATA.BATCH_SIZE": args.batch_size, "DATA.DATA_PATH": args.data_path, "OUTPUT": args.output,
             "TAG": args.tag, "MODEL.RESUME": args.resume,
             "DEVICE": args.device or ("auto" if base_yaml else None), "EVAL_MODE": True if args.eval else None}
    # repr() keeps strings as strings when the config decodes literals (a TAG of "1e3" stays text).
    opts = [item for key, value in flags.items() if value is not None
            for item in (key, repr(value) if isinstance(value, str) else str(value))]
    return get_config(args.cfg, opts + list(args.opts), base_yaml=base_yaml)


def model_cost(cfg) -> tuple[int, int | None]:
    """(parameters, MACs per image at DATA.IMG_SIZE) of the configured model, measured on the meta
    device; MACs is None when the model cannot take that size."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.PRETRAINED, cfg.MODEL.FREEZE, cfg.MODEL.INIT = "", "none", "default"
    with torch.device("meta"):
        model = build_model(cfg)
    try:
        macs = count_macs(model, cfg.DATA.IMG_SIZE)
    except RuntimeError:  # e.g. pooling a map smaller than its kernel
        macs = None
    return count_parameters(model), macs


def print_model_table(img_size: int) -> None:
    """--list-models: name, parameters and MACs at img_size (1000 classes), one model per line."""
    print(f"{'model':<20} {'params':>10} {f'MACs @ {img_size}px':>14}")
    for name in list_models():
        cfg = get_config(None, ["MODEL.NAME", name, "MODEL.NUM_CLASSES", "1000", "DATA.IMG_SIZE", str(img_size)])
        params, macs = model_cost(cfg)
        print(f"{name:<20} {format_count(params):>10} {format_count(macs) if macs else 'too small':>14}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainingParts:
    """Everything a training step needs, built from the config and placed on the device."""
    model: nn.Module  # the module whose state_dict is saved
    forward_model: nn.Module  # what to call: the model, or its torch.compile wrapper
    normalize: Normalize
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    setup: DeviceSetup
    loaders: Loaders
    criterion: nn.Module
    parameters: int
    macs: int
    ddp: DistributedDataParallel | None = None  # the DDP wrapper under torchrun, for no_sync()
    train_criterion: TrainingLoss | None = None  # TRAIN.LOSS (label smoothing, metric terms); `criterion` scores val
    mix: BatchMixer | None = None  # mixup / cutmix of each train batch
    tta: str = "none"  # TEST.TTA: the test-time augmentation of the final val report and the predictions
    ema: ExponentialMovingAverage | None = None  # TRAIN.EMA: updated after every optimizer update
    verify_far: float = 1e-3  # TEST.VERIFY_FAR, the false accept rate verify_tar is read at


def build_training_parts(cfg, device: torch.device, world: World = World()) -> TrainingParts:
    """Model, optimizer and data from the config. Fails on a typo before anything is written.

    Under torchrun the model is wrapped in DistributedDataParallel (its BatchNorms made
    SyncBatchNorm with MODEL.SYNC_BN) and each rank gets its shard of every split.
    """
    model = build_model(cfg)
    if world.distributed and cfg.MODEL.SYNC_BN:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    parameters, macs = model_cost(cfg)
    if macs is None:
        raise UserError(f"{cfg.MODEL.NAME} cannot take {cfg.DATA.IMG_SIZE} px images (its feature maps shrink to "
                        f"nothing); raise DATA.IMG_SIZE, or try MODEL.STEM cifar if the model has that stem")
    train_criterion = build_loss(cfg, model)
    # The loss's own parameters (ArcFace's and CosFace's class centres) train with the model.
    optimizer = build_optimizer(cfg, model, train_criterion)
    loaders = build_loader(cfg, world.rank, world.size, device)
    if cfg.SUBMISSION.ID == "file" and loaders.test_ids is None:
        raise UserError(f"SUBMISSION.ID file names each row by its test image's file, but the test images of "
                        f"DATA.DATASET {cfg.DATA.DATASET} are not files; use SUBMISSION.ID index")
    setup = DeviceSetup.create(device, cfg.TRAIN.MIXED_PRECISION, cfg.TRAIN.CHANNELS_LAST, cfg.TRAIN.COMPILE,
                               cfg.TRAIN.CUDNN_BENCHMARK)
    wrappers = []

    def wrap_in_ddp(module: nn.Module) -> nn.Module:
        wrappers.append(DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None))
        return wrappers[0]

    forward_model = setup.place(model, wrap=wrap_in_ddp if world.distributed else None)
    normalize = Normalize(loaders.mean, loaders.std, setup.channels_last).to(device)
    train_criterion.to(device)
    mix = build_batch_mixer(cfg.AUG.MIXUP, cfg.AUG.CUTMIX, cfg.AUG.MIX_PROB, cfg.AUG.MIX_SWITCH_PROB,
                            loaders.num_classes)
    return TrainingParts(model, forward_model, normalize, optimizer, setup.grad_scaler(), setup, loaders,
                         nn.CrossEntropyLoss(), parameters, macs, wrappers[0] if wrappers else None,
                         train_criterion, mix, tta=cfg.TEST.TTA, verify_far=cfg.TEST.VERIFY_FAR)


def plan_epoch(num_batches: int, accumulation_steps: int, max_steps: int) -> tuple[int, int]:
    """(optimizer updates, batches) per epoch: every batch, or the first max_steps updates' worth."""
    steps = math.ceil(num_batches / accumulation_steps)
    if max_steps:
        steps = min(steps, max_steps)
    return steps, min(num_batches, steps * accumulation_steps)


@dataclass(frozen=True)
class LoopSettings:
    """How each epoch's loop runs, from the config."""
    num_batches: int  # batches per epoch (TRAIN.MAX_STEPS_PER_EPOCH may cut it short)
    accumulation_steps: int
    clip_grad: float
    print_freq: int
    max_nonfinite: int  # 0 never stops


@dataclass
class EpochProgress:
    """Where an epoch stands; saved in last.pth when a run stops inside an epoch."""
    batches_done: int = 0
    meter: dict | None = None  # ClassificationMeter.state_dict()
    elapsed: float = 0.0
    nonfinite: int = 0  # updates skipped this epoch for a NaN or Inf loss
    nonfinite_in_a_row: int = 0
    lr: float | None = None  # the LR the epoch started with, which its metrics report


def flush_steps(pending_steps: list[tuple[int, float, torch.Tensor]], epoch: int, log_steps) -> None:
    """Hand the (global step, lr, loss on the device) rows gathered since the last print to
    `log_steps`, with one device sync for all of them, and empty the list."""
    losses = torch.stack([loss for _, _, loss in pending_steps]).tolist()
    log_steps([{"global_step": step, "epoch": epoch, "lr": step_lr, "train_loss": step_loss}
               for (step, step_lr, _), step_loss in zip(pending_steps, losses)])
    pending_steps.clear()


def train_one_epoch(parts: TrainingParts, scheduler, loader, epoch: int, loop: LoopSettings, logger, log_steps,
                    stop: StopRequest, progress: EpochProgress) -> tuple[dict | None, EpochProgress]:
    """The epoch's batches from `progress.batches_done` on, an optimizer update every
    `accumulation_steps`, each followed by a step of `scheduler` (unless None) and of the EMA.
    Returns (the epoch's stats, progress); the stats are None when a stop was requested, in
    which case the loop ended right after an update.

    Every iteration's loss and LR go to `log_steps(rows)` in chunks, once per print. An update
    whose loss is NaN or Inf is skipped; `loop.max_nonfinite` of them in a row stop the run.
    """
    model, optimizer, scaler, setup = parts.forward_model, parts.optimizer, parts.scaler, parts.setup
    model.train()
    meter = ClassificationMeter(setup.device)
    if progress.meter:
        meter.load_state_dict(progress.meter)
    guard = UpdateGuard(setup.device)
    pending_steps = []  # (global step, lr, loss on the device) since the last print
    start = time.perf_counter() - progress.elapsed
    first, num_batches, accumulation = progress.batches_done, loop.num_batches, loop.accumulation_steps
    bar = tqdm(islice(loader, num_batches - first), total=num_batches, initial=first, desc=f"train {epoch + 1}",
               leave=False, dynamic_ncols=True, disable=None)
    nonfinite, in_a_row, stopping = progress.nonfinite, progress.nonfinite_in_a_row, False
    optimizer.zero_grad(set_to_none=True)
    for i, (images, targets) in enumerate(bar, start=first):
        lr = optimizer.param_groups[0]["lr"]
        # Each update averages the gradients of its group; the epoch's last group may be shorter.
        group_start = i - i % accumulation
        group_size = min(accumulation, num_batches - group_start)
        update_now = (i + 1) % accumulation == 0 or i + 1 == num_batches
        # Under DDP, only the last micro-batch of a group all-reduces its gradients.
        with nullcontext() if update_now or parts.ddp is None else parts.ddp.no_sync():
            logits, loss, targets = forward(model, parts.normalize, images, targets,
                                            parts.train_criterion or parts.criterion, setup, parts.mix)
            guard.add_loss(loss)
            if update_now:
                guard.publish(stop.requested)
            backward(loss, scaler, loss_divisor=group_size)
        meter.update(loss, logits, targets)
        pending_steps.append((epoch * num_batches + i, lr, loss.detach().float()))
        if update_now:
            skip, stopping = guard.read()
            nonfinite, in_a_row = (nonfinite + 1, in_a_row + 1) if skip else (nonfinite, 0)
            if skip:
                optimizer.zero_grad(set_to_none=True)
            else:
                optimizer_step(optimizer, scaler, loop.clip_grad)
                if parts.ema is not None:
                    parts.ema.update_parameters(parts.model)
            if scheduler is not None:  # None in SWA epochs, whose LR SWALR sets once per epoch
                scheduler.step()
            if loop.max_nonfinite and in_a_row >= loop.max_nonfinite:
                raise UserError(f"the loss was NaN or Inf for {in_a_row} updates in a row (epoch {epoch + 1}, "
                                f"batch {i + 1} of {num_batches}), so the run stopped; its last checkpoint is "
                                f"kept. Lower TRAIN.LR, set TRAIN.CLIP_GRAD, or raise TRAIN.WARMUP_EPOCHS")
        if (i + 1) % loop.print_freq == 0 or i + 1 == num_batches or stopping:
            flush_steps(pending_steps, epoch, log_steps)
            summary = meter.summary()
            stats = dict(loss=f"{summary['loss']:.4f}", acc=f"{summary['acc1']:.2f}",
                         lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                         img_s=f"{summary['images'] / (time.perf_counter() - start):.0f}")
            bar.set_postfix(stats)
            logger.debug("train epoch %d [%d/%d] %s", epoch + 1, i + 1, num_batches,
                         " ".join(f"{k} {v}" for k, v in stats.items()))
        if stopping:
            return None, EpochProgress(i + 1, meter.state_dict(), time.perf_counter() - start, nonfinite, in_a_row)
    elapsed = time.perf_counter() - start
    summary = meter.summary()
    return ({"train_loss": summary["loss"], "train_acc1": summary["acc1"], "train_acc5": summary["acc5"],
             "epoch_time": elapsed, "images_per_sec": summary["images"] / elapsed, "nonfinite_updates": nonfinite},
            EpochProgress())


@torch.no_grad()
def evaluate(model, normalize, loader, criterion, setup: DeviceSetup, keep_predictions: bool = False,
             tta: str = "none") -> dict:
    """{"loss", "acc1", "acc5"} (accuracies in %) over a labelled loader, plus "predictions"
    (ValPredictions, in loader order) with `keep_predictions`.

    With `tta` (utils.tta's modes other than none), every number comes from the probabilities
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


def report_on_val(parts: TrainingParts, out_dir: str | None) -> tuple[dict, dict[str, str]]:
    """Evaluate on the val split in order and write the val report into `out_dir` (None: the
    numbers only, as on torchrun's ranks other than 0).

    Returns (the metrics with their ValPredictions, {"predictions": png, "confusion": png}).
    """
    loaders = parts.loaders
    # Per-image reports follow the split's order (TEST.SHUFFLE may shuffle the epoch passes);
    # under torchrun each rank reads its shard and evaluate() gathers them.
    rank, world_size = rank_and_size()
    loader = loaders.make_loader("val", ShardSampler(len(loaders.val_dataset), rank, world_size))
    metrics = evaluate(parts.forward_model, parts.normalize, loader, parts.criterion, parts.setup,
                       keep_predictions=True, tta=parts.tta)
    indices = grid_indices(len(loaders.val_dataset))
    grid_images = np.stack([image.numpy() for image, _ in loaders.val_dataset.__getitems__(indices.tolist())])
    paths = write_val_report(out_dir, metrics["predictions"], grid_images, loaders.class_names) if out_dir else {}
    return metrics, paths


def submission_columns(cfg, loaders: Loaders) -> dict:
    """write_submission's `ids` and `class_names`, as SUBMISSION.ID and SUBMISSION.LABELS ask."""
    return {"ids": loaders.test_ids if cfg.SUBMISSION.ID == "file" else None,
            "class_names": loaders.class_names if cfg.SUBMISSION.LABELS == "name" else None}


def record_data(logger, run_dir: str | None, loaders: Loaders) -> None:
    """Log what opening the data noted (images left out, the cache), and write classes.json into
    `run_dir` (None on torchrun's ranks other than 0): the class names in label order, so that a
    label index can be read back."""
    for note in loaders.notes:
        logger.info(note)
    if run_dir is None:
        return
    tmp_path = os.path.join(run_dir, f"classes.json.tmp-{os.getpid()}")
    with open(tmp_path, "w", encoding="utf-8") as f:
        json.dump(loaders.class_names, f, ensure_ascii=False, indent=0)
    os.replace(tmp_path, os.path.join(run_dir, "classes.json"))


def load_model_weights(model: nn.Module, checkpoint: dict, path: str, cfg, best_scoring: bool = False) -> str:
    """Load the checkpoint's weights into `model`, built from `cfg`; a misfit names both sides.

    The trained weights ("model"), or with `best_scoring` whichever of them, their EMA and their
    SWA scored best on val when the checkpoint was written. Returns the name of those loaded.
    """
    state, name = eval_weights(checkpoint) if best_scoring else (checkpoint["model"], "model")
    try:
        model.load_state_dict(state)
        return name
    except RuntimeError as e:
        # torch's first line only says "Error(s) in loading state_dict"; the next one says what.
        details = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
        detail = details[0][:160] if details else str(e).splitlines()[0]
        try:
            written = get_config(base_yaml=checkpoint["config"])
            holds = (f"{written.MODEL.NAME} for {written.DATA.DATASET} "
                     f"({resolve_num_classes(written)} classes)")
        except UserError:  # a config from another version of this project
            holds = "a model of another shape"
        raise UserError(f"checkpoint {path} holds {holds}, which does not fit {cfg.MODEL.NAME} for "
                        f"{cfg.DATA.DATASET} ({resolve_num_classes(cfg)} classes): {detail}; use a --cfg that "
                        f"matches the checkpoint, or MODEL.PRETRAINED to start a new model from it") from None


def checkpoint_path_from(cfg) -> str:
    """MODEL.RESUME as a file: `auto` is the newest run's best.pth (else last.pth)."""
    path = cfg.MODEL.RESUME
    if path == "auto":
        run_dir = latest_run_with_checkpoint(experiment_dir(cfg.OUTPUT, cfg.MODEL.NAME, cfg.DATA.DATASET))
        if run_dir is None:
            raise UserError("--resume auto found no run with a checkpoint; pass --resume PATH")
        best = os.path.join(run_dir, BEST_CHECKPOINT)
        path = best if os.path.isfile(best) else os.path.join(run_dir, LAST_CHECKPOINT)
    if not path:
        raise UserError("--eval, --predict and --export-embeddings need a checkpoint: pass --resume PATH "
                        "(or --resume auto)")
    return path


def check_config_matches_checkpoint(cfg, stored_cfg, path: str) -> None:
    """UserError naming every CHECKPOINT_IDENTITY_KEYS key on which `cfg` differs from the checkpoint's."""
    given, stored = flatten(cfg), flatten(stored_cfg)
    differing = [f"{key} ({given[key]!r}; the checkpoint has {stored[key]!r})"
                 for key in CHECKPOINT_IDENTITY_KEYS if given[key] != stored[key]]
    if differing:
        raise UserError(f"the config given differs from the one checkpoint {path} was trained with in "
                        f"{', '.join(differing)}; leave out --cfg (and those --opts) to use the checkpoint's own")


def check_classes_match(checkpoint: dict, path: str, data_path: str, class_names: list[str]) -> None:
    """UserError when the checkpoint was trained on other classes than the data's `class_names`."""
    trained_classes = checkpoint.get("class_names")
    if trained_classes is not None and trained_classes != class_names:
        def listed(names: list[str]) -> str:
            return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")

        raise UserError(f"{path} was trained on the classes {listed(trained_classes)} but {data_path} "
                        f"holds {listed(class_names)}; point DATA.DATA_PATH at the data the checkpoint was trained on")


def export_embeddings(parts: TrainingParts, split: str, out_dir: str, logger) -> str:
    """--export-embeddings: the L2-normalised embeddings of a split's images, with their ids and
    labels, into `out_dir`/embeddings_<split>.h5 (utils.embeddings.write_embeddings)."""
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


def run_from_checkpoint(args: argparse.Namespace, cfg, evaluate_val: bool, write_predictions: bool,
                        export_split: str | None = None) -> None:
    """--eval, --predict and --export-embeddings: score the val split (and the verification
    pairs), predict the test split (and the verification test pairs), or export a split's
    embeddings with a checkpoint, writing into an eval-<time> folder beside it. Without --cfg,
    the checkpoint's config is used."""
    logger = create_logger(None)
    path = checkpoint_path_from(cfg)
    checkpoint = load_checkpoint(path)
    stored_cfg = get_config(base_yaml=checkpoint["config"])
    if args.cfg is None:
        cfg = config_from_args(args, base_yaml=checkpoint["config"])
    check_config_matches_checkpoint(cfg, stored_cfg, path)
    cfg.defrost()
    # The weights come from `path`, and compiling would cost more than the one pass it speeds up.
    cfg.MODEL.PRETRAINED, cfg.MODEL.FREEZE, cfg.TRAIN.COMPILE = "", "none", False
    cfg.freeze()
    parts = build_training_parts(cfg, resolve_device(cfg.DEVICE))
    check_classes_match(checkpoint, path, cfg.DATA.DATA_PATH, parts.loaders.class_names)
    weights = load_model_weights(parts.model, checkpoint, path, cfg, best_scoring=True)
    if weights != "model":
        logger.info("using the checkpoint's %s weights, which scored best on val", WEIGHT_LABELS[weights])
    out_dir = new_timestamped_dir(os.path.dirname(os.path.abspath(path)), prefix="eval-")
    os.makedirs(out_dir)
    with_tta = f" with TTA {parts.tta} ({num_views(parts.tta)} views)" if parts.tta != "none" else ""
    if evaluate_val:
        metrics, _ = report_on_val(parts, out_dir)
        logger.info("%s on %s val (%d images)%s: loss %.4f  acc@1 %.2f%%  acc@5 %.2f%%", path, cfg.DATA.DATASET,
                    len(parts.loaders.val_dataset), with_tta, metrics["loss"], metrics["acc1"], metrics["acc5"])
        report_verification(parts, out_dir, logger, weights)
    if write_predictions:
        predictions = predict(parts.forward_model, parts.normalize, parts.loaders.test_loader, parts.setup,
                              tta=parts.tta)
        write_submission(os.path.join(out_dir, "submission.csv"), predictions, cfg.SUBMISSION.HEADER,
                         **submission_columns(cfg, parts.loaders))
        logger.info("%d test predictions of %s written%s", len(predictions), path, with_tta)
        predict_verification(cfg, parts, out_dir, logger)
    if export_split:
        export_embeddings(parts, export_split, out_dir, logger)
    log_outputs(logger, out_dir)


def open_run_dir(cfg, run_dir: str, device: torch.device):
    """Create the run folder with its config.yaml and log.txt; returns the logger, which has said
    where the run lives and what of the config it cannot honour."""
    os.makedirs(run_dir, exist_ok=True)
    logger = create_logger(run_dir)
    with open(os.path.join(run_dir, "config.yaml"), "w", encoding="utf-8") as f:
        f.write(cfg.dump())
    logger.info("run folder: %s", run_dir)
    if device.type != "cuda":
        logger.info("running on %s: TRAIN.MIXED_PRECISION, CHANNELS_LAST, COMPILE and CUDNN_BENCHMARK "
                    "apply on CUDA only, so this run is plain fp32", device)
    if cfg.TRAIN.WARMUP_EPOCHS and 2 * cfg.TRAIN.WARMUP_EPOCHS >= cfg.TRAIN.EPOCHS:
        logger.warning("warning: TRAIN.WARMUP_EPOCHS is %d of %d epochs, so the LR schedule barely starts before "
                       "the run ends; lower TRAIN.WARMUP_EPOCHS for short runs", cfg.TRAIN.WARMUP_EPOCHS,
                       cfg.TRAIN.EPOCHS)
    return logger


def describe_run(cfg, parts: TrainingParts, steps_per_epoch: int, device: torch.device, world: World) -> str:
    """One line: the model's size, the data's splits, the length of the run and the data path."""
    loaders = parts.loaders
    batch = (f"batch {cfg.DATA.BATCH_SIZE} per process x {world.size} processes = {cfg.DATA.BATCH_SIZE * world.size}"
             if world.distributed else f"batch {cfg.DATA.BATCH_SIZE}")
    return (f"{cfg.MODEL.NAME}: {format_count(parts.parameters)} parameters, {format_count(parts.macs)} MACs per "
            f"{cfg.DATA.IMG_SIZE} px image | {cfg.DATA.DATASET}: {len(loaders.train_dataset)} train, "
            f"{len(loaders.val_dataset)} val, {len(loaders.test_dataset)} test images | {cfg.TRAIN.EPOCHS} epochs "
            f"of {steps_per_epoch} steps, {batch}, on {device} | {loaders.pipeline}")


@dataclass
class RunPlan:
    """Where a training run goes and what it starts from, decided before anything is written."""
    cfg: object
    run_dir: str
    resume_path: str = ""  # "" for a run from scratch
    checkpoint: dict | None = None
    notes: list[str] = field(default_factory=list)  # what resuming changed or ignored, for the log


def plan_run(args: argparse.Namespace, cfg) -> RunPlan:
    """Rank 0 picks the folder and the checkpoint (`--resume`, or this run's last.pth when torchrun
    restarted the group); every rank then loads the checkpoint and derives the same config."""
    resume = cfg.MODEL.RESUME or ("auto" if restart_count() > 0 else "")
    try:
        chosen = plan_run_dir(experiment_dir(cfg.OUTPUT, cfg.MODEL.NAME, cfg.DATA.DATASET), cfg.TAG, resume) \
            if is_main_process() else None
        error = None
    except UserError as e:
        chosen, error = None, str(e)
    chosen, error = broadcast_from_main((chosen, error))
    if error:
        raise UserError(error)
    run_dir, resume_path = chosen
    if not resume_path:
        return RunPlan(cfg, run_dir)
    checkpoint = load_checkpoint(resume_path)
    resumed, notes = config_for_resume(args, cfg, checkpoint, resume_path)
    return RunPlan(resumed, run_dir, resume_path, checkpoint, notes)


def config_for_resume(args: argparse.Namespace, cfg, checkpoint: dict, path: str):
    """(the checkpoint's config with this command's --opts and flags applied, log notes).

    Only utils.resume's RESUMABLE_KEYS may differ; any other difference is one UserError line.
    What --cfg's file says is not applied (a run keeps its own config), only noted.
    """
    stored = get_config(base_yaml=checkpoint["config"])
    resumed = config_from_args(argparse.Namespace(**{**vars(args), "cfg": None}), base_yaml=checkpoint["config"])
    stored_keys, resumed_keys = flatten(stored), flatten(resumed)
    changed = differing_keys(stored_keys, resumed_keys)
    refused = [key for key in changed if not may_change_on_resume(key)]
    if refused:
        listed = ", ".join(f"{key} ({resumed_keys[key]!r}; the run has {stored_keys[key]!r})" for key in refused)
        raise UserError(f"{path} continues with the config it was trained with, and this command changes {listed}; "
                        f"only {', '.join(RESUMABLE_KEYS)} and WANDB.* may change on resume. To train from those "
                        f"weights with other settings, start a new run with --opts MODEL.PRETRAINED {path}")
    start_epoch = checkpoint["epoch"] + 1
    if start_epoch >= resumed.TRAIN.EPOCHS:
        raise UserError(f"{path} has already trained {start_epoch} of {resumed.TRAIN.EPOCHS} epochs, so there is "
                        f"nothing left to train; raise TRAIN.EPOCHS (--opts TRAIN.EPOCHS N) to train longer, or "
                        f"score it with --eval / --predict")
    notes = [f"resume changes {describe_change(key, stored_keys, resumed_keys)}" for key in changed]
    if args.cfg:
        from_file = flatten(cfg)
        ignored = [key for key in differing_keys(stored_keys, from_file) if key not in changed]
        if ignored:
            notes.append(f"the run keeps its own config, not {args.cfg}'s " + ", ".join(
                f"{key} {from_file[key]!r} (the run has {stored_keys[key]!r})" for key in ignored)
                + "; pass --opts to change a key that may change on resume")
    return resumed, notes


@dataclass
class StartingPoint:
    """Where training starts: from a checkpoint, or from TRAIN.START_EPOCH."""
    epoch: int
    best: BestSoFar = field(default_factory=BestSoFar)
    wandb_id: str | None = None
    progress: EpochProgress = field(default_factory=EpochProgress)


def restore_training_state(plan: RunPlan, parts: TrainingParts, scheduler, steps_per_epoch: int,
                           logger) -> StartingPoint:
    """From the checkpoint, whose optimizer, scheduler, scaler and RNG states are restored, or
    else TRAIN.START_EPOCH, with the LR schedule moved to where that epoch would have it. A
    checkpoint of another run folder starts a new run: no best yet and a W&B run of its own.
    """
    checkpoint, cfg = plan.checkpoint, plan.cfg
    if checkpoint is None:
        # Stepping the schedule without optimizer updates is the point here, so torch's warning
        # about that order does not apply.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(cfg.TRAIN.START_EPOCH * steps_per_epoch):
                scheduler.step()
        return StartingPoint(cfg.TRAIN.START_EPOCH, BestSoFar(cfg.TEST.SELECT_METRIC))
    parts.optimizer.load_state_dict(checkpoint["optimizer"])
    parts.train_criterion.load_state_dict(checkpoint.get("loss") or {})
    load_scheduler_state(scheduler, checkpoint["scheduler"])
    # The schedule is this config's (TRAIN.EPOCHS may have changed): apply it from the current step.
    for group, lr in zip(parts.optimizer.param_groups, lr_at_current_step(scheduler) or []):
        group["lr"] = lr
    if parts.scaler.is_enabled() and checkpoint["scaler"]:
        parts.scaler.load_state_dict(checkpoint["scaler"])
    elif parts.scaler.is_enabled():
        logger.info("fp16 loss scaling starts afresh: the checkpoint was trained without it (bf16, fp32 or CPU)")
    restore_rng_state(checkpoint["rng"])
    progress = EpochProgress(**checkpoint["progress"]) if checkpoint.get("progress") else EpochProgress()
    epoch = checkpoint["epoch"] + 1
    where = f"epoch {epoch + 1}" + (f" at batch {progress.batches_done + 1}" if progress.batches_done else "")
    if os.path.dirname(os.path.abspath(plan.resume_path)) != os.path.abspath(plan.run_dir):
        logger.info("started from %s as a new run (its own best.pth and W&B run): continuing with %s",
                    plan.resume_path, where)
        return StartingPoint(epoch, BestSoFar(cfg.TEST.SELECT_METRIC), progress=progress)
    best = BestSoFar.from_checkpoint(checkpoint)
    logger.info("resumed from %s: continuing with %s (best %s so far %s)", plan.resume_path, where, best.label,
                format_score(best.score, best.metric) if best.score is not None else "none yet")
    return StartingPoint(epoch, best, checkpoint["wandb_id"], progress)


def loop_settings(cfg, train_batches: int) -> tuple[LoopSettings, int]:
    """(how each epoch's loop runs, optimizer updates per epoch) for a loader of `train_batches`."""
    accumulation = max(1, cfg.TRAIN.ACCUMULATION_STEPS)
    steps_per_epoch, num_batches = plan_epoch(train_batches, accumulation, cfg.TRAIN.MAX_STEPS_PER_EPOCH)
    return LoopSettings(num_batches, accumulation, cfg.TRAIN.CLIP_GRAD, cfg.PRINT_FREQ,
                        cfg.TRAIN.MAX_NONFINITE), steps_per_epoch


def epoch_line(epoch: int, epochs: int, train_stats: dict, scores: dict[str, dict], best: BestSoFar,
               mixing: bool = False) -> str:
    """The log line that closes an epoch: train stats, then the val scores of the trained
    weights and of their EMA and SWA when they exist, with their verification scores when pairs
    are scored. With mixup/cutmix, train acc@1 is on each image's dominant label, and says so."""
    skipped = train_stats["nonfinite_updates"]

    def verify(stats: dict) -> str:
        return f" verify AUC {stats['verify_auc']:.4f} EER {100 * stats['verify_eer']:.2f}%" if "verify_auc" in stats \
            else ""

    val = scores["model"]
    averages = "".join(f" | {WEIGHT_LABELS[name]} val loss {stats['loss']:.4f} acc@1 {stats['acc1']:.2f}%"
                       f"{verify(stats)}" for name, stats in scores.items() if name != "model")
    best_of = f" ({WEIGHT_LABELS[best.weights]} weights)" if len(scores) > 1 or best.weights != "model" else ""
    return (f"epoch {epoch + 1}/{epochs}  train loss {train_stats['train_loss']:.4f} "
            f"acc@1{' (dominant label)' if mixing else ''} "
            f"{train_stats['train_acc1']:.2f}% | val loss {val['loss']:.4f} acc@1 {val['acc1']:.2f}% "
            f"acc@5 {val['acc5']:.2f}%{verify(val)}{averages} | best {best.describe()}{best_of} | "
            f"{train_stats['epoch_time']:.1f}s, {train_stats['images_per_sec']:.0f} img/s"
            + (f" | {skipped} updates skipped for a NaN/Inf loss" if skipped else ""))


def build_weight_averages(cfg, parts: TrainingParts, checkpoint: dict | None) -> StochasticWeightAveraging | None:
    """TRAIN.EMA (set as parts.ema) and TRAIN.SWA (returned) on the run's model, with their
    states when resuming."""
    if cfg.TRAIN.EMA.DECAY > 0:
        parts.ema = ExponentialMovingAverage(parts.model, cfg.TRAIN.EMA.DECAY, cfg.TRAIN.EMA.WARMUP)
        if checkpoint is not None and checkpoint.get("ema"):
            parts.ema.load_state_dict(checkpoint["ema"])
    if cfg.TRAIN.SWA.START_EPOCH < 0:
        return None
    swa = StochasticWeightAveraging(parts.model, parts.optimizer, cfg.TRAIN.SWA.START_EPOCH, cfg.TRAIN.SWA.LR,
                                    cfg.TRAIN.SWA.ANNEAL_EPOCHS)
    if checkpoint is not None and checkpoint.get("swa"):
        swa.load_state_dict(checkpoint["swa"])
    return swa


def verify_pairs_with(module: nn.Module, parts: TrainingParts, tta: str) -> VerificationResult:
    """Verification scores of `module` (a plain ImageClassifier) on the labelled pairs
    (DATA.VERIFY_PAIRS, or drawn by TEST.VERIFY_NUM_PAIRS)."""
    pairs = parts.loaders.verify_pairs
    similarities = similarities_of_pairs(module, parts.normalize, partial(parts.loaders.make_loader, pairs.split),
                                         pairs.first, pairs.second, parts.setup, tta)
    return verification_metrics(similarities, pairs.same, parts.verify_far)


def score_weights(parts: TrainingParts, module: nn.Module, tta: str, plain_module: nn.Module | None = None) -> dict:
    """Val metrics of `module` (loss, acc1, acc5), and with verification pairs also its verify_*
    metrics and their VerificationResult ("verification"); `plain_module` is `module` without its
    DDP or torch.compile wrapper, whose embeddings verification reads."""
    stats = evaluate(module, parts.normalize, parts.loaders.val_loader, parts.criterion, parts.setup, tta=tta)
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
    """The val scores as metrics: val_loss, val_acc1, val_acc5, the verify_* metrics when pairs
    are scored, and the same with _ema / _swa."""
    return {f"{metric if metric.startswith('verify_') else 'val_' + metric}{'' if name == 'model' else '_' + name}":
            value for name, stats in scores.items() for metric, value in stats.items()
            if metric in ("loss", "acc1", "acc5") or metric.startswith("verify_")}


def write_roc(run_dir: str, scores: dict[str, dict]) -> str | None:
    """roc.png in `run_dir`: the ROC curve of every set of weights scored on verification pairs;
    returns its path, or None when no pairs were scored."""
    curves = {WEIGHT_LABELS[name]: (stats["verification"].fpr, stats["verification"].tpr, stats["verify_auc"],
                                    stats["verify_eer"]) for name, stats in scores.items() if "verification" in stats}
    if not curves:
        return None
    path = os.path.join(run_dir, "roc.png")
    save_figure(roc_figure(curves), path)
    return path


def training_state(cfg, parts: TrainingParts, scheduler, swa: StochasticWeightAveraging | None, epoch: int,
                   best: BestSoFar, wandb_id: str | None, progress: EpochProgress | None) -> dict:
    """What a checkpoint holds (utils/checkpoint.py) after `epoch`, or inside the epoch that
    follows it when `progress` says where."""
    return {"model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": parts.scaler.state_dict(), "epoch": epoch,
            "config": cfg.dump(), "rng": capture_rng_state(), "wandb_id": wandb_id,
            "progress": asdict(progress) if progress else None, **best.checkpoint_fields(),
            "ema": parts.ema.state_dict() if parts.ema is not None else None,
            "swa": swa.state_dict() if swa is not None else None, "class_names": parts.loaders.class_names,
            "loss": parts.train_criterion.state_dict()}


def begin_epoch(parts: TrainingParts, swa: StochasticWeightAveraging | None, epoch: int, first_sample: int) -> bool:
    """Point the train sampler at `epoch` from `first_sample` on (where a stopped run left off),
    reset the peak-memory count, and start SWA's LR if this epoch is averaged; returns whether it is."""
    parts.loaders.train_loader.sampler.set_epoch(epoch)
    parts.loaders.train_loader.sampler.set_start(first_sample)
    reset_peak_memory(parts.setup.device)
    swa_epoch = swa is not None and swa.active(epoch)
    if swa_epoch:
        swa.begin_epoch(epoch)
    return swa_epoch


def start_tracking(cfg, run_dir: str, parts: TrainingParts, start: StartingPoint, loop: LoopSettings,
                   world: World) -> tuple[WandbRun, RunTracker]:
    """The run's W&B run (resumed when the checkpoint has one) and its local records."""
    wandb_run = WandbRun(cfg.WANDB.MODE if world.is_main else "disabled", cfg.WANDB.PROJECT, cfg.WANDB.ENTITY,
                         name=os.path.relpath(run_dir, cfg.OUTPUT), run_dir=run_dir,
                         config=_config_as_dict(cfg), resume_id=start.wandb_id, group=cfg.WANDB.GROUP)
    tracker = RunTracker(run_dir, start.epoch, wandb_run, dict(
        epochs_planned=cfg.TRAIN.EPOCHS, parameters=parts.parameters, macs=parts.macs,
        changed_config=changed_from_defaults(cfg)),
        first_step=start.epoch * loop.num_batches + start.progress.batches_done, enabled=world.is_main)
    return wandb_run, tracker


def train(plan: RunPlan, device: torch.device, world: World = World()) -> str:
    """The full run; returns its folder. Under torchrun every rank trains, rank 0 writes."""
    cfg, run_dir = plan.cfg, plan.run_dir
    seed_everything(cfg.SEED)
    parts = build_training_parts(cfg, device, world)
    if plan.checkpoint is not None:
        load_model_weights(parts.model, plan.checkpoint, plan.resume_path, cfg)
    logger = open_run_dir(cfg, run_dir, device) if world.is_main else create_logger(None, quiet=True)
    record_data(logger, run_dir if world.is_main else None, parts.loaders)
    for note in plan.notes:
        logger.info(note)
    loop, steps_per_epoch = loop_settings(cfg, len(parts.loaders.train_loader))
    scheduler = build_scheduler(cfg, parts.optimizer, steps_per_epoch)
    start = restore_training_state(plan, parts, scheduler, steps_per_epoch, logger)
    swa = build_weight_averages(cfg, parts, plan.checkpoint)
    best, progress = start.best, start.progress
    val_tta = parts.tta if cfg.TEST.TTA_VAL else "none"
    logger.info(describe_run(cfg, parts, steps_per_epoch, device, world))
    wandb_run, tracker = start_tracking(cfg, run_dir, parts, start, loop, world)
    keep_best = cfg.SAVE.CHECKPOINTS in ("best_and_last", "best")

    def save(name: str, epoch: int, epoch_progress: EpochProgress | None = None) -> None:
        if world.is_main:
            save_checkpoint(os.path.join(run_dir, name), training_state(
                cfg, parts, scheduler, swa, epoch, best, wandb_run.run_id, epoch_progress))

    resume_hint = f"python main.py --cfg ... --tag {os.path.basename(run_dir)} --resume auto"
    with tracker.recording_interruptions(resume_hint), StopRequest() as stop:
        for epoch in range(start.epoch, cfg.TRAIN.EPOCHS):
            swa_epoch = begin_epoch(parts, swa, epoch, progress.batches_done * cfg.DATA.BATCH_SIZE)
            lr = progress.lr if progress.lr is not None else parts.optimizer.param_groups[0]["lr"]
            train_stats, progress = train_one_epoch(parts, None if swa_epoch else scheduler,
                                                    parts.loaders.train_loader, epoch, loop, logger,
                                                    tracker.log_steps, stop, progress)
            if train_stats is None:
                progress.lr = lr
                save(LAST_CHECKPOINT, epoch - 1, progress)
                raise Preempted(stop.signum, f"stopped by {signal_name(stop.signum)} after batch {progress.batches_done} "
                                f"of {loop.num_batches} in epoch {epoch + 1}; last.pth holds that point; continue "
                                f"with: {resume_hint}")
            if swa_epoch:
                swa.end_epoch(epoch, parts.model)
            patience = cfg.TRAIN.EARLY_STOP_PATIENCE
            scores = score_epoch(parts, swa, loop, epoch, val_tta, epoch + 1 == cfg.TRAIN.EPOCHS, best, patience)
            is_best = best.record(scores)
            if hasattr(scheduler, "step_epoch") and not swa_epoch:  # plateau: the val metrics decide
                scheduler.step_epoch({"val_loss": scores["model"]["loss"], "val_acc1": scores["model"]["acc1"]})
            tracker.log_epoch({"epoch": epoch, "lr": lr, **train_stats, **score_metrics(scores),
                               **peak_memory(device)})
            if world.is_main:
                wandb_run.log_images({"roc": write_roc(run_dir, scores)}, epoch)
            logger.info(epoch_line(epoch, cfg.TRAIN.EPOCHS, train_stats, scores, best, parts.mix is not None))
            if is_best and keep_best:
                save(BEST_CHECKPOINT, epoch)
            stop_early = 0 < patience <= best.epochs_since
            if (epoch + 1) % cfg.SAVE_FREQ == 0 or epoch + 1 == cfg.TRAIN.EPOCHS or stop_early:
                save(LAST_CHECKPOINT, epoch)
            if stop_early:
                logger.info("early stop: %s has not improved for %d epochs (TRAIN.EARLY_STOP_PATIENCE)",
                            best.label, best.epochs_since)
                break
        averages = {"model": None, "ema": parts.ema, "swa": swa.average if swa is not None else None}
        finish_run(cfg, parts, run_dir if world.is_main else None, wandb_run, best, logger,
                   (best.last_epoch_weights, averages[best.last_epoch_weights]))
    tracker.set_status("finished")
    if world.is_main:
        remove_resume_checkpoint(run_dir, cfg.SAVE.CHECKPOINTS)
        log_outputs(logger, run_dir)
    return run_dir


def remove_resume_checkpoint(run_dir: str, keep: str) -> None:
    """Remove last.pth at the end of a run unless SAVE.CHECKPOINTS (`keep`) keeps it: it was
    written only so that the run could resume."""
    last_path = os.path.join(run_dir, LAST_CHECKPOINT)
    if keep in ("best", "none") and os.path.isfile(last_path):
        os.remove(last_path)


def report_verification(parts: TrainingParts, out_dir: str | None, logger, weights: str = "model") -> None:
    """Score the labelled verification pairs with the weights in `parts.model` and TEST.TTA: a
    log line, and their ROC curve in `out_dir`/roc.png (None: computed only, as on torchrun's
    ranks other than 0), labelled with the `weights` loaded (model, ema, swa). Nothing without pairs."""
    pairs = parts.loaders.verify_pairs
    if pairs is None:
        return
    result = verify_pairs_with(parts.model, parts, parts.tta)
    if out_dir:
        curve = (result.fpr, result.tpr, result.auc, result.eer)
        save_figure(roc_figure({f"{WEIGHT_LABELS[weights]} weights": curve}), os.path.join(out_dir, "roc.png"))
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
               logger, final_weights: tuple[str, nn.Module | None] = ("model", None)) -> None:
    """After the last epoch: the val report and submission.csv from the best checkpoint's
    best-scoring weights (trained, EMA or SWA), or, when SAVE.CHECKPOINTS keeps no best.pth, from
    `final_weights`: (the name of the weights that scored best in the last epoch, their
    AveragedModel, None for the trained weights). `run_dir` is None on ranks other than 0, which
    compute their shards and write nothing."""
    # Every rank loads rank 0's best.pth: torchrun across nodes needs a shared disk, as on resume.
    best_path = broadcast_from_main(os.path.join(run_dir, BEST_CHECKPOINT) if run_dir else None)
    if broadcast_from_main(run_dir is not None and os.path.isfile(best_path)):
        name = load_model_weights(parts.model, load_checkpoint(best_path), best_path, cfg, best_scoring=True)
        weights = f"the best checkpoint's {WEIGHT_LABELS[name]} weights"
    else:
        name, average = final_weights
        if average is not None:
            parts.model.load_state_dict(average.module.state_dict())
        weights = (f"the final weights (SAVE.CHECKPOINTS {cfg.SAVE.CHECKPOINTS} keeps no best.pth)"
                   + ("" if name == "model" else f", their {WEIGHT_LABELS[name]} average, which scored best"))
    metrics, image_paths = report_on_val(parts, run_dir)
    predictions = predict(parts.forward_model, parts.normalize, parts.loaders.test_loader, parts.setup, tta=parts.tta)
    report_verification(parts, run_dir, logger, name)
    predict_verification(cfg, parts, run_dir, logger)
    if run_dir is None:
        return
    wandb_run.log_val_report(image_paths, metrics["predictions"].targets, metrics["predictions"].predicted,
                             parts.loaders.class_names)
    write_submission(os.path.join(run_dir, "submission.csv"), predictions, cfg.SUBMISSION.HEADER,
                     **submission_columns(cfg, parts.loaders))
    wandb_run.finish()
    best_score = best.describe(with_label=True) if best.score is not None else f"{best.label} none (no epoch trained)"
    tta = f", with TTA {parts.tta}" if parts.tta != "none" else ""
    logger.info("best %s; val report and %d test predictions written with %s%s", best_score, len(predictions),
                weights, tta)


def log_outputs(logger, folder: str) -> None:
    """The last line of every mode: where its files are (hidden files and W&B's folder left out)."""
    names = sorted(name for name in os.listdir(folder) if not name.startswith(".") and name != "wandb")
    logger.info("outputs in %s: %s", folder, ", ".join(names))


def study_dir(cfg, kind: str) -> str:
    """A fresh OUTPUT/<model>_<dataset>/<kind>-<time> folder for a study that is not a run."""
    folder = new_timestamped_dir(experiment_dir(cfg.OUTPUT, cfg.MODEL.NAME, cfg.DATA.DATASET), prefix=f"{kind}-")
    os.makedirs(folder)
    return folder


def run_throughput_scan(cfg, device: torch.device, batch_sizes: list[int] | None, max_batch: int | None) -> str:
    """--throughput: images/s and memory against batch size, with the run's precision switches."""
    logger = create_logger(None)
    seed_everything(cfg.SEED)
    parts = build_training_parts(cfg, device)
    if batch_sizes is None:
        batch_sizes = default_batch_sizes(max_batch or (CUDA_MAX_BATCH if device.type == "cuda" else CPU_MAX_BATCH))

    def make_loader(batch_size: int, num_batches: int) -> Iterable:
        # Drawn with replacement, so that a small data set still fills every batch.
        sampler = RandomSampler(parts.loaders.train_dataset, replacement=True, num_samples=batch_size * num_batches)
        return parts.loaders.make_loader("train", sampler, batch_size)

    out_dir = study_dir(cfg, "throughput")
    logger.info("throughput of %s on %s, %d px, on %s: batch sizes %s", cfg.MODEL.NAME, cfg.DATA.DATASET,
                cfg.DATA.IMG_SIZE, device, ", ".join(map(str, batch_sizes)))
    scan = scan_throughput(parts.forward_model, parts.normalize, parts.criterion, parts.optimizer, parts.scaler,
                           parts.setup, make_loader, batch_sizes, cfg.DATA.IMG_SIZE, parts.loaders.num_classes)
    table = pd.DataFrame(scan.rows)
    table.to_csv(os.path.join(out_dir, "throughput.csv"), index=False, float_format="%.2f")
    if scan.rows:
        save_figure(throughput_figure(scan.rows), os.path.join(out_dir, "throughput.png"))
        print(table.round(1).to_markdown(index=False))
    if scan.out_of_memory_at is None:
        logger.info("largest batch that fits: %s (no out-of-memory up to the largest batch size tried; raise "
                    "--max-batch or pass --batch-sizes to go further)", scan.largest_fit)
    elif scan.largest_fit is None:
        logger.info("largest batch that fits: none (batch size %d already runs out of memory)",
                    scan.out_of_memory_at)
    else:
        logger.info("largest batch that fits: %d (%d runs out of memory)", scan.largest_fit, scan.out_of_memory_at)
    log_outputs(logger, out_dir)
    return out_dir


def run_lr_find(cfg, device: torch.device) -> float | None:
    """--lr-find: the LR range test on the run's model, optimizer and data; saves nothing of the model."""
    logger = create_logger(None)
    seed_everything(cfg.SEED)
    parts = build_training_parts(cfg, device)
    out_dir = study_dir(cfg, "lr-find")
    result = lr_range_test(parts.forward_model, parts.normalize, parts.loaders.train_loader, parts.criterion,
                           parts.optimizer, parts.scaler, parts.setup)
    pd.DataFrame({"lr": result.lrs, "loss": result.losses, "smoothed_loss": result.smoothed}).to_csv(
        os.path.join(out_dir, "lr_find.csv"), index=False)
    save_figure(lr_find_figure(result.lrs, result.smoothed, result.suggestion), os.path.join(out_dir, "lr_find.png"))
    if result.suggestion is None:
        logger.info("no suggestion: the loss diverged after only %d steps of the range %.0e to %.0e; check "
                    "that the model trains at all with a short run at a small TRAIN.LR", len(result.lrs),
                    MIN_LR, MAX_LR)
    else:
        logger.info("suggested LR: %.2e (steepest descent of the smoothed loss); train with --opts TRAIN.LR %.2e",
                    result.suggestion, result.suggestion)
    log_outputs(logger, out_dir)
    return result.suggestion


def _config_as_dict(node) -> dict:
    return {key: _config_as_dict(value) if isinstance(value, dict) else value for key, value in node.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.list_models:
            print_model_table(args.img_size)
            return 0
        cfg = config_from_args(args)
        if cfg.EVAL_MODE or args.predict or args.export_embeddings:
            run_from_checkpoint(args, cfg, evaluate_val=cfg.EVAL_MODE, write_predictions=args.predict,
                                export_split=args.export_embeddings)
            return 0
        if args.throughput:
            run_throughput_scan(cfg, resolve_device(cfg.DEVICE), args.batch_sizes, args.max_batch)
        elif args.lr_find:
            run_lr_find(cfg, resolve_device(cfg.DEVICE))
        else:
            run_training(args, cfg)
    except UserError as e:
        if is_main_process():
            print(f"error: {user_error_line(e)}", file=sys.stderr)
        return 2
    except Preempted as e:
        if is_main_process():
            print(e, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        close_world()
    return 0


def user_error_line(error: UserError) -> str:
    """The error's one line. One raised in a loader worker (a transform that cannot run) arrives
    wrapped in the worker's traceback, whose last line holds the original message."""
    lines = str(error).strip().splitlines()
    if len(lines) > 1 and "DataLoader worker process" in lines[0]:
        return lines[-1].split(": ", 1)[-1]
    return lines[0] if lines else ""


def run_training(args: argparse.Namespace, cfg) -> str:
    """Training, alone or as one rank of a torchrun group."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0")) if launched_by_torchrun() else 0
    device = resolve_device(device_for_rank(cfg.DEVICE, local_rank) if launched_by_torchrun() else cfg.DEVICE)
    world = init_world(device)
    plan = plan_run(args, cfg)
    if plan.cfg.DEVICE != cfg.DEVICE:  # resuming on another device (DEVICE may change on resume)
        device = resolve_device(device_for_rank(plan.cfg.DEVICE, local_rank) if world.distributed
                                else plan.cfg.DEVICE)
    return train(plan, device, world)


if __name__ == "__main__":
    sys.exit(main())
