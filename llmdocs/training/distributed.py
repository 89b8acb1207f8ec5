"""Data-parallel training with `torchrun`: process-group set-up, rank queries and clean-up.

`torchrun --nproc_per_node N script.py` starts N copies of the script and tells each its place through
environment variables: `RANK` (global index), `WORLD_SIZE` (number of processes), `LOCAL_RANK` (index on
this machine), plus `MASTER_ADDR`/`MASTER_PORT` for the rendezvous. Each process wraps the same model in
`DistributedDataParallel`, reads its own shard of every batch, and DDP all-reduces (averages) the gradients
during `backward()`, so every process applies the same update and the weights stay identical.

Without those variables (a plain `python script.py`) the helpers fall back to a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistributedInfo",
    "cleanup_distributed",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "setup_distributed",
    "unwrap_model",
]


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process sits in a (possibly single-process) run."""

    rank: int
    """Global index of this process, 0 .. world_size - 1."""
    world_size: int
    """Number of processes."""
    local_rank: int
    """Index on this machine (selects the GPU)."""
    device: torch.device
    """Device this process should use."""

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs and saves."""
        return self.rank == 0


def setup_distributed(backend: str | None = None) -> DistributedInfo:
    """Join the process group described by torchrun's environment variables (if any).

    Uses NCCL when CUDA is available and gloo otherwise (CPU). Safe to call in a plain single-process run:
    it then initialises nothing and reports rank 0 of 1.

    Args:
        backend: Force a backend (`"gloo"`, `"nccl"`); `None` chooses as above.

    Returns:
        The rank, world size, local rank and device of this process.

    Raises:
        ValueError: If `RANK`, `WORLD_SIZE` or `LOCAL_RANK` is not an integer.

    Examples:
        >>> info = setup_distributed()  # no torchrun variables in a doctest
        >>> (info.rank, info.world_size, info.is_main)
        (0, 1, True)
    """
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers: {err}") from None
    use_cuda = torch.cuda.is_available() and backend != "gloo"
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend or ("nccl" if use_cuda else "gloo"))
    return DistributedInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def get_rank() -> int:
    """Rank of this process (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0 (and in a single-process run): the process that logs, prints and saves.

    Examples:
        >>> is_main_process()
        True
    """
    return get_rank() == 0


def cleanup_distributed() -> None:
    """Leave the process group, if one was initialised (call once at the end of a script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside a `DistributedDataParallel` (or `DataParallel`) wrapper.

    Args:
        model: A model, wrapped or not.

    Returns:
        `model.module` for a wrapper, `model` otherwise.

    Examples:
        >>> layer = nn.Linear(2, 2)
        >>> unwrap_model(layer) is layer
        True
    """
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model
