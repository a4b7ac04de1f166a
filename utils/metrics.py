"""Running averages and top-k accuracy."""
from __future__ import annotations

import torch


class AverageMeter:
    """Weighted running mean of a scalar, e.g. the loss over the images seen so far."""

    def __init__(self):
        self.sum = 0.0
        self.count = 0

    def update(self, value: float, weight: int = 1) -> None:
        self.sum += value * weight
        self.count += weight

    @property
    def avg(self) -> float:
        return self.sum / max(1, self.count)


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[torch.Tensor]:
    """For each k, how many rows have their target among the k highest logits (k capped at the class count).

    Returned as 0-d tensors on the logits' device, so that the caller decides when to synchronise.
    """
    max_k = min(max(ks), logits.shape[1])
    top = logits.topk(max_k, dim=1).indices
    hits = top.eq(targets.view(-1, 1))
    return [hits[:, : min(k, max_k)].any(dim=1).sum() for k in ks]
