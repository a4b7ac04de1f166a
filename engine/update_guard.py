"""Per optimizer update, two questions every rank must answer the same way: did any loss of this
update come out NaN or Inf (then nobody applies it), and has any rank been asked to stop (then
everybody stops after it)?

The answer is one small tensor, max-reduced across ranks under torchrun. It is published right
after the forward pass and read just before the optimizer step, so that the wait covers only the
forward: the backward pass is already queued on the GPU, which stays busy meanwhile.
"""
from __future__ import annotations

import torch

from utils.distributed import all_reduce_max


class UpdateGuard:
    def __init__(self, device: torch.device):
        self.device = device
        self._nonfinite = torch.zeros((), dtype=torch.int32, device=device)
        self._flags_on_host: torch.Tensor | None = None
        self._ready: torch.cuda.Event | None = None

    def add_loss(self, loss: torch.Tensor) -> None:
        """Note one micro-batch's loss (its update is skipped if any of them is not finite)."""
        self._nonfinite = torch.maximum(self._nonfinite, (~torch.isfinite(loss.detach())).to(torch.int32))

    def publish(self, stop_requested: bool) -> None:
        """Agree across ranks and start copying the answer to the host, without waiting for it."""
        # A fill on the device, not torch.tensor(): copying from the host would wait for the GPU.
        stop = self._nonfinite.new_full((), int(stop_requested))
        flags = all_reduce_max(torch.stack([self._nonfinite, stop]))
        self._flags_on_host = flags.to("cpu", non_blocking=True)
        if self.device.type == "cuda":
            self._ready = torch.cuda.Event()
            self._ready.record()
        self._nonfinite = torch.zeros((), dtype=torch.int32, device=self.device)

    def read(self) -> tuple[bool, bool]:
        """(this update had a non-finite loss, stop after this update), as published."""
        if self._ready is not None:
            self._ready.synchronize()
        nonfinite, stop = self._flags_on_host.tolist()
        return bool(nonfinite), bool(stop)
