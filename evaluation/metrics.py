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

    The sums stay on the device, so updating never waits for the GPU; `summary` syncs once and,
    under torchrun, sums over every rank. A batch whose loss is NaN or Inf (an update the
    divergence guard skips) still counts for accuracy but not for the mean loss.
    """

    FIELDS = ("loss_sum", "loss_count", "correct1", "correct5", "count")

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        self.loss_count = torch.zeros((), device=device, dtype=torch.float64)
        self.correct1 = torch.zeros((), device=device, dtype=torch.float64)
        self.correct5 = torch.zeros((), device=device, dtype=torch.float64)
        self.count = 0

    def update(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch; `loss` is the batch mean."""
        batch = targets.shape[0]
        self.count += batch
        loss = loss.detach().double()
        finite = torch.isfinite(loss)
        self.loss_sum += torch.where(finite, loss, 0.0) * batch
        self.loss_count += finite.double() * batch
        top1, top5 = topk_correct(logits.detach(), targets)
        self.correct1 += top1
        self.correct5 += top5

    def totals(self) -> list[float]:
        """The FIELDS' values, summed over every rank of a torchrun group (one sync)."""
        from utils.distributed import all_reduce_sum
        packed = torch.stack([self.loss_sum, self.loss_count, self.correct1, self.correct5,
                              torch.tensor(float(self.count), device=self.loss_sum.device, dtype=torch.float64)])
        return all_reduce_sum(packed).tolist()

    def summary(self) -> dict[str, float]:
        """{"loss": mean finite loss, "acc1": top-1 %, "acc5": top-5 %, "images": how many} over
        everything added so far."""
        loss_sum, loss_count, correct1, correct5, images = self.totals()
        count = max(1.0, images)
        return {"loss": loss_sum / loss_count if loss_count else float("nan"), "acc1": 100 * correct1 / count,
                "acc5": 100 * correct5 / count, "images": int(images)}

    def state_dict(self) -> dict[str, float]:
        """This rank's sums, to carry an epoch's numbers across a preemption."""
        values = torch.stack([self.loss_sum, self.loss_count, self.correct1, self.correct5]).tolist()
        return {**dict(zip(self.FIELDS, values)), "count": self.count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        for name in ("loss_sum", "loss_count", "correct1", "correct5"):
            getattr(self, name).fill_(state[name])
        self.count = int(state["count"])
