"""Collectives that are no-ops in a world of one: every layer calls them without asking
whether it runs under torchrun (engine/launch.py joins the process group).

Rank 0 alone writes files; every rank computes.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_from_main(value: Any) -> Any:
    """Rank 0's `value` on every rank (a run folder name, a checkpoint path)."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def rank_and_size() -> tuple[int, int]:
    """(this process's rank, the number of processes): (0, 1) outside torchrun."""
    if is_distributed():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that writes files and prints."""
    return rank_and_size()[0] == 0
