"""Images/s of the project's training loop beside the model alone and a homework-style loop.

For each model, in one run:

(a) the project's loop as main.py runs it: the config, `build_training_parts` (the real train
    loader, DATA.NUM_WORKERS workers, the config's augmentation on uint8 images, per image or on
    the device as DATA.AUG_DEVICE and DATA.CACHE say), the schedule, and `train_one_epoch`,
    timed over --batches batches after --warmup untimed ones;
(b) the model alone, the compute floor: the same model, normalisation, optimizer and precision
    switches, trained by `engine.train_step.train_step` on one uint8 batch already on the device;
(c) the homework codebase's way: a Dataset that makes a PIL image of every image and runs
    torchvision's RandomCrop, RandomHorizontalFlip, ColorJitter, ToTensor and Normalize on it in
    the loader workers (float32 tensors travel), then fp32, `.to(device)` per batch, forward,
    CrossEntropyLoss, backward, step; the same model class and optimizer as (a).

(a)/(b) says what share of the model's speed the loop keeps (1 when the data never make the
model wait); (a)/(c) what it gains over the homework way. Usage:

    python bench/train.py                                     # LeNet, 32 px, batch 512, 2 workers
    python bench/train.py --models lenet,alexnet,resnet18     # AlexNet's row runs at 64 px
    python bench/train.py --cfg configs/resnet18_cifar10.yaml --data-path /data/cifar
    python bench/train.py --opts DATA.CACHE ram              # (a) from the split cached in memory

Without --cfg the data are bench/fake_data.py's CIFAR-10, written to a temporary folder in the
real pickled layout, so that (a) runs the real CIFAR code, with the default augmentation, which is
(c)'s. (c)'s chain stays the same with --cfg: a config that augments otherwise
(configs/lenet_cifar10.yaml has no colour jitter) gives (a) other work.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import shlex
import sys
import tempfile
import time
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.fake_data import write_cifar10  # noqa: E402
from bench.fake_formats import CIFAR10_LABEL_NAMES  # noqa: E402
from config import get_config  # noqa: E402
from data.build import resolve_num_workers  # noqa: E402
from data.dataset import ImageDataset, ImageStore  # noqa: E402
from engine.build import build_training_parts, build_weight_averages, loop_settings, seed_everything  # noqa: E402
from engine.loop import EpochProgress, train_one_epoch  # noqa: E402
from engine.parts import TrainingParts  # noqa: E402
from engine.preemption import StopRequest  # noqa: E402
from engine.tracking import StepsFile  # noqa: E402
from engine.train_step import train_step, training_loss  # noqa: E402
from models import build_model  # noqa: E402
from models.build import model_cost  # noqa: E402
from optimizer import build_optimizer, build_scheduler  # noqa: E402
from studies.throughput import repeat_batch, synchronize, time_steps  # noqa: E402
from utils.cli import OneLineErrorParser, positive_int  # noqa: E402
from utils.device import AMP_DTYPES, DeviceSetup, resolve_device  # noqa: E402
from utils.errors import UserError, user_error_line  # noqa: E402
from utils.logger import create_logger  # noqa: E402

# The homework codebase's fixed augmentation: zero padding before the random crop, and the
# brightness, contrast and saturation jitter (also the project's defaults, so (a) does as much).
HOMEWORK_CROP_PADDING = 4
HOMEWORK_COLOR_JITTER = 0.4
# A model that cannot take --img-size runs at the size doubled until it can, up to this.
LARGEST_IMAGE_SIZE = 1024
COLUMNS = ["model", "img size", "batch", "device", "precision", "(a) loop", "(b) model alone",
           "(c) homework-style", "(a)/(b)", "(a)/(c)"]
# Format of each column in the printed table: images/s as whole numbers, ratios to 0.01.
COLUMN_FORMATS = ["", "", "", "", "", ",.0f", ",.0f", ",.0f", ".2f", ".2f"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser("python bench/train.py", description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated model names, one row each (default: the --cfg "
                                         "config's MODEL.NAME, or lenet without --cfg)")
    parser.add_argument("--img-size", type=positive_int, default=32,
                        help="DATA.IMG_SIZE; a model that cannot take it runs at it doubled until it can")
    parser.add_argument("--batch-size", type=positive_int, default=512, help="DATA.BATCH_SIZE")
    parser.add_argument("--batches", type=positive_int, default=20, help="timed batches per loop")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches before them (worker start-up, "
                                                              "cuDNN autotuning, torch.compile)")
    parser.add_argument("--workers", type=int, default=2, help="DATA.NUM_WORKERS of loops (a) and (c)")
    parser.add_argument("--device", default="auto", help="DEVICE: auto, cpu, cuda or cuda:N")
    parser.add_argument("--cfg", help="a YAML config, with its own data (default: synthetic CIFAR-10 and the "
                                      "config defaults)")
    parser.add_argument("--data-path", help="DATA.DATA_PATH of the --cfg config's data set")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="KEY VALUE pairs applied last, e.g. --opts TRAIN.COMPILE True; must come last")
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    if args.data_path and not args.cfg:
        parser.error("--data-path belongs to --cfg (without it the data are synthetic); add --cfg, or leave it out")
    return args


def write_synthetic_cifar10(root: str, num_train: int) -> None:
    """At least `num_train` 32 px train images (and a token test split) under `root`, in CIFAR-10's
    pickled layout."""
    write_cifar10(root, per_class=math.ceil(num_train / len(CIFAR10_LABEL_NAMES)), test_per_class=1)


def row_config(args, model_name: str, img_size: int, synthetic_root: str | None):
    """The config of one row: --cfg (or the defaults on synthetic CIFAR-10), then the flags, then --opts."""
    data = ["DATA.DATASET", "cifar10", "DATA.DATA_PATH", repr(synthetic_root)] if synthetic_root else []
    flags = ["MODEL.NAME", model_name, "DATA.IMG_SIZE", str(img_size), "DATA.BATCH_SIZE", str(args.batch_size),
             "DATA.NUM_WORKERS", str(args.workers), "DEVICE", repr(args.device)]
    if args.data_path:
        flags += ["DATA.DATA_PATH", repr(args.data_path)]
    return get_config(args.cfg, data + flags + list(args.opts))


def fitting_image_size(cfg) -> int:
    """DATA.IMG_SIZE, doubled until the model can take it (AlexNet's strides need 63 px: 32 -> 64)."""
    size = cfg.DATA.IMG_SIZE
    while True:
        sized = cfg.clone()
        sized.defrost()
        sized.DATA.IMG_SIZE = size
        if model_cost(sized)[1] is not None:
            return size
        if size * 2 > LARGEST_IMAGE_SIZE:
            raise UserError(f"{cfg.MODEL.NAME} cannot take images of {cfg.DATA.IMG_SIZE} to {size} px; "
                            f"leave it out of --models")
        size *= 2


class ClockFromBatch:
    """Iterates `loader` and reads the clock when batch `index` is asked for (after the device
    has caught up), so that the steps after the warm-up are timed without reaching into the loop."""

    def __init__(self, loader: Iterable, index: int, device: torch.device):
        self.loader, self.index, self.device = loader, index, device
        self.started_at: float | None = None

    def __iter__(self) -> Iterator:
        for position, batch in enumerate(self.loader):
            if position == self.index:
                synchronize(self.device)
                self.started_at = time.perf_counter()
            yield batch


def time_project_loop(cfg, parts: TrainingParts, warmup: int, batches: int, logger,
                      steps_dir: str) -> float:
    """(a): images/s of `engine.loop.train_one_epoch` over `batches` batches after `warmup`, set up as
    main.train() sets up an epoch: the schedule, the EMA, the step log and the stop request."""
    train_loader = parts.loaders.train_loader
    needed = warmup + batches
    if len(train_loader) < needed:
        raise UserError(f"the {needed} batches asked for (--warmup + --batches) need {needed * cfg.DATA.BATCH_SIZE} "
                        f"train images, but the train split has {len(parts.loaders.train_dataset)}; lower "
                        f"--batches, --warmup or --batch-size")
    loop, steps_per_epoch = loop_settings(cfg, len(train_loader))
    loop = dataclasses.replace(loop, num_batches=needed)
    scheduler = build_scheduler(cfg, parts.optimizer, steps_per_epoch)
    # For the EMA, which updates after every step; SWA acts between epochs, outside the timed steps.
    build_weight_averages(cfg, parts, None)
    train_loader.sampler.set_epoch(0)
    clocked = ClockFromBatch(train_loader, warmup, parts.setup.device)
    with StopRequest() as stop:
        train_one_epoch(parts, scheduler, clocked, 0, loop, logger, StepsFile(steps_dir).log, stop,
                                   EpochProgress())
    synchronize(parts.setup.device)
    return batches * cfg.DATA.BATCH_SIZE / (time.perf_counter() - clocked.started_at)


def time_model_alone(cfg, parts: TrainingParts, warmup: int, batches: int) -> float:
    """(b): images/s of `train_step` on one random uint8 batch already on the device."""
    device, size, batch_size = parts.setup.device, cfg.DATA.IMG_SIZE, cfg.DATA.BATCH_SIZE
    images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, device=device)
    targets = torch.randint(0, parts.loaders.num_classes, (batch_size,), device=device)
    criterion = parts.train_criterion or parts.criterion

    def step(images: torch.Tensor, targets: torch.Tensor) -> None:
        train_step(parts.forward_model, parts.normalize, images, targets, criterion, parts.optimizer, parts.scaler,
                   parts.setup)

    parts.forward_model.train()
    return batch_size / time_steps(repeat_batch(images, targets), step, device, warmup, batches)


class HomeworkStyleDataset(Dataset):
    """One image per `__getitem__`, read from `store`, made a PIL image and transformed by
    `transform` (which ends in float32 tensors), with its label."""

    def __init__(self, store: ImageStore, labels: np.ndarray, indices: np.ndarray, transform: transforms.Compose):
        self.store, self.labels, self.indices, self.transform = store, labels, indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        position = self.indices[index]
        pixels = self.store.read(np.asarray([position]))[0]  # uint8 (3, S, S)
        image = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)))
        return self.transform(image), int(self.labels[position])


def homework_transform(img_size: int, stored_size: int, mean, std) -> transforms.Compose:
    """The homework codebase's train chain on PIL images (resized first when the model needs
    another size, as the project's chain is)."""
    resize = [transforms.Resize((img_size, img_size))] if stored_size != img_size else []
    jitter = HOMEWORK_COLOR_JITTER
    return transforms.Compose([*resize, transforms.RandomCrop(img_size, padding=HOMEWORK_CROP_PADDING),
                               transforms.RandomHorizontalFlip(), transforms.ColorJitter(jitter, jitter, jitter),
                               transforms.ToTensor(), transforms.Normalize(mean, std)])


def time_homework_loop(cfg, device: torch.device, train_dataset: ImageDataset, mean, std, warmup: int,
                       batches: int) -> float:
    """(c): images/s of the homework-style loop on the same images, model class and optimizer."""
    transform = homework_transform(cfg.DATA.IMG_SIZE, train_dataset.store.image_size, mean, std)
    dataset = HomeworkStyleDataset(train_dataset.store, train_dataset.labels, train_dataset.indices, transform)
    loader = DataLoader(dataset, batch_size=cfg.DATA.BATCH_SIZE, shuffle=True, drop_last=True,
                        num_workers=resolve_num_workers(cfg.DATA.NUM_WORKERS))
    model = build_model(cfg).to(device)
    optimizer = build_optimizer(cfg, model)
    criterion = nn.CrossEntropyLoss()
    model.train()

    def step(images: torch.Tensor, targets: torch.Tensor) -> None:
        images, targets = images.to(device), targets.to(device)
        # training_loss only adds the auxiliary heads' losses of GoogLeNet, which return them in training.
        _, loss = training_loss(model(images), targets, criterion)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    # Two things flatter (c), so that (a)/(c) errs low: no loss.item() per step, which homework
    # loops often have for their meters (a host sync per step on CUDA), and cuDNN autotuning,
    # which (a)'s DeviceSetup switched on for the whole process (TRAIN.CUDNN_BENCHMARK).
    return cfg.DATA.BATCH_SIZE / time_steps(iter(loader), step, device, warmup, batches)


def precision_label(setup: DeviceSetup) -> str:
    """What (a) and (b) run in, e.g. "bf16 + channels_last" ((c) is always plain fp32)."""
    amp_names = {dtype: name for name, dtype in AMP_DTYPES.items() if dtype is not None}
    switches = [amp_names.get(setup.amp_dtype, "fp32")]
    if setup.channels_last:
        switches.append("channels_last")
    if setup.compile:
        switches.append("compile")
    return " + ".join(switches)


def device_label(device: torch.device) -> str:
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def measure_row(cfg, device: torch.device, warmup: int, batches: int, logger, steps_dir: str) -> dict:
    """The three rates of one model, and their ratios, as a row of COLUMNS."""
    seed_everything(cfg.SEED)
    parts = build_training_parts(cfg, device)
    loop_rate = time_project_loop(cfg, parts, warmup, batches, logger, steps_dir)
    model_rate = time_model_alone(cfg, parts, warmup, batches)
    loaders, precision = parts.loaders, precision_label(parts.setup)
    # The project's model leaves the device, and its loader's persistent workers stop, before
    # the homework loop starts its own.
    del parts
    train_dataset, mean, std = loaders.train_dataset, loaders.mean, loaders.std
    del loaders
    homework_rate = time_homework_loop(cfg, device, train_dataset, mean, std, warmup, batches)
    return dict(zip(COLUMNS, [cfg.MODEL.NAME, cfg.DATA.IMG_SIZE, cfg.DATA.BATCH_SIZE, device_label(device),
                              precision, loop_rate, model_rate, homework_rate, loop_rate / model_rate,
                              loop_rate / homework_rate]))


def markdown_table(rows: list[dict]) -> str:
    return pd.DataFrame(rows, columns=COLUMNS).to_markdown(index=False, floatfmt=COLUMN_FORMATS)


def run(args, logger, workdir: str) -> list[dict]:
    """One row per model of --models, on synthetic CIFAR-10 written under `workdir` unless --cfg is given."""
    synthetic_root = None
    if args.cfg is None:
        synthetic_root = os.path.join(workdir, "cifar")
        write_synthetic_cifar10(synthetic_root, (args.warmup + args.batches) * args.batch_size)
    model_names = (args.models.split(",") if args.models
                   else [get_config(args.cfg).MODEL.NAME if args.cfg else "lenet"])
    device = resolve_device(args.device)
    rows = []
    for model_name in (name.strip() for name in model_names):
        cfg = row_config(args, model_name, args.img_size, synthetic_root)
        img_size = fitting_image_size(cfg)
        if img_size != cfg.DATA.IMG_SIZE:
            logger.info("%s cannot take %d px images; its row runs at %d px", model_name, cfg.DATA.IMG_SIZE,
                        img_size)
            cfg = row_config(args, model_name, img_size, synthetic_root)
        logger.info("%s at %d px, batch %d, on %s: timing (a), (b) and (c)", cfg.MODEL.NAME, img_size,
                    cfg.DATA.BATCH_SIZE, device)
        rows.append(measure_row(cfg, device, args.warmup, args.batches, logger, workdir))
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    logger = create_logger(None)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            rows = run(args, logger, workdir)
    except UserError as e:
        print(f"error: {user_error_line(e)}", file=sys.stderr)
        return 2
    print(f"{datetime.date.today().isoformat()}, torch {torch.__version__}, torchvision {torchvision.__version__}: "
          f"{shlex.join(['python', 'bench/train.py', *argv])}")
    print("images/s of training steps; the precision is that of (a) and (b), (c) runs in fp32\n")
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
