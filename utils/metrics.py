"""Top-k accuracy."""
from __future__ import annotations

import torch


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[torch.Tensor]:
    """For each k, how many rows have their target among the k highest logits (k capped at the class count).

    Returned as 0-d tensors on the logits' device, so that the caller decides when to synchronise.
    """
    max_k = min(max(ks), logits.shape[1])
    top = logits.topk(max_k, dim=1).indices
    hits = top.eq(targets.view(-1, 1))
    return [hits[:, : min(k, max_k)].any(dim=1).sum() for k in ks]


class ClassificationMeter:
    """Running loss and top-1/top-5 accuracy over batches.

    The sums stay on the device, so updating never waits for the GPU; `summary` syncs once.
    """

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), device=device)
        self.correct1 = torch.zeros((), device=device, dtype=torch.long)
        self.correct5 = torch.zeros((), device=device, dtype=torch.long)
        self.count = 0

    def update(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch; `loss` is the batch mean."""
        batch = targets.shape[0]
        self.count += batch
        self.loss_sum += loss.detach().float() * batch
        top1, top5 = topk_correct(logits.detach(), targets)
        self.correct1 += top1
        self.correct5 += top5

    def summary(self) -> dict[str, float]:
        """{"loss": mean loss, "acc1": top-1 %, "acc5": top-5 %} over everything added so far."""
        count = max(1, self.count)
        return {"loss": self.loss_sum.item() / count, "acc1": 100 * self.correct1.item() / count,
                "acc5": 100 * self.correct5.item() / count}
