"""The NAEs a training step masks its images with: fresh ones per batch, or a fixed pool."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from ..batching import batch_slices
from ..nae import NAEConfig, NAEGenerator
from .data_order import step_rng


class NAESource:
    """``for_step(step, labels) -> (z, mean attack steps)``.

    pool == 0: a fresh NAE per image from nonces drawn for (seed, step, rank),
    made with the adaptive attack (cheap: ~8 steps on SVHN). pool == N: N NAEs
    per class made once from fixed nonces (same on every rank and resume) and
    sampled per step; the NAE depends only on (key, nonce, label), so this is
    the same distribution with less variety.
    """

    def __init__(
        self,
        classifier: nn.Module,
        config: NAEConfig,
        key: bytes,
        shape: Tuple[int, ...],
        seed: int,
        pool: int = 0,
        rank: int = 0,
        device: torch.device = torch.device("cpu"),
    ):
        self.generator = NAEGenerator(classifier, config)
        self.classifier, self.key, self.shape = classifier, key, tuple(shape)
        self.seed, self.pool_size, self.rank, self.device = seed, pool, rank, device
        self.pool: Optional[torch.Tensor] = None

    def for_step(self, step: int, labels: torch.Tensor) -> Tuple[torch.Tensor, float]:
        g = step_rng(self.seed, step, 1 + 10 * self.rank)
        if self.pool_size <= 0:
            nonces = torch.randint(0, 256, (labels.shape[0], 12), dtype=torch.uint8, generator=g)
            res = self.generator.generate(self.key, nonces, labels, self.shape)
            return res.z, float(res.steps.float().mean())
        if self.pool is None:
            self.pool = self._make_pool()
        pick = torch.randint(0, self.pool_size, (labels.shape[0],), generator=g).to(self.device)
        return self.pool[labels, pick], 0.0

    def sample(self, labels: torch.Tensor, seed: int = 1) -> torch.Tensor:
        """NAEs for ``labels`` from nonces seeded by ``seed`` alone (grids)."""
        nonces = torch.randint(
            0, 256, (labels.shape[0], 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
        )
        return self.generator(self.key, nonces, labels, self.shape)

    def _make_pool(self) -> torch.Tensor:
        """(K, N, C, H, W): N NAEs per class."""
        K = int(self.classifier(torch.zeros(1, *self.shape, device=self.device)).shape[1])
        P = self.pool_size
        g = torch.Generator().manual_seed(self.seed * 31 + 5)
        nonces = torch.randint(0, 256, (K * P, 12), dtype=torch.uint8, generator=g)
        labels = torch.arange(K).repeat_interleave(P)
        zs = [self.generator(self.key, nonces[sl], labels[sl], self.shape) for sl in batch_slices(K * P, 256)]
        return torch.cat(zs).reshape(K, P, *self.shape)
