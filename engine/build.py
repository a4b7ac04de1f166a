"""Build a training run's parts from the config: the engine's liaison, as data/build.py and
models/build.py are for theirs. Nothing else in engine/ needs to know a config key by name to
assemble a run."""
from __future__ import annotations

import math
import os
import random

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from config import changed_from_defaults
from data import build_loader
from data.mix import build_batch_mixer
from data.normalize import Normalize
from data.subset import subset_note
from engine.checkpoint import check_pretrained_classes
from engine.launch import World
from engine.loop import LoopSettings
from engine.parts import TrainingParts
from engine.resume import StartingPoint
from engine.tracking import RunTracker
from engine.wandb_run import WandbRun
from engine.weight_averaging import ExponentialMovingAverage, StochasticWeightAveraging
from evaluation.competition_metrics import CompetitionMetrics
from models import build_model
from models.build import build_loss, model_cost
from models.complexity import format_count
from optimizer import build_optimizer
from utils.device import DeviceSetup
from utils.errors import UserError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_training_parts(cfg, device: torch.device, world: World = World()) -> TrainingParts:
    """Model, optimizer and data from the config. Fails on a typo, or on MODEL.PRETRAINED weights
    whose classifier was kept for other classes, before anything is written.

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
    if cfg.MODEL.PRETRAINED:
        note = check_pretrained_classes(cfg.MODEL.PRETRAINED, model, cfg.DATA.DATA_PATH, loaders.class_names)
        loaders.notes.extend([note] if note else [])
    if cfg.SUBMISSION.ID == "file" and not loaders.test_ids_from_data:
        raise UserError(f"SUBMISSION.ID file names each row by its test image's file, but the test images of "
                        f"DATA.DATASET {cfg.DATA.DATASET} are not files; use SUBMISSION.ID index")
    if cfg.SUBMISSION.FORMAT == "topk" and cfg.SUBMISSION.TOPK > loaders.num_classes:
        raise UserError(f"SUBMISSION.TOPK {cfg.SUBMISSION.TOPK} asks for more classes per row than the "
                        f"{loaders.num_classes} the model predicts; lower it to at most {loaders.num_classes}")
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
                            loaders.num_classes, cfg.SEED)
    return TrainingParts(model, forward_model, normalize, optimizer, setup.grad_scaler(), setup, loaders,
                         nn.CrossEntropyLoss(), parameters, macs, wrappers[0] if wrappers else None,
                         train_criterion, mix, tta=cfg.TEST.TTA, verify_far=cfg.TEST.VERIFY_FAR,
                         competition=CompetitionMetrics(tuple(cfg.TEST.METRICS), cfg.TEST.TOP_K)
                         if cfg.TEST.METRICS else None)


def plan_epoch(num_batches: int, accumulation_steps: int, max_steps: int) -> tuple[int, int]:
    """(optimizer updates, batches) per epoch: every batch, or the first max_steps updates' worth."""
    steps = math.ceil(num_batches / accumulation_steps)
    if max_steps:
        steps = min(steps, max_steps)
    return steps, min(num_batches, steps * accumulation_steps)


def loop_settings(cfg, train_batches: int) -> tuple[LoopSettings, int]:
    """(how each epoch's loop runs, optimizer updates per epoch) for a loader of `train_batches`."""
    accumulation = max(1, cfg.TRAIN.ACCUMULATION_STEPS)
    steps_per_epoch, num_batches = plan_epoch(train_batches, accumulation, cfg.TRAIN.MAX_STEPS_PER_EPOCH)
    return LoopSettings(num_batches, accumulation, cfg.TRAIN.CLIP_GRAD, cfg.PRINT_FREQ,
                        cfg.TRAIN.MAX_NONFINITE), steps_per_epoch


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


def describe_run(cfg, parts: TrainingParts, steps_per_epoch: int, device: torch.device, world: World) -> str:
    """One line: the model's size, the data's splits, the length of the run and the data path."""
    loaders = parts.loaders
    batch = (f"batch {cfg.DATA.BATCH_SIZE} per process x {world.size} processes = {cfg.DATA.BATCH_SIZE * world.size}"
             if world.distributed else f"batch {cfg.DATA.BATCH_SIZE}")
    return (f"{cfg.MODEL.NAME}: {format_count(parts.parameters)} parameters, {format_count(parts.macs)} MACs per "
            f"{cfg.DATA.IMG_SIZE} px image | {cfg.DATA.DATASET}: {len(loaders.train_dataset)} train, "
            f"{len(loaders.val_dataset)} val, {len(loaders.test_dataset)} test images | "
            f"{cfg.TRAIN.EPOCHS} epoch{'s' * (cfg.TRAIN.EPOCHS != 1)} "
            f"of {steps_per_epoch} steps, {batch}, on {device} | {loaders.pipeline}")


def start_tracking(cfg, run_dir: str, parts: TrainingParts, start: StartingPoint, loop: LoopSettings,
                   world: World) -> tuple[WandbRun, RunTracker]:
    """The run's W&B run (resumed when the checkpoint has one) and its local records."""
    wandb_run = WandbRun(cfg.WANDB.MODE if world.is_main else "disabled", cfg.WANDB.PROJECT, cfg.WANDB.ENTITY,
                         name=os.path.relpath(run_dir, cfg.OUTPUT), run_dir=run_dir,
                         config=_config_as_dict(cfg), resume_id=start.wandb_id, group=cfg.WANDB.GROUP)
    subsets = parts.loaders.subsets
    tracker = RunTracker(run_dir, start.epoch, wandb_run, dict(
        epochs_planned=cfg.TRAIN.EPOCHS, parameters=parts.parameters, macs=parts.macs,
        changed_config=changed_from_defaults(cfg), subsets=subsets),
        first_step=start.epoch * loop.num_batches + start.progress.batches_done, enabled=world.is_main,
        title=run_title(cfg, run_dir, subsets),
        train_loss=train_loss_name(cfg), select_metric=cfg.TEST.SELECT_METRIC)
    return wandb_run, tracker


def run_title(cfg, run_dir: str, subsets: dict[str, tuple[int, int]]) -> str:
    """What every picture of a run says it shows: `lenet_digits/run: lenet on digits`, the run's
    folder relative to OUTPUT, with the subsets it scored on (DATA.VAL_SUBSET, TEST_SUBSET)."""
    return (f"{os.path.relpath(run_dir, cfg.OUTPUT)}: {cfg.MODEL.NAME} on {cfg.DATA.DATASET}"
            + (f" ({subset_note(subsets)})" if subsets else ""))


def train_loss_name(cfg) -> str:
    """What the train loss is when it is not the val loss, plain cross-entropy (then the curves
    draw them apart): "arcface", "ce+triplet", "cross-entropy, label smoothing 0.1, on mixup
    targets"; "" when it is."""
    mixed = "/".join(name for name, on in (("mixup", cfg.AUG.MIXUP), ("cutmix", cfg.AUG.CUTMIX)) if on)
    if cfg.TRAIN.LOSS == "ce" and not cfg.TRAIN.LABEL_SMOOTHING and not mixed:
        return ""
    return ", ".join(part for part in (
        "cross-entropy" if cfg.TRAIN.LOSS == "ce" else cfg.TRAIN.LOSS,
        f"label smoothing {cfg.TRAIN.LABEL_SMOOTHING:g}" if cfg.TRAIN.LABEL_SMOOTHING else "",
        f"on {mixed} targets" if mixed else "") if part)


def _config_as_dict(node) -> dict:
    return {key: _config_as_dict(value) if isinstance(value, dict) else value for key, value in node.items()}
