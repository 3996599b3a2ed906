"""What a cloud may do to an upload before its classifier sees it, as random transforms for the
expectation a portable NAE bank is trained over (issue 36; :func:`ric_ext.bank.train_bank`).

Each call of :func:`transform` draws one transform per chunk of rows from the settings: a shift of
a few pixels (edges replicated), a horizontal flip where the task allows it, a mild rescale
(down or up, then back, bilinear), JPEG at a random quality (straight-through: the forward pass
sees the real JPEG's bytes, the gradient passes as if it were the identity), and bf16 for the
classifier's forward. A pattern that survives these labels the ciphertext as intended after a
recompression or on a model that sees the image slightly differently; decryption still needs
the file as it was written.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .options import opt, yes_no


@dataclass(frozen=True)
class CloudTransforms:
    """The random transforms of a portable bank's expectation (each field's help is its option)."""

    shift: int = opt(2, "largest shift in pixels, each direction (edges replicated); 0: none")
    flip: bool = opt(False, "horizontal flips (only where the task allows them: not digits)", parse=yes_no)
    rescale: float = opt(0.1, "largest relative rescale, down or up and back (bilinear); 0: none")
    jpeg_min: int = opt(70, "lowest JPEG quality drawn")
    jpeg_max: int = opt(95, "highest JPEG quality drawn")
    jpeg_p: float = opt(0.5, "probability a chunk is JPEG-compressed (straight-through)")
    bf16_p: float = opt(0.25, "probability a chunk's classifier forward runs in bf16")

    def __post_init__(self) -> None:
        if self.shift < 0 or self.rescale < 0 or self.rescale >= 0.5:
            raise ValueError("shift must be >= 0 and rescale in [0, 0.5)")
        if not 1 <= self.jpeg_min <= self.jpeg_max <= 100:
            raise ValueError("JPEG qualities must satisfy 1 <= jpeg_min <= jpeg_max <= 100")
        if not 0 <= self.jpeg_p <= 1 or not 0 <= self.bf16_p <= 1:
            raise ValueError("jpeg_p and bf16_p must be probabilities in [0, 1]")


def jpeg_bytes(x: torch.Tensor, quality: int) -> torch.Tensor:
    """(B, C, H, W) float in [0, 1] -> the same after an 8-bit JPEG round trip at ``quality`` (C 1 or 3)."""
    from PIL import Image

    x8 = torch.round(x.detach().clamp(0, 1) * 255).to(torch.uint8).cpu()
    out = []
    for im in x8:
        arr = im.permute(1, 2, 0).numpy()
        pil = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=int(quality))
        back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(pil.mode))
        out.append(torch.from_numpy(back.reshape(arr.shape).copy()).permute(2, 0, 1))
    return (torch.stack(out).float() / 255.0).to(x.device)


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def transform(x: torch.Tensor, t: CloudTransforms, gen: torch.Generator) -> Tuple[torch.Tensor, bool]:
    """One random cloud transform of the chunk ``x`` (B, C, H, W) in [0, 1], differentiable (JPEG
    straight-through); returns (transformed x, whether the classifier should run in bf16)."""
    H, W = x.shape[-2:]
    if t.shift:
        dy, dx = (int(v) for v in torch.randint(-t.shift, t.shift + 1, (2,), generator=gen))
        s = t.shift
        x = F.pad(x, (s, s, s, s), mode="replicate")[..., s + dy : s + dy + H, s + dx : s + dx + W]
    if t.flip and float(torch.rand((), generator=gen)) < 0.5:
        x = x.flip(-1)
    if t.rescale:
        f = _uniform(gen, 1 - t.rescale, 1 + t.rescale)
        size = (max(2, round(H * f)), max(2, round(W * f)))
        if size != (H, W):
            x = F.interpolate(F.interpolate(x, size=size, mode="bilinear", align_corners=False), size=(H, W),
                              mode="bilinear", align_corners=False)  # fmt: skip
    if float(torch.rand((), generator=gen)) < t.jpeg_p:
        q = int(torch.randint(t.jpeg_min, t.jpeg_max + 1, (), generator=gen))
        x = x + (jpeg_bytes(x, q) - x).detach()
    return x, float(torch.rand((), generator=gen)) < t.bf16_p
