"""Training throughput against batch size, until the device runs out of memory.

For each batch size, warm training steps (forward, backward, optimizer update) are timed twice:
fed by the real data loader, and on a synthetic uint8 batch already on the device (the model
alone). The gap between the two says whether the loader keeps up. `run_throughput_scan` is
`main.py --throughput`: the scan of the configured run, written as throughput.csv and .png.
"""
from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import pandas as pd
import torch
from torch import nn
from torch.utils.data import RandomSampler

from engine.build import build_training_parts, seed_everything
from engine.run_dir import log_outputs, study_dir
from engine.train_step import train_step
from evaluation.plots import save_figure, throughput_figure
from utils.device import DeviceSetup, peak_memory, reset_peak_memory
from utils.logger import create_logger
from utils.tensor_memory import MEASURED_STEPS, TensorMemoryWindow, training_tensors

logger = logging.getLogger(__name__)

# Steps run before timing starts (cuDNN autotuning, torch.compile, allocator warm-up).
WARMUP_STEPS = 3
# Steps timed per batch size and feeding mode.
TIMED_STEPS = 10
# Largest batch of the default --throughput scan on CPU, which never runs out of memory first.
CPU_MAX_BATCH = 256


# Largest batch of the default --throughput scan on CUDA when it has not run out of memory by then.
CUDA_MAX_BATCH = 65536


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


def free_after_out_of_memory(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Drop the gradients and cached blocks a step that ran out of memory left behind."""
    optimizer.zero_grad(set_to_none=True)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def throughput_row(batch_size: int, model_seconds: float, loader_seconds: float, memory: dict) -> dict:
    """One row of the scan: images/s and ms per step of the model alone and with the loader, and `memory`."""
    return {"batch_size": batch_size,
            "model_images_per_sec": batch_size / model_seconds, "model_ms_per_step": 1000 * model_seconds,
            "loader_images_per_sec": batch_size / loader_seconds, "loader_ms_per_step": 1000 * loader_seconds,
            **memory}


def scan_throughput(model: nn.Module, normalize: nn.Module, criterion, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, setup: DeviceSetup,
                    make_loader: Callable[[int, int], Iterable], batch_sizes: list[int], image_size: int,
                    num_classes: int, warmup_steps: int = WARMUP_STEPS,
                    timed_steps: int = TIMED_STEPS) -> ThroughputScan:
    """Time training steps at each of `batch_sizes` (ascending) until one runs out of memory.
    Each row has the peak memory of a step: on CUDA `peak_memory_mb`, on CPU `peak_tensor_mb` (the
    same quantity, measured over MEASURED_STEPS untimed steps) and the process's `peak_rss_mb`.

    `make_loader(batch_size, num_batches)` returns a loader of at least that many uint8 batches.
    The model's weights and the optimizer's state change along the way: pass throwaway copies.
    """
    device = setup.device
    rows: list[dict] = []
    model.train()

    def step(images: torch.Tensor, targets: torch.Tensor) -> None:
        train_step(model, normalize, images, targets, criterion, optimizer, scaler, setup)

    def synthetic_batch(batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randint(0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8, device=device),
                torch.randint(0, num_classes, (batch_size,), device=device))

    def peak_tensor_memory(batch_size: int) -> dict[str, float]:
        """{"peak_tensor_mb": ...} of MEASURED_STEPS steps on a batch made inside the window, as
        the GPU's figure counts the batch too; {} on CUDA, or when the profiler cannot run."""
        if device.type != "cpu":
            return {}
        with TensorMemoryWindow(training_tensors(model, criterion, optimizer)) as window:
            images, targets = synthetic_batch(batch_size)
            for _ in range(MEASURED_STEPS):
                step(images, targets)
            del images, targets
        return {} if window.peak_mb is None else {"peak_tensor_mb": window.peak_mb}

    for batch_size in batch_sizes:
        try:
            reset_peak_memory(device)
            tensor_memory = peak_tensor_memory(batch_size)
            images, targets = synthetic_batch(batch_size)
            model_seconds = time_steps(repeat_batch(images, targets), step, device, warmup_steps, timed_steps)
            del images, targets
            loader = make_loader(batch_size, warmup_steps + timed_steps)
            loader_seconds = time_steps(iter(loader), step, device, warmup_steps, timed_steps)
            del loader
        except torch.cuda.OutOfMemoryError:
            free_after_out_of_memory(optimizer, device)
            logger.info("batch size %d: out of memory", batch_size)
            return ThroughputScan(rows, rows[-1]["batch_size"] if rows else None, batch_size)
        except ValueError as e:  # e.g. BatchNorm refuses to train on one value per channel
            optimizer.zero_grad(set_to_none=True)
            logger.info("batch size %d: skipped, the model cannot train on it (%s)", batch_size, e)
            continue
        row = throughput_row(batch_size, model_seconds, loader_seconds, {**tensor_memory, **peak_memory(device)})
        rows.append(row)
        logger.info("batch size %d: %.0f images/s with the loader, %.0f the model alone (%.1f ms/step)",
                    batch_size, row["loader_images_per_sec"], row["model_images_per_sec"], row["model_ms_per_step"])
    return ThroughputScan(rows, rows[-1]["batch_size"] if rows else None, None)


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
        precision = str(parts.setup.amp_dtype).removeprefix("torch.") if parts.setup.amp_dtype else "fp32"
        title = f"{cfg.MODEL.NAME} on {cfg.DATA.DATASET}, {cfg.DATA.IMG_SIZE} px | {device}, {precision}"
        save_figure(throughput_figure(scan.rows, title), os.path.join(out_dir, "throughput.png"))
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
