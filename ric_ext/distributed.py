"""Folder jobs across processes started by ``torchrun``: which rank am I, and the few bytes
the ranks must agree on. Each rank then works on its own files (``folders``), so none of
them writes another's output, and no tensors travel between ranks.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Tuple

import torch


def rank_and_world() -> Tuple[int, int]:
    """(RANK, WORLD_SIZE) as torchrun sets them; (0, 1) for a plain process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK {rank} / WORLD_SIZE {world} from the environment do not fit together")
    return rank, world


@contextlib.contextmanager
def process_group() -> Iterator[Tuple[int, int]]:
    """A gloo process group for the duration (when run under torchrun with more than one rank)."""
    import torch.distributed as dist

    rank, world = rank_and_world()
    owns = world > 1 and not dist.is_initialized()
    if owns:
        dist.init_process_group("gloo")
    try:
        yield rank, world
    finally:
        if owns:
            dist.barrier()
            dist.destroy_process_group()


def agree(data: bytes) -> bytes:
    """Rank 0's ``data`` on every rank (the argument is ignored elsewhere); ``data`` itself alone."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return data
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()
    dist.broadcast(t, 0)
    return bytes(t.tolist())


def total(n: int) -> int:
    """The sum of ``n`` over the ranks."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return n
    t = torch.tensor([n], dtype=torch.int64)
    dist.all_reduce(t)
    return int(t)
