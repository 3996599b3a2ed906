"""Learning-based inversion (known plaintext): train a U-Net on (ciphertext,
plaintext) pairs and reconstruct unseen plaintexts from their ciphertexts.

Settings are ours (the authors' scripts do not give them) and are written
into every report: U-Net width 32 (:mod:`.unet`), MSE loss, Adam, batch 32,
a fixed number of epochs, and the epoch with the best validation PSNR is kept
(early stopping on the attacker's own validation pairs, as a careful attacker
would do).

``precision="bf16"`` trains under CPU bfloat16 autocast in channels-last layout: the
same networks, optimiser and fp32 master weights, ~3-4x faster on CPUs with AMX. It
buys the attacker more pairs per CPU-hour, not a weaker attack: on the paper's scheme,
where inversion works, it reaches the fp32 attacker's PSNR (docs/security.md). Scores
are always computed from fp32 predictions.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Optional, Tuple, TypeVar

import torch
import torch.nn.functional as F

from .. import metrics
from ..batching import batch_slices, fast_layout
from . import checkpoint as ckpt
from .resinv import ResInverter
from .unet import UNet


@dataclass(frozen=True)
class InversionSettings:
    epochs: int = 60
    lr: float = 1e-3
    batch_size: int = 32
    width: int = 32
    seed: int = 0
    network: str = "unet"  # "unet" (.unet) or "resnet" (the deeper full-resolution .resinv)
    precision: str = "fp32"  # "fp32" or "bf16" (training under bfloat16 autocast; see the module doc)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"inversion {name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"inversion lr must be > 0, got {self.lr}")
        if self.network not in ("unet", "resnet"):
            raise ValueError(f"inversion network must be 'unet' or 'resnet', got {self.network!r}")
        check_precision(self.precision)

    def to_dict(self) -> dict:
        net = {"unet": "unet-2-level", "resnet": "dilated-residual-8-blocks"}[self.network]
        return dict(asdict(self), loss="mse", optimiser="adam", network=net)


PRECISIONS = ("fp32", "bf16")
T = TypeVar("T", torch.Tensor, torch.nn.Module)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"attack precision must be one of {PRECISIONS}, got {precision!r}")


@contextmanager
def training_precision(precision: str) -> Iterator[None]:
    """Autocast for an attacker network's training steps ("fp32": none)."""
    check_precision(precision)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield


def layout(obj: T, precision: str) -> T:
    """Channels-last for bf16 training, for images and networks alike (oneDNN's fast path
    with AMX); unchanged for fp32."""
    if precision != "bf16":
        return obj
    return obj.to(memory_format=torch.channels_last) if isinstance(obj, torch.nn.Module) else fast_layout(obj)


@torch.no_grad()
def _predict(net: torch.nn.Module, inp: torch.Tensor, batch: int = 128) -> torch.Tensor:
    net.eval()
    return torch.cat([net(inp[sl]) for sl in batch_slices(inp.shape[0], batch)]) if inp.shape[0] else inp


def train_inversion(
    train_in: torch.Tensor,
    train_x: torch.Tensor,
    val_in: torch.Tensor,
    val_x: torch.Tensor,
    test_in: torch.Tensor,
    settings: InversionSettings = InversionSettings(),
    checkpoint: Optional[str] = None,
    on_epoch: Optional[Callable[[int, float], None]] = None,
) -> Tuple[torch.Tensor, dict]:
    """Train on (train_in -> train_x), select the epoch by PSNR on (val_in, val_x), reconstruct test_in.

    Inputs (N, C_in, H, W) float; targets (N, C, H, W) in [0, 1]. Returns the
    (N_test, C, H, W) reconstructions and a log (best epoch, validation PSNR per epoch,
    ``train_s``: training seconds, over every run that resumed it).

    ``checkpoint``: a file that holds the training state after every epoch. If it holds a
    state of this training (same settings and training/validation data; ``test_in`` may
    differ), training continues from it, as if never interrupted; ``info["resumed_from_epoch"]``
    says from where (0: from scratch). ``on_epoch(epoch, val_psnr)`` is called after each epoch.
    """
    if train_in.shape[0] != train_x.shape[0] or val_in.shape[0] != val_x.shape[0]:
        raise ValueError("inputs and targets must have the same number of images")
    if train_in.shape[0] == 0:
        raise ValueError("the inversion attack needs at least one training pair")
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        if settings.network == "unet":
            net = UNet(train_in.shape[1], train_x.shape[1], settings.width)
        else:
            net = ResInverter(train_in.shape[1], train_x.shape[1], settings.width)
    net = layout(net, settings.precision)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    best = (-float("inf"), 0, {k: v.clone() for k, v in net.state_dict().items()})
    val_log: list = []
    start, before_s = 0, 0.0
    fp = ckpt.fingerprint("inversion", settings.to_dict(), train_in, train_x, val_in, val_x) if checkpoint else ""
    state = ckpt.load(checkpoint, fp)
    if state is not None:
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["generator"])
        best = (state["best_psnr"], state["best_epoch"], state["best_state"])
        val_log, start, before_s = list(state["val_log"]), int(state["epoch"]), float(state["train_s"])
    n = train_in.shape[0]
    for epoch in range(start + 1, settings.epochs + 1):
        net.train()
        perm = torch.randperm(n, generator=g)
        for sl in batch_slices(n, settings.batch_size):
            idx = perm[sl]
            with training_precision(settings.precision):
                out = net(layout(train_in[idx], settings.precision))
            loss = F.mse_loss(out.float(), train_x[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        ref_in, ref_x = (val_in, val_x) if val_in.shape[0] else (train_in, train_x)
        p = float(metrics.psnr(_predict(net, ref_in), ref_x).mean())
        val_log.append(round(p, 3))
        if p > best[0]:
            best = (p, epoch, {k: v.clone() for k, v in net.state_dict().items()})
        if checkpoint:
            ckpt.save(
                checkpoint,
                {
                    "fingerprint": fp,
                    "epoch": epoch,
                    "net": net.state_dict(),
                    "opt": opt.state_dict(),
                    "generator": g.get_state(),
                    "best_psnr": best[0],
                    "best_epoch": best[1],
                    "best_state": best[2],
                    "val_log": val_log,
                    "train_s": before_s + time.perf_counter() - t0,
                },
            )
        if on_epoch is not None:
            on_epoch(epoch, p)
    net.load_state_dict(best[2])
    info = {
        "best_epoch": best[1],
        "best_val_psnr": best[0],
        "val_psnr": val_log,
        "resumed_from_epoch": start,
        "train_s": round(before_s + time.perf_counter() - t0, 1),
        "train_s_earlier": round(before_s, 1),  # of which the runs this one resumed spent
    }
    return _predict(net, test_in), info
