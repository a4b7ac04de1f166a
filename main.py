"""Train, validate and predict: `python main.py --cfg configs/X.yaml [flags] [--opts KEY VALUE ...]`.

The recipe, top to bottom: parse the config, build the model, optimizer and data, train with a
val pass every epoch (checkpointing as it goes), then predict the test split with the best
checkpoint and write submission.csv.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from config import get_config
from data import build_loader
from data.normalize import Normalize
from models import build_model, list_models
from models.complexity import count_macs, count_parameters, format_count
from optimizer import build_optimizer, build_scheduler, check_scheduler_name
from utils.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from utils.device import DeviceSetup, peak_memory_mb, resolve_device
from utils.errors import UserError
from utils.logger import create_logger
from utils.metrics import ClassificationMeter
from utils.run_dir import BEST_CHECKPOINT, LAST_CHECKPOINT, experiment_dir, latest_run_with_checkpoint, plan_run_dir
from utils.submission import write_submission
from utils.tracking import MetricsFile, WandbRun


# Weight of each auxiliary classifier's loss (GoogLeNet, Szegedy et al., 2014).
AUX_LOSS_WEIGHT = 0.3


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad flag ends like every other user error: one line, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see python main.py --help\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _OneLineErrorParser(description="Train an image classifier from a YAML config.")
    parser.add_argument("--cfg", help="YAML config file (defaults only when omitted)")
    parser.add_argument("--batch-size", type=int, help="DATA.BATCH_SIZE")
    parser.add_argument("--data-path", help="DATA.DATA_PATH")
    parser.add_argument("--output", help="OUTPUT: root folder for runs")
    parser.add_argument("--tag", help="TAG: name of the run folder")
    parser.add_argument("--resume", help="MODEL.RESUME: a checkpoint path, or 'auto' for this run's latest")
    parser.add_argument("--eval", action="store_true", help="EVAL_MODE: only evaluate the --resume checkpoint")
    parser.add_argument("--device", help="DEVICE: auto, cpu, cuda or cuda:N")
    parser.add_argument("--list-models", action="store_true",
                        help="print every model with its parameters and MACs at --img-size, then exit")
    parser.add_argument("--img-size", type=int, default=224, help="input size for --list-models (default 224)")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="KEY VALUE pairs applied last, e.g. --opts TRAIN.LR 1e-3 TRAIN.EPOCHS 10")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace):
    """Flags become --opts pairs placed before the user's --opts, so --opts wins."""
    misplaced = [item for item in args.opts[0::2] if item.startswith("--")]
    if misplaced:
        raise UserError(f"{misplaced[0]} comes after --opts, which reads everything after it as KEY VALUE "
                        f"pairs; put flags before --opts")
    flags = {"DATA.BATCH_SIZE": args.batch_size, "DATA.DATA_PATH": args.data_path, "OUTPUT": args.output,
             "TAG": args.tag, "MODEL.RESUME": args.resume, "DEVICE": args.device,
             "EVAL_MODE": True if args.eval else None}
    # repr() keeps strings as strings when the config decodes literals (a TAG of "1e3" stays text).
    opts = [item for key, value in flags.items() if value is not None
            for item in (key, repr(value) if isinstance(value, str) else str(value))]
    return get_config(args.cfg, opts + list(args.opts))


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


def train_one_epoch(model, normalize, loader, criterion, optimizer, scheduler, scaler, setup: DeviceSetup,
                    epoch: int, accumulation_steps: int, clip_grad: float, print_freq: int, logger) -> dict:
    """One pass over `loader`, an optimizer update every `accumulation_steps` batches."""
    model.train()
    meter = ClassificationMeter(setup.device)
    start = time.perf_counter()
    num_batches = len(loader)
    progress = tqdm(loader, desc=f"train {epoch + 1}", leave=False, dynamic_ncols=True, disable=None)
    optimizer.zero_grad(set_to_none=True)
    for i, (images, targets) in enumerate(progress):
        images = normalize(images.to(setup.device, non_blocking=True))
        targets = targets.to(setup.device, non_blocking=True)
        with setup.autocast():
            logits, loss = training_loss(model(images), targets, criterion)
        scaler.scale(loss / accumulation_steps).backward()
        if (i + 1) % accumulation_steps == 0 or i + 1 == num_batches:
            if clip_grad > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        meter.update(loss, logits, targets)
        if (i + 1) % print_freq == 0 or i + 1 == num_batches:
            summary = meter.summary()  # the only host-device sync, once per print
            stats = dict(loss=f"{summary['loss']:.4f}", acc=f"{summary['acc1']:.2f}",
                         lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                         img_s=f"{meter.count / (time.perf_counter() - start):.0f}")
            progress.set_postfix(stats)
            logger.debug("train epoch %d [%d/%d] %s", epoch + 1, i + 1, num_batches,
                         " ".join(f"{k} {v}" for k, v in stats.items()))
    elapsed = time.perf_counter() - start
    summary = meter.summary()
    return {"train_loss": summary["loss"], "train_acc1": summary["acc1"], "train_acc5": summary["acc5"],
            "epoch_time": elapsed, "images_per_sec": meter.count / elapsed}


def training_loss(outputs, targets: torch.Tensor, criterion) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, loss). Models with auxiliary classifiers (GoogLeNet) return (logits, [aux_logits, ...])
    in training; each auxiliary loss is added with weight AUX_LOSS_WEIGHT."""
    if isinstance(outputs, tuple):
        logits, aux_outputs = outputs
        loss = criterion(logits, targets) + AUX_LOSS_WEIGHT * sum(criterion(aux, targets) for aux in aux_outputs)
        return logits, loss
    return outputs, criterion(outputs, targets)


@torch.no_grad()
def evaluate(model, normalize, loader, criterion, setup: DeviceSetup) -> dict:
    """{"loss", "acc1", "acc5"} (accuracies in %) over a labelled loader."""
    model.eval()
    meter = ClassificationMeter(setup.device)
    for images, targets in tqdm(loader, desc="val", leave=False, dynamic_ncols=True, disable=None):
        images = normalize(images.to(setup.device, non_blocking=True))
        targets = targets.to(setup.device, non_blocking=True)
        with setup.autocast():
            logits = model(images)
        meter.update(criterion(logits.float(), targets), logits, targets)
    return meter.summary()


@torch.no_grad()
def predict(model, normalize, loader, setup: DeviceSetup) -> list[int]:
    """The predicted class of every image of `loader`, in loader order."""
    model.eval()
    predictions = []
    for images, _ in tqdm(loader, desc="test", leave=False, dynamic_ncols=True, disable=None):
        with setup.autocast():
            logits = model(normalize(images.to(setup.device, non_blocking=True)))
        predictions.append(logits.argmax(dim=1).cpu())
    return torch.cat(predictions).tolist() if predictions else []


def load_model_weights(model: nn.Module, state_dict: dict, path: str) -> None:
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        detail = str(e).splitlines()[0]
        raise UserError(f"checkpoint {path} does not fit this model ({detail}); check MODEL.NAME and "
                        f"MODEL.NUM_CLASSES against the run that wrote it") from None


def run_eval_only(cfg, device: torch.device) -> None:
    """--eval: report val loss and accuracy of the MODEL.RESUME checkpoint; writes nothing."""
    logger = create_logger(None)
    path = cfg.MODEL.RESUME
    if path == "auto":
        run_dir = latest_run_with_checkpoint(experiment_dir(cfg.OUTPUT, cfg.MODEL.NAME, cfg.DATA.DATASET))
        if run_dir is None:
            raise UserError("--eval with --resume auto found no run with a checkpoint; pass --resume PATH")
        best = os.path.join(run_dir, BEST_CHECKPOINT)
        path = best if os.path.isfile(best) else os.path.join(run_dir, LAST_CHECKPOINT)
    if not path:
        raise UserError("--eval needs a checkpoint: pass --resume PATH (or --resume auto)")
    model = build_model(cfg)
    load_model_weights(model, load_checkpoint(path)["model"], path)
    loaders = build_loader(cfg)
    setup = DeviceSetup.create(device, cfg.TRAIN.MIXED_PRECISION, cfg.TRAIN.CHANNELS_LAST, compile=False,
                               cudnn_benchmark=cfg.TRAIN.CUDNN_BENCHMARK)
    forward_model = setup.place(model)
    normalize = Normalize(loaders.mean, loaders.std, setup.channels_last).to(device)
    metrics = evaluate(forward_model, normalize, loaders.val_loader, nn.CrossEntropyLoss(), setup)
    logger.info("%s on %s val (%d images): loss %.4f  acc@1 %.2f%%  acc@5 %.2f%%", path, cfg.DATA.DATASET,
                len(loaders.val_dataset), metrics["loss"], metrics["acc1"], metrics["acc5"])


def train(cfg, device: torch.device) -> str:
    """The full run; returns its folder."""
    logger = create_logger(None)
    seed_everything(cfg.SEED)
    # Build everything that can fail on a typo before anything is written to disk.
    model = build_model(cfg)
    params, macs = model_cost(cfg)
    if macs is None:
        raise UserError(f"{cfg.MODEL.NAME} cannot take {cfg.DATA.IMG_SIZE} px images (its feature maps shrink to "
                        f"nothing); raise DATA.IMG_SIZE, or try MODEL.STEM cifar if the model has that stem")
    optimizer = build_optimizer(cfg, model)
    check_scheduler_name(cfg)
    loaders = build_loader(cfg)
    run_dir, resume_path = plan_run_dir(experiment_dir(cfg.OUTPUT, cfg.MODEL.NAME, cfg.DATA.DATASET),
                                        cfg.TAG, cfg.MODEL.RESUME)
    checkpoint = load_checkpoint(resume_path) if resume_path else None
    if checkpoint is not None:
        load_model_weights(model, checkpoint["model"], resume_path)

    os.makedirs(run_dir, exist_ok=True)
    logger = create_logger(run_dir)
    with open(os.path.join(run_dir, "config.yaml"), "w", encoding="utf-8") as f:
        f.write(cfg.dump())
    logger.info("run folder: %s", run_dir)

    setup = DeviceSetup.create(device, cfg.TRAIN.MIXED_PRECISION, cfg.TRAIN.CHANNELS_LAST, cfg.TRAIN.COMPILE,
                               cfg.TRAIN.CUDNN_BENCHMARK)
    if device.type != "cuda":
        logger.info("running on %s: TRAIN.MIXED_PRECISION, CHANNELS_LAST, COMPILE and CUDNN_BENCHMARK "
                    "apply on CUDA only, so this run is plain fp32", device)
    forward_model = setup.place(model)
    normalize = Normalize(loaders.mean, loaders.std, setup.channels_last).to(device)
    scaler = setup.grad_scaler()
    accumulation_steps = max(1, cfg.TRAIN.ACCUMULATION_STEPS)
    steps_per_epoch = math.ceil(len(loaders.train_loader) / accumulation_steps)
    scheduler = build_scheduler(cfg, optimizer, steps_per_epoch)
    criterion = nn.CrossEntropyLoss()

    start_epoch, best_acc1, wandb_id = cfg.TRAIN.START_EPOCH, 0.0, None
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        restore_rng_state(checkpoint["rng"])
        start_epoch, best_acc1, wandb_id = checkpoint["epoch"] + 1, checkpoint["best_acc1"], checkpoint["wandb_id"]
        logger.info("resumed from %s: continuing with epoch %d (best val acc@1 so far %.2f%%)",
                    resume_path, start_epoch + 1, best_acc1)
    elif start_epoch > 0:
        # Put the LR schedule where START_EPOCH would have it; stepping it without optimizer
        # updates is the point here, so torch's warning about that order does not apply.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(start_epoch * steps_per_epoch):
                scheduler.step()

    logger.info("%s: %s parameters, %s MACs per %d px image | %s: %d train, %d val, %d test images | "
                "%d epochs of %d steps on %s", cfg.MODEL.NAME, format_count(params), format_count(macs),
                cfg.DATA.IMG_SIZE, cfg.DATA.DATASET, len(loaders.train_dataset),
                len(loaders.val_dataset), len(loaders.test_dataset), cfg.TRAIN.EPOCHS, steps_per_epoch, device)
    metrics_file = MetricsFile(run_dir)
    metrics_file.drop_epochs_from(start_epoch)
    wandb_run = WandbRun(cfg.WANDB.MODE, cfg.WANDB.PROJECT, cfg.WANDB.ENTITY,
                         name=os.path.relpath(run_dir, cfg.OUTPUT), run_dir=run_dir,
                         config=_config_as_dict(cfg), resume_id=wandb_id)

    def checkpoint_state(epoch: int) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                "best_acc1": best_acc1, "config": cfg.dump(), "rng": capture_rng_state(),
                "wandb_id": wandb_run.run_id}

    try:
        for epoch in range(start_epoch, cfg.TRAIN.EPOCHS):
            loaders.train_loader.sampler.set_epoch(epoch)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            lr = optimizer.param_groups[0]["lr"]
            train_stats = train_one_epoch(forward_model, normalize, loaders.train_loader, criterion, optimizer,
                                          scheduler, scaler, setup, epoch, accumulation_steps,
                                          cfg.TRAIN.CLIP_GRAD, cfg.PRINT_FREQ, logger)
            val_stats = evaluate(forward_model, normalize, loaders.val_loader, criterion, setup)
            is_best = val_stats["acc1"] > best_acc1
            best_acc1 = max(best_acc1, val_stats["acc1"])
            metrics = {"epoch": epoch, "lr": lr, **train_stats, "val_loss": val_stats["loss"],
                       "val_acc1": val_stats["acc1"], "val_acc5": val_stats["acc5"],
                       "peak_memory_mb": peak_memory_mb(device)}
            metrics_file.log(metrics)
            wandb_run.log(metrics, step=epoch)
            logger.info("epoch %d/%d  train loss %.4f acc@1 %.2f%% | val loss %.4f acc@1 %.2f%% acc@5 %.2f%% "
                        "| best %.2f%% | %.1fs, %.0f img/s", epoch + 1, cfg.TRAIN.EPOCHS, train_stats["train_loss"],
                        train_stats["train_acc1"], val_stats["loss"], val_stats["acc1"], val_stats["acc5"],
                        best_acc1, train_stats["epoch_time"], train_stats["images_per_sec"])
            if is_best:
                save_checkpoint(os.path.join(run_dir, BEST_CHECKPOINT), checkpoint_state(epoch))
            if (epoch + 1) % cfg.SAVE_FREQ == 0 or epoch + 1 == cfg.TRAIN.EPOCHS:
                save_checkpoint(os.path.join(run_dir, LAST_CHECKPOINT), checkpoint_state(epoch))
    except KeyboardInterrupt:
        logger.info("interrupted; continue with: python main.py --cfg ... --tag %s --resume auto",
                    os.path.basename(run_dir))
        wandb_run.finish()
        raise

    best_path = os.path.join(run_dir, BEST_CHECKPOINT)
    if os.path.isfile(best_path):
        load_model_weights(model, load_checkpoint(best_path)["model"], best_path)
    predictions = predict(forward_model, normalize, loaders.test_loader, setup)
    write_submission(os.path.join(run_dir, "submission.csv"), predictions, cfg.SUBMISSION.HEADER)
    wandb_run.finish()
    logger.info("best val acc@1 %.2f%%; %d test predictions written with the best checkpoint", best_acc1,
                len(predictions))
    logger.info("outputs in %s: %s", run_dir, ", ".join(sorted(
        name for name in os.listdir(run_dir) if not name.startswith(".") and name != "wandb")))
    return run_dir


def _config_as_dict(node) -> dict:
    return {key: _config_as_dict(value) if isinstance(value, dict) else value for key, value in node.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.list_models:
            print_model_table(args.img_size)
            return 0
        cfg = config_from_args(args)
        device = resolve_device(cfg.DEVICE)
        if cfg.EVAL_MODE:
            run_eval_only(cfg, device)
        else:
            train(cfg, device)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
