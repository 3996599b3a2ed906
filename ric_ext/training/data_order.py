"""Which images and which random numbers a training step uses: pure functions of (seed, step).

This is what makes a resumed run take exactly the steps of an uninterrupted one.
"""

from __future__ import annotations

from typing import List

import torch


def step_rng(seed: int, step: int, stream: int) -> torch.Generator:
    """Generator for one purpose (``stream``) of one step."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 7 + stream)


def batch_indices(n: int, batch: int, step: int, seed: int, rank: int = 0, world: int = 1) -> List[int]:
    """Dataset indices of ``rank``'s share of global batch ``step``: epochs are seeded permutations of range(n)."""
    start = step * batch
    out: List[int] = []
    while len(out) < batch:
        epoch, pos = divmod(start + len(out), n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        out += perm[pos : pos + batch - len(out)].tolist()
    per = batch // world
    return out[rank * per : (rank + 1) * per]
