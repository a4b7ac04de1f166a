"""Training throughput against batch size, until the device runs out of memory.

For each batch size, warm training steps (forward, backward, optimizer update) are timed twice:
fed by the real data loader, and on a synthetic uint8 batch already on the device (the model
alone). The gap between the two says whether the loader keeps up.
"""
from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from utils.device import DeviceSetup, peak_memory, reset_peak_memory
from utils.train_step import train_step

logger = logging.getLogger(__name__)

# Steps run before timing starts (cuDNN autotuning, torch.compile, allocator warm-up).
WARMUP_STEPS = 3
# Steps timed per batch size and feeding mode.
TIMED_STEPS = 10


@dataclass
class ThroughputScan:
    """One row per batch size that fitted, and how the scan ended."""
    rows: list[dict]
    largest_fit: int | None  # None when not even the first batch size fitted
    out_of_memory_at: int | None  # the batch size that ran out of memory, if one did


def default_batch_sizes(max_batch: int) -> list[int]:
    """1, 2, 4, ... up to max_batch."""
    sizes = [1]
    while sizes[-1] * 2 <= max_batch:
        sizes.append(sizes[-1] * 2)
    return sizes


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], step: Callable, device: torch.device,
                warmup_steps: int, timed_steps: int) -> float:
    """Seconds per step over `timed_steps` steps, after `warmup_steps` untimed ones."""
    for _ in range(warmup_steps):
        step(*next(batches))
    synchronize(device)
    start = time.perf_counter()
    for _ in range(timed_steps):
        step(*next(batches))
    synchronize(device)
    return (time.perf_counter() - start) / timed_steps


def repeat_batch(images: torch.Tensor, targets: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The same batch forever: steps of the model alone, with no loader in the way."""
    while True:
        yield images, targets


def scan_throughput(model: nn.Module, normalize: nn.Module, criterion, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, setup: DeviceSetup,
                    make_loader: Callable[[int, int], Iterable], batch_sizes: list[int], image_size: int,
                    num_classes: int, warmup_steps: int = WARMUP_STEPS,
                    timed_steps: int = TIMED_STEPS) -> ThroughputScan:
    """Time training steps at each of `batch_sizes` (ascending) until one runs out of memory.

    `make_loader(batch_size, num_batches)` returns a loader of at least that many uint8 batches.
    The model's weights and the optimizer's state change along the way: pass throwaway copies.
    """
    device = setup.device
    rows: list[dict] = []
    model.train()

    def step(images: torch.Tensor, targets: torch.Tensor) -> None:
        train_step(model, normalize, images, targets, criterion, optimizer, scaler, setup)

    for batch_size in batch_sizes:
        try:
            reset_peak_memory(device)
            images = torch.randint(0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8, device=device)
            targets = torch.randint(0, num_classes, (batch_size,), device=device)
            model_seconds = time_steps(repeat_batch(images, targets), step, device, warmup_steps, timed_steps)
            del images, targets
            loader = make_loader(batch_size, warmup_steps + timed_steps)
            loader_seconds = time_steps(iter(loader), step, device, warmup_steps, timed_steps)
            del loader
        except torch.cuda.OutOfMemoryError:
            optimizer.zero_grad(set_to_none=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            logger.info("batch size %d: out of memory", batch_size)
            return ThroughputScan(rows, rows[-1]["batch_size"] if rows else None, batch_size)
        except ValueError as e:  # e.g. BatchNorm refuses to train on one value per channel
            optimizer.zero_grad(set_to_none=True)
            logger.info("batch size %d: skipped, the model cannot train on it (%s)", batch_size, e)
            continue
        row = {"batch_size": batch_size,
               "model_images_per_sec": batch_size / model_seconds, "model_ms_per_step": 1000 * model_seconds,
               "loader_images_per_sec": batch_size / loader_seconds, "loader_ms_per_step": 1000 * loader_seconds,
               **peak_memory(device)}
        rows.append(row)
        logger.info("batch size %d: %.0f images/s with the loader, %.0f the model alone (%.1f ms/step)",
                    batch_size, row["loader_images_per_sec"], row["model_images_per_sec"], row["model_ms_per_step"])
    return ThroughputScan(rows, rows[-1]["batch_size"] if rows else None, None)
