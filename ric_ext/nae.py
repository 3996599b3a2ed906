"""Noise-like adversarial examples (NAE): the targeted C&W attack of SPEC.md,
started from key-seeded noise, with no distance term.

    z = (tanh(w) + 1) / 2,  w0 = atanh(2 z0 - 1),  z0 = keyed_uniform(key, nonce)
    minimise  c * max(max_{j != y} f(z)_j - f(z)_y, -kappa)  with Adam (lr 0.01)

Early stop (the authors' rule, applied per sample so that an image's NAE does
not depend on what else is in its batch): every ``steps // 10`` iterations a
sample whose cost rose since the previous check is frozen at its current
iterate.

Fused kernels: ``keyed_uniform`` (noise and its tanh-space start),
``cw_margin`` (loss and gradient) and ``adam_tanh_step_`` (update + z).
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Iterator, Sequence, Union

import torch
from torch import nn

from . import ops
from .ops.keystream import KeyLike


@dataclass(frozen=True)
class NAEConfig:
    """Attack settings (SPEC: SVHN c=10, kappa=5, 100 steps; CIFAR-10 kappa=5, 150 steps)."""

    c: float = 10.0
    kappa: float = 5.0
    steps: int = 100
    lr: float = 0.01
    early_stop: bool = True

    def __post_init__(self) -> None:
        if not self.c > 0:
            raise ValueError(f"NAE c must be > 0, got {self.c}")
        if not self.kappa >= 0:
            raise ValueError(f"NAE kappa must be >= 0, got {self.kappa}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"NAE steps must be an int >= 0, got {self.steps!r}")
        if not self.lr > 0:
            raise ValueError(f"NAE lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NAEConfig":
        return cls(c=float(d["c"]), kappa=float(d["kappa"]), steps=int(d["steps"]), lr=float(d["lr"]),
                   early_stop=bool(d["early_stop"]))


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Deterministic kernels inside the attack (cuDNN picks, no atomics), restored afterwards."""
    prev = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[2], prev[3]


def _module_device(m: nn.Module) -> torch.device:
    for t in list(m.parameters()) + list(m.buffers()):
        return t.device
    return torch.device("cpu")


class NAEGenerator:
    """Makes NAEs against a fixed classifier.

    Args:
        classifier: maps (B, C, H, W) images in [0, 1] to (B, K) logits (include
            the input normalisation, e.g. :class:`ric_ext.models.Normalized`).
            It is put in eval mode and never modified.
        config: attack settings.
        backend: "native" (fused kernels) or "torch" (references).
    """

    def __init__(self, classifier: nn.Module, config: NAEConfig = NAEConfig(), backend: str = "native"):
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be a torch.nn.Module, got {type(classifier).__name__}")
        self.classifier = classifier.eval()
        self.config = config
        self.backend = backend

    @property
    def device(self) -> torch.device:
        return _module_device(self.classifier)

    def __call__(self, key: KeyLike, nonces: torch.Tensor, labels: torch.Tensor,
                 shape: Union[Sequence[int], torch.Size]) -> torch.Tensor:
        """NAEs for a batch.

        Args:
            key: the 32-byte noise key.
            nonces: (B, 12) uint8, one per image.
            labels: (B,) int64 target labels y.
            shape: per-image (C, H, W).
        Returns:
            (B, C, H, W) float32 in [0, 1] on the classifier's device.
        """
        cfg, dev = self.config, self.device
        nonces = nonces.to(dev)
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
            raise TypeError("labels must be an int64 tensor")
        labels = labels.to(dev)
        if labels.shape != (nonces.shape[0],):
            raise ValueError(f"labels must have shape ({nonces.shape[0]},), got {tuple(labels.shape)}")
        z = ops.keyed_uniform(key, nonces, tuple(shape), backend=self.backend)
        if cfg.steps == 0 or z.shape[0] == 0:
            return z
        w = ops.keyed_uniform(key, nonces, tuple(shape), tanh_space=True, backend=self.backend)
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        active = torch.ones(z.shape[0], dtype=torch.bool, device=dev)
        prev_cost = torch.full((z.shape[0],), float("inf"), device=dev)
        check_every = max(cfg.steps // 10, 1)
        with deterministic_algorithms(), torch.enable_grad():
            for step in range(1, cfg.steps + 1):
                z_req = z.detach().requires_grad_(True)
                cost = cfg.c * ops.cw_margin(self.classifier(z_req), labels, cfg.kappa, targeted=True,
                                             backend=self.backend)
                (grad,) = torch.autograd.grad(cost.sum(), z_req)
                if cfg.early_stop and step % check_every == 0:
                    cost = cost.detach()
                    active &= ~(cost > prev_cost)
                    prev_cost = torch.where(active, cost, prev_cost)
                    if not bool(active.any()):
                        break
                z = ops.adam_tanh_step_(w, m, v, grad, step, lr=cfg.lr, active=active, grad_wrt="adv",
                                        backend=self.backend)
        return z.detach()
