"""The peak memory held by tensors over a few training steps on the CPU: the figure that
`torch.cuda.max_memory_allocated` gives on a GPU (parameters, gradients, optimizer state,
activations kept for backward, temporaries), for which the CPU keeps no counter.

`torch.profiler` with `profile_memory=True` records every allocation and free of PyTorch's CPU
allocator, kernels' own workspaces included. Their running total over a window, on top of the
tensors already held when the window opens (which the profiler never sees allocated), peaks at
the figure. The profiler costs little per step, but a few steps are measured, never a whole epoch.
"""
from __future__ import annotations

import os
from itertools import islice
from typing import Iterable, Iterator, TypeVar

import torch
from torch import nn

# Training steps (optimizer updates) a measurement covers: the first creates the optimizer's
# state, the next ones run as every later step does.
MEASURED_STEPS = 3

Batch = TypeVar("Batch")


def training_tensors(*holders: nn.Module | torch.optim.Optimizer | None) -> list[torch.Tensor]:
    """The tensors that modules (parameters, buffers) and optimizers (parameters, state) hold,
    with their gradients; None holders are skipped."""
    tensors: list[torch.Tensor] = []
    for holder in holders:
        if isinstance(holder, nn.Module):
            tensors += [*holder.parameters(), *holder.buffers()]
            tensors += [parameter.grad for parameter in holder.parameters() if parameter.grad is not None]
        elif isinstance(holder, torch.optim.Optimizer):
            parameters = [parameter for group in holder.param_groups for parameter in group["params"]]
            tensors += parameters + [parameter.grad for parameter in parameters if parameter.grad is not None]
            tensors += [value for state in holder.state.values() for value in state.values()
                        if isinstance(value, torch.Tensor)]
    return tensors


def cpu_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct CPU storages behind `tensors`: views and shared weights count once."""
    storages = {}
    for tensor in tensors:
        if tensor.device.type == "cpu":
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def peak_of_running_total(deltas: Iterable[int]) -> int:
    """The highest running total of allocation (+) and free (-) sizes, starting from 0."""
    total = peak = 0
    for delta in deltas:
        total += delta
        peak = max(peak, total)
    return peak


class TensorMemoryWindow:
    """Measures the peak bytes held by CPU tensors while open:

        with TensorMemoryWindow(training_tensors(model, optimizer)) as window:
            ...training steps...
        window.peak_mb

    `held` are the tensors already alive when the window opens that should count (the model, its
    gradients, the optimizer's state). Nothing else allocated before the window should be freed
    inside it: the profiler never saw it allocated, so it would not see it freed either.

    `peak_mb` stays None when the measurement cannot run: this torch has no Kineto profiler, or a
    profiler is already running (two cannot be nested).
    """

    def __init__(self, held: Iterable[torch.Tensor]):
        self.held = list(held)
        self.peak_mb: float | None = None
        self._profiler: torch.profiler.profile | None = None
        self._held_bytes = 0

    def __enter__(self) -> "TensorMemoryWindow":
        if not torch.profiler.kineto_available() or torch._C._autograd._profiler_enabled():
            return self
        # Kineto otherwise prints its start, stop and "no GPU" lines on stderr at every window.
        os.environ.setdefault("KINETO_LOG_LEVEL", "6")
        self._held_bytes = cpu_bytes(self.held)
        self.held = []  # counted; the window must not keep alive what the steps would free
        self._profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                profile_memory=True)
        self._profiler.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._profiler is None:
            return
        profiler, self._profiler = self._profiler, None
        profiler.__exit__(*exc_info)
        events = [event for event in profiler.profiler.kineto_results.events()
                  if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU]
        events.sort(key=lambda event: event.start_ns())
        self.peak_mb = (self._held_bytes + peak_of_running_total(event.nbytes() for event in events)) / 2**20

    def over_first(self, batches: Iterable[Batch], count: int) -> Iterator[Batch]:
        """`batches`, with the window open from now until the batch after the first `count` is
        asked for: over the loading and the training steps of those `count`. Closing the iterator
        early (a stop, an error) closes the window too."""
        measured = self._measured(iter(batches), count)
        next(measured)  # opens the window now, not at the first batch
        return measured

    def _measured(self, iterator: Iterator[Batch], count: int) -> Iterator[Batch | None]:
        with self:
            yield None
            yield from islice(iterator, count)
        yield from iterator
