"""The parts of a training run, built and placed on the device: the one record every step reads."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from data import Loaders
from data.mix import BatchMixer
from data.normalize import Normalize
from engine.weight_averaging import ExponentialMovingAverage
from evaluation.competition_metrics import CompetitionMetrics
from models.losses import TrainingLoss
from utils.device import DeviceSetup


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
    competition: CompetitionMetrics | None = None  # TEST.METRICS, scored on val every epoch
