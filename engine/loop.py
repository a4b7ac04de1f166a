"""One epoch of training: batches in, optimizer updates out, with gradient accumulation, the
NaN/Inf guard, the EMA update and a stop that lands right after an update.

`train_one_epoch` is the loop a newcomer looks for; each step of it is a small function here or
in engine/train_step.py.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Iterable

import torch
from tqdm import tqdm

from engine.parts import TrainingParts
from engine.preemption import StopRequest
from engine.train_step import backward, forward, optimizer_step
from engine.update_guard import UpdateGuard
from engine.weight_averaging import StochasticWeightAveraging
from evaluation.metrics import ClassificationMeter
from utils.device import reset_peak_memory
from utils.errors import UserError
from utils.tensor_memory import MEASURED_STEPS, TensorMemoryWindow, training_tensors


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
    parts.forward_model.train()
    parts.optimizer.zero_grad(set_to_none=True)
    first, num_batches = progress.batches_done, loop.num_batches
    batches, tensor_memory = measure_tensor_memory(parts, islice(loader, num_batches - first),
                                                   MEASURED_STEPS * loop.accumulation_steps)
    meter = ClassificationMeter(parts.setup.device)
    if progress.meter:
        meter.load_state_dict(progress.meter)
    guard = UpdateGuard(parts.setup.device)
    pending_steps = []  # (global step, lr, loss on the device) since the last print
    start = time.perf_counter() - progress.elapsed
    bar = tqdm(batches, total=num_batches, initial=first, desc=f"train {epoch + 1}",
               leave=False, dynamic_ncols=True, disable=None)
    nonfinite, in_a_row, stopping = progress.nonfinite, progress.nonfinite_in_a_row, False
    for i, (images, targets) in enumerate(bar, start=first):
        lr = parts.optimizer.param_groups[0]["lr"]
        update_now = (i + 1) % loop.accumulation_steps == 0 or i + 1 == num_batches
        logits, loss, targets = accumulate_gradients(parts, images, targets, epoch, i, loop, update_now, guard, stop)
        meter.update(loss, logits, targets)
        pending_steps.append((epoch * num_batches + i, lr, loss.detach().float()))
        if update_now:
            skip, stopping = guard.read()
            nonfinite, in_a_row = (nonfinite + 1, in_a_row + 1) if skip else (nonfinite, 0)
            apply_update(parts, scheduler, loop.clip_grad, skip)
            if loop.max_nonfinite and in_a_row >= loop.max_nonfinite:
                raise UserError(f"the loss was NaN or Inf for {in_a_row} updates in a row (epoch {epoch + 1}, "
                                f"batch {i + 1} of {num_batches}), so the run stopped; its last checkpoint is "
                                f"kept. Lower TRAIN.LR, set TRAIN.CLIP_GRAD, or raise TRAIN.WARMUP_EPOCHS")
        if (i + 1) % loop.print_freq == 0 or i + 1 == num_batches or stopping:
            flush_steps(pending_steps, epoch, log_steps)
            show_progress(bar, logger, meter, parts.optimizer, start, epoch, i + 1, num_batches)
        if stopping:
            return None, EpochProgress(i + 1, meter.state_dict(), time.perf_counter() - start, nonfinite, in_a_row)
    elapsed = time.perf_counter() - start
    summary = meter.summary()
    stats = {"train_loss": summary["loss"], "train_acc1": summary["acc1"], "train_acc5": summary["acc5"],
             "epoch_time": elapsed, "images_per_sec": summary["images"] / elapsed, "nonfinite_updates": nonfinite}
    if tensor_memory is not None and tensor_memory.peak_mb is not None:
        stats["peak_tensor_mb"] = tensor_memory.peak_mb
    return stats, EpochProgress()


def measure_tensor_memory(parts: TrainingParts, batches: Iterable, num_batches: int
                          ) -> tuple[Iterable, TensorMemoryWindow | None]:
    """On CPU, `batches` with a window open over the first `num_batches` of them (their loading
    and training steps), for the epoch's peak_tensor_mb; on CUDA, max_memory_allocated already
    counts every step, and `batches` go as they are. Returns (batches, the window or None).

    Opened before the epoch's meter and guard exist, so that nothing the window sees freed was
    allocated before it."""
    if parts.setup.device.type != "cpu":
        return batches, None
    window = TensorMemoryWindow(training_tensors(parts.model, parts.criterion, parts.train_criterion, parts.ema,
                                                 parts.optimizer))
    return window.over_first(batches, num_batches), window


def accumulate_gradients(parts: TrainingParts, images: torch.Tensor, targets: torch.Tensor, epoch: int,
                         batch_index: int, loop: LoopSettings, update_now: bool, guard: UpdateGuard,
                         stop: StopRequest):
    """Forward and backward of batch `batch_index` of `epoch`, its gradients added to those of its
    update's group; returns (logits, loss, targets as mixed). The guard hears the loss, and at the
    group's last batch also whether a stop was requested, so every rank agrees on both."""
    accumulation = loop.accumulation_steps
    # Each update averages the gradients of its group; the epoch's last group may be shorter.
    group_start = batch_index - batch_index % accumulation
    group_size = min(accumulation, loop.num_batches - group_start)
    # The batch's position seeds its mixing, so that a resumed run mixes it as the uninterrupted one did.
    mix = partial(parts.mix, epoch=epoch, batch_index=batch_index) if parts.mix is not None else None
    # Under DDP, only the last micro-batch of a group all-reduces its gradients.
    with nullcontext() if update_now or parts.ddp is None else parts.ddp.no_sync():
        logits, loss, targets = forward(parts.forward_model, parts.normalize, images, targets,
                                        parts.train_criterion or parts.criterion, parts.setup, mix)
        guard.add_loss(loss)
        if update_now:
            guard.publish(stop.requested)
        backward(loss, parts.scaler, loss_divisor=group_size)
    return logits, loss, targets


def apply_update(parts: TrainingParts, scheduler, clip_grad: float, skip: bool) -> None:
    """The optimizer update (and the EMA's), or with `skip` (a NaN or Inf loss) dropping the
    gradients instead; then a step of `scheduler`, which is None in SWA epochs, whose LR SWALR
    sets once per epoch."""
    if skip:
        parts.optimizer.zero_grad(set_to_none=True)
    else:
        optimizer_step(parts.optimizer, parts.scaler, clip_grad)
        if parts.ema is not None:
            parts.ema.update_parameters(parts.model)
    if scheduler is not None:
        scheduler.step()


def show_progress(bar, logger, meter: ClassificationMeter, optimizer: torch.optim.Optimizer, start: float,
                  epoch: int, batches_done: int, num_batches: int) -> None:
    """The running loss, accuracy, LR and speed on the progress bar, and in the log at debug level."""
    summary = meter.summary()
    stats = dict(loss=f"{summary['loss']:.4f}", acc=f"{summary['acc1']:.2f}",
                 lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                 img_s=f"{summary['images'] / (time.perf_counter() - start):.0f}")
    bar.set_postfix(stats)
    logger.debug("train epoch %d [%d/%d] %s", epoch + 1, batches_done, num_batches,
                 " ".join(f"{k} {v}" for k, v in stats.items()))


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
