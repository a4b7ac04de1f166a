"""The training device and the CUDA-only speed switches: mixed precision, channels_last, compile."""
from __future__ import annotations

import logging
import resource
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch
from torch import nn

from utils.errors import UserError

logger = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


def resolve_device(name: str) -> torch.device:
    """"auto" is CUDA when available, else CPU; an explicit CUDA device must exist.

    A CUDA device also becomes the current one, so that nothing (cuDNN, the allocator, NCCL)
    touches GPU 0 when the run asked for another: on a shared server it may be someone else's.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"DEVICE is {name} but CUDA is not available here; use --device cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"DEVICE is {name} but this machine has {count} GPU{'s' if count != 1 else ''} "
                            f"(cuda:0 to cuda:{count - 1}); pick one of them, or set CUDA_VISIBLE_DEVICES")
        device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


@dataclass(frozen=True)
class DeviceSetup:
    """How the model runs on `device`. On CPU every switch is off: the run is plain fp32."""
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    compile: bool

    @classmethod
    def create(cls, device: torch.device, mixed_precision: str, channels_last: bool, compile: bool,
               cudnn_benchmark: bool) -> "DeviceSetup":
        on_cuda = device.type == "cuda"
        if on_cuda:
            torch.backends.cudnn.benchmark = cudnn_benchmark
            if mixed_precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
                # T4, V100, P100 (free Colab and Kaggle GPUs) emulate bf16, slowly.
                logger.info("%s has no native bf16: TRAIN.MIXED_PRECISION bf16 runs as fp16 (with loss scaling)",
                            torch.cuda.get_device_name(device))
                mixed_precision = "fp16"
        return cls(device, AMP_DTYPES[mixed_precision] if on_cuda else None, on_cuda and channels_last,
                   on_cuda and compile)

    def autocast(self) -> ContextManager:
        """Mixed-precision context for forward passes (a no-op when off)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling, needed by fp16 only (bf16 has fp32's range)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def place(self, model: nn.Module, wrap: Callable[[nn.Module], nn.Module] | None = None) -> nn.Module:
        """Move `model` in place and return what to call for forward passes: `wrap(model)` when
        given (DistributedDataParallel), compiled when COMPILE is on.

        Parameters are moved in place, so an optimizer built before still holds the right tensors.
        """
        model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        wrapped = wrap(model) if wrap is not None else model
        # Compiling the DDP wrapper (not the inner model) lets TorchDynamo split its graphs at
        # DDP's gradient buckets, so communication still overlaps the backward pass.
        return torch.compile(wrapped) if self.compile else wrapped


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory measurement (CUDA only: a process's peak RSS cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, float]:
    """{"peak_memory_mb": GPU memory allocated at peak since the last reset} on CUDA, or
    {"peak_rss_mb": the process's peak resident memory} on CPU, which counts far more than the
    model (Python, the libraries, the data), hence its own name. The CPU's figure of what
    peak_memory_mb counts, `peak_tensor_mb`, needs a profiler over steps: utils.tensor_memory."""
    if device.type == "cuda":
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20}
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
