"""Several processes, one run: PyTorch's own engine (`torchrun` + DistributedDataParallel).

`torchrun --nproc_per_node N main.py ...` starts N copies of main.py with RANK, LOCAL_RANK and
WORLD_SIZE set; a plain `python main.py` is a world of one. NCCL connects GPUs, gloo CPUs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from utils.errors import UserError

# How long a rank waits for the others to join (a node that is slow to start, a busy disk).
STORE_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and "LOCAL_RANK" in os.environ


def restart_count() -> int:
    """How many times torchrun (--max-restarts) has restarted this process group; 0 otherwise."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def device_for_rank(device_name: str, local_rank: int) -> str:
    """Under torchrun each process takes the GPU of its local rank: DEVICE auto or cuda means
    cuda:LOCAL_RANK. cpu stays cpu (gloo); a fixed cuda:N cannot be shared by several ranks."""
    if device_name == "cpu" or (device_name == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if device_name not in ("auto", "cuda"):
        raise UserError(f"DEVICE {device_name} names one GPU, but torchrun gives each process its own; use DEVICE "
                        f"cuda (each rank takes cuda:LOCAL_RANK) and choose GPUs with CUDA_VISIBLE_DEVICES")
    return f"cuda:{local_rank}"


def init_world(device: torch.device) -> World:
    """Join the process group torchrun set up (NCCL for CUDA, gloo for CPU); a world of one without torchrun."""
    if not launched_by_torchrun():
        return World()
    world = World(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))
    if world.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=_store_for_this_attempt(world),
                                rank=world.rank, world_size=world.size,
                                device_id=device if device.type == "cuda" else None)
    return world


def _store_for_this_attempt(world: World) -> dist.Store:
    """torchrun's key-value store, under a prefix of its own for each start of the group.

    With init_process_group's default env:// store, a group that `--max-restarts` restarted
    read the addresses its dead predecessors had published (seen with gloo on torch 2.14: the
    new rank 0 dialled the killed rank 1 and failed), so every attempt gets fresh keys.
    """
    agent_hosts_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world.size,
                          is_master=not agent_hosts_store and world.rank == 0, timeout=STORE_TIMEOUT)
    return dist.PrefixStore(f"vision-zoo/attempt-{restart_count()}", store)


def close_world() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
