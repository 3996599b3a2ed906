"""The "digits" scheme's NAE: a targeted C&W attack on the high digit of each ciphertext byte,
checked on the actual bytes, never replayed (docs/scheme.md#digits).

A ciphertext byte is ``base * q + m``: m in [0, base) is the keyed share (the image, padded;
fixed here), q in [0, levels), levels = 256 // base, is the NAE's digit. The attack holds a
continuous z in [0, 1] per subpixel, z = (tanh(w) + 1) / 2, with q = min(floor(levels * z),
levels - 1), and minimises

    c * max(max_{j != y} f(x)_j - f(x)_y, -(kappa + extra_margin)),   x = (base * q + m) / 255

with Adam (lr) through a straight-through rounding (dq/dz taken as ``levels``). The classifier
sees exactly the bytes the cloud will see. An image is done once its **actual bytes** are
labelled y with margin >= ``ct_margin`` by the classifier in float32 (the cloud's precision),
so label agreement holds by construction, whatever precision the attack's own steps use.

Decryption never runs this: the share is read back from the bytes (``c mod base``), so the
attack is free of every replay constraint. It runs on any batch size, finished images leave
the batch, and its forward/backward may use bfloat16 autocast (``precision``) or, on CUDA,
TF32 and CUDA graphs (:mod:`ric_ext.nae_step`).

Where it starts: a bank entry for the label (:mod:`ric_ext.bank`; most images pass the
first check with no step at all) or the keyed noise z0 (``keyed_uniform``) as before.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List, NamedTuple, Optional, Sequence

import torch
from torch import nn

from . import ops
from .batching import check_micro_batch, fast_layout, run_chunked
from .nae import _NEW_TF32_API, NAEConfig, _set_fp32_precision, _tf32_switches, decorrelate_rows
from .nae_step import make_step

PRECISIONS = ("auto", "fp32", "bf16")
#: Rows per classifier call unless given: every forward and attack step runs on chunks of exactly this
#: many rows (the last one padded), so an image's ciphertext does not depend on which other images
#: share its batch (a torchrun shard makes the same bytes as one process). On the CPU, 32 is also
#: the fastest (1.4x batch 256 on SVHN, 1.8x on LFW at 64 px: docs/benchmarks.md); on CUDA, 256.
CHUNK_CPU, CHUNK_CUDA = 32, 256


def levels_of(base: int) -> int:
    """How many values the NAE digit takes at this base: 256 // base."""
    return 256 // base


def quantise(z: torch.Tensor, levels: int) -> torch.Tensor:
    """z in [0, 1] -> the NAE digit q = min(floor(levels * z), levels - 1), uint8."""
    return torch.clamp(torch.floor(z * levels), 0, levels - 1).to(torch.uint8)


def compose(q: torch.Tensor, m: torch.Tensor, base: int) -> torch.Tensor:
    """The ciphertext bytes base * q + m (uint8; q < 256 // base and m < base, so at most 255)."""
    return q * base + m


def start_z(q: torch.Tensor, levels: int) -> torch.Tensor:
    """The continuous start for a given digit: the middle of its interval, (q + 0.5) / levels."""
    return (q.float() + 0.5) / levels


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto': bf16 on CUDA and on CPUs with native bfloat16 (AMX / AVX-512 BF16), else fp32.

    On a CPU without it, oneDNN emulates bfloat16 and the steps get slower, not faster
    (docs/benchmarks.md).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    return "bf16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


class _Autocast(nn.Module):
    """The classifier under bfloat16 autocast, float32 logits out (cache off: safe in graph capture)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, cache_enabled=False):
            return self.net(x).float()


@contextlib.contextmanager
def _tf32(device: torch.device) -> Iterator[None]:
    """TF32 for the attack steps' float32 work on CUDA (never for the check, which runs as the cloud does);
    through whichever TF32 switches this torch has (:func:`ric_ext.nae._tf32_switches`)."""
    if device.type != "cuda":
        yield
        return
    prev = _set_fp32_precision({k: "tf32" if _NEW_TF32_API else True for k in _tf32_switches()})
    try:
        yield
    finally:
        _set_fp32_precision(prev)


def _summed(steps: list):
    """One step over several classifiers: the worst C&W loss per row (so that -cw is the smallest
    margin, which picks the rows to check) and the sum of their gradients."""

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple:
        outs = [s(x, y) for s in steps]
        cw = torch.stack([o[0] for o in outs]).amax(0)
        grad = outs[0][1].clone()
        for o in outs[1:]:
            grad += o[1]
        return cw, grad

    return step


class DigitResult(NamedTuple):
    pixels: torch.Tensor  #: (B, C, H, W) uint8 ciphertexts
    steps: torch.Tensor  #: (B,) int64 on the CPU: Adam updates each took (0: passed from the start)
    passed: torch.Tensor  #: (B,) bool on the CPU: labelled y with margin >= ct_margin in float32


class DigitAttack:
    """The attack against one classifier at one digit base.

    Args:
        classifier: images in [0, 1] -> logits, eval mode, never modified.
        config: the NAE settings; ``c``, ``kappa`` + ``extra_margin`` (the attack's confidence),
            ``steps`` (the bound), ``lr``, ``ct_margin`` (the check) and ``decorrelate`` apply.
        base: the share's digit base (3..128: the NAE digit needs at least 2 levels).
        precision: the attack steps' precision: 'auto', 'fp32' or 'bf16' (:func:`resolve_precision`).
            The check always runs in float32.
        step_impl: as :func:`ric_ext.nae_step.make_step` ('auto': CUDA graphs on CUDA, eager on CPU).
        chunk: rows per classifier call (None: ``CHUNK_CPU`` or ``CHUNK_CUDA`` by device).
        members: other classifiers of the task (a portable bank's ensemble, issue 36): the check
            then asks every one of them too, and a step's gradient is the sum of theirs.
    """

    def __init__(
        self,
        classifier: nn.Module,
        config: NAEConfig,
        base: int,
        precision: str = "auto",
        step_impl: str = "auto",
        chunk: Optional[int] = None,
        members: Sequence[nn.Module] = (),
    ):
        if not isinstance(config, NAEConfig):
            raise TypeError(f"config must be an NAEConfig, got {type(config).__name__}")
        if config.stop != "ciphertext":
            raise ValueError(
                f"the digits scheme stops on the ciphertext check (NAE stop 'ciphertext'), got {config.stop!r}"
            )
        if config.margin != "masked":
            raise ValueError("the digits scheme uses the masked C&W margin (NAE margin 'masked')")
        if not 3 <= base <= 128:
            raise ValueError(f"base must be in [3, 128] (the NAE digit needs two levels at least), got {base}")
        self.classifier = classifier.eval()
        self.members: List[nn.Module] = [m.eval() for m in members]
        self.config, self.base, self.levels = config, int(base), levels_of(base)
        self.precision_arg, self.step_impl = precision, step_impl
        self.chunk_arg = check_micro_batch(chunk)
        resolve_precision(precision, torch.device("cpu"))  # validates the name
        self._steps: dict = {}

    @property
    def device(self) -> torch.device:
        for t in list(self.classifier.parameters()) + list(self.classifier.buffers()):
            return t.device
        return torch.device("cpu")

    @property
    def precision(self) -> str:
        return resolve_precision(self.precision_arg, self.device)

    @property
    def chunk(self) -> int:
        if self.chunk_arg is not None:
            return self.chunk_arg
        return CHUNK_CUDA if self.device.type == "cuda" else CHUNK_CPU

    def _step(self):
        key = (str(self.device), self.precision, self.chunk)
        if key not in self._steps:
            cfg = self.config
            steps = [
                make_step(
                    self.step_impl,
                    _Autocast(net) if self.precision == "bf16" else net,
                    self.device,
                    cfg.c,
                    cfg.attack_kappa,
                    "native",
                    self.chunk,
                )
                for net in (self.classifier, *self.members)
            ]
            self._steps[key] = steps[0] if len(steps) == 1 else _summed(steps)
        return self._steps[key]

    @torch.no_grad()
    def logits(self, images: torch.Tensor, net: Optional[nn.Module] = None) -> torch.Tensor:
        """The float32 logits of the classifier (or ``net``) on (B, C, H, W) images (uint8, or float in
        [0, 1]), in chunks."""
        net = net or self.classifier
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        return run_chunked(lambda p: net(fast_layout(p)).float(), (x,), self.chunk)

    def margins(self, pixels: torch.Tensor, labels: torch.Tensor, net: Optional[nn.Module] = None) -> torch.Tensor:
        """The classifier's (or ``net``'s) float32 margin f_y - max_{j != y} f_j on uint8 ``pixels``."""
        if pixels.shape[0] == 0:
            return torch.zeros(0, device=pixels.device)
        return ops.margin(self.logits(pixels, net), labels)

    def check(self, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the bytes are labelled y with margin >= ct_margin in float32 (by every member too)."""
        ok = self.margins(pixels, labels) >= self.config.ct_margin
        for net in self.members:
            ok &= self.margins(pixels, labels, net) >= self.config.ct_margin
        return ok

    def failing(self, pixels: torch.Tensor, labels: torch.Tensor) -> List[tuple]:
        """(who, image indices) for each classifier that does not label the bytes y with margin
        ct_margin: who is -1 for the crafting classifier, i for members[i]."""
        out = []
        for who, net in enumerate((self.classifier, *self.members), start=-1):
            bad = (self.margins(pixels, labels, net) < self.config.ct_margin).nonzero().flatten()
            if bad.numel():
                out.append((who, bad.tolist()))
        return out

    def run(self, m: torch.Tensor, labels: torch.Tensor, q0: torch.Tensor) -> DigitResult:
        """Ciphertexts for shares ``m`` ((B, C, H, W) uint8 < base), ``labels`` (B,) and start digits
        ``q0`` ((B, C, H, W) uint8 < levels), all on the classifier's device."""
        cfg, dev, base, levels = self.config, self.device, self.base, self.levels
        B = m.shape[0]
        pixels = compose(q0, m, base)
        passed = self.check(pixels, labels)
        steps = torch.zeros(B, dtype=torch.int64, device=dev)
        idx = (~passed).nonzero().flatten()
        if idx.numel() == 0 or cfg.steps == 0:
            return DigitResult(pixels, steps.cpu(), passed.cpu())
        # STE: the classifier's input is x = (base * q + m) / 255 and dq/dz is taken as `levels`.
        scale = base * levels / 255.0
        z = start_z(q0[idx], levels)
        w = torch.atanh(2 * z - 1).contiguous()
        mom, vel = torch.zeros_like(w), torch.zeros_like(w)
        mi, yi = m[idx], labels[idx]
        step = self._step()
        with torch.enable_grad():
            for t in range(cfg.steps + 1):
                p = compose(quantise(z, levels), mi, base)
                if t == cfg.steps:  # the bound: keep what the last update made, passed or not
                    pixels[idx], steps[idx], passed[idx] = p, t, self.check(p, yi)
                    break
                with _tf32(dev):
                    cw, grad = step(p.float() / 255.0, yi)
                if t > 0:
                    # -cw = min(margin, kappa'): the step's own (maybe bf16) margin picks whom to check.
                    cand = (-cw >= cfg.ct_margin).nonzero().flatten()
                    if cand.numel():
                        ok = cand[self.check(p[cand], yi[cand])]
                        if ok.numel():
                            done = idx[ok]
                            pixels[done], steps[done], passed[done] = p[ok], t, True
                            keep = torch.ones(idx.numel(), dtype=torch.bool, device=dev)
                            keep[ok] = False
                            idx, z, w, mom, vel, mi, yi, grad = (a[keep] for a in (idx, z, w, mom, vel, mi, yi, grad))
                            if idx.numel() == 0:
                                break
                grad = grad * scale
                if cfg.decorrelate:
                    grad = decorrelate_rows(grad, cfg.decorrelate)
                z = ops.adam_tanh_step_(w, mom, vel, grad.contiguous(), t + 1, lr=cfg.lr, grad_wrt="adv")
        return DigitResult(pixels, steps.cpu(), passed.cpu())
