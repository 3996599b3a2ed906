"""The image-encryption community's standard ciphertext statistics.

All functions take uint8 images (B, C, H, W) (or float in [0, 1], rounded to
8 bits) and return one value per image, so that callers can average or show
spreads.

- NPCR / UACI (Wu et al., 2011): the share of pixels that differ between two
  ciphertexts, and their mean absolute difference / 255. For two independent
  uniform 8-bit images the expected values are 99.609% and 33.464%.
- Histogram chi-square against the uniform distribution over 256 grey levels
  (255 degrees of freedom; 293.25 is the 5% critical value).
- Pearson correlation of adjacent pixels (horizontal, vertical, diagonal):
  near 1 for natural images, near 0 for a good ciphertext.
"""

from __future__ import annotations

import torch

#: Chi-square 5% critical value for 255 degrees of freedom (uniform 256-bin histogram).
CHI2_CRITICAL_255 = 293.25


def _u8(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise TypeError(f"images must be uint8 or float in [0, 1], got {x.dtype}")
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _check4(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"{name} must be a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x))}")


def npcr_uaci(a: torch.Tensor, b: torch.Tensor) -> tuple:
    """(NPCR %, UACI %) per image pair: (B,), (B,)."""
    _check4("a", a)
    _check4("b", b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a8, b8 = _u8(a).long(), _u8(b).long()
    npcr = (a8 != b8).float().flatten(1).mean(1) * 100
    uaci = ((a8 - b8).abs().float() / 255).flatten(1).mean(1) * 100
    return npcr, uaci


def chi_square(x: torch.Tensor) -> torch.Tensor:
    """Chi-square of each image's 256-bin histogram (all channels) against uniform: (B,)."""
    _check4("x", x)
    x8 = _u8(x).flatten(1).long()
    n = x8.shape[1]
    counts = torch.zeros(x8.shape[0], 256, dtype=torch.float64)
    counts.scatter_add_(1, x8, torch.ones_like(x8, dtype=torch.float64))
    expected = n / 256
    return ((counts - expected) ** 2 / expected).sum(1)


DIRECTIONS = {"horizontal": (0, 1), "vertical": (1, 0), "diagonal": (1, 1)}


def adjacent_correlation(x: torch.Tensor, direction: str = "horizontal") -> torch.Tensor:
    """Pearson r between each pixel and its neighbour in ``direction``, over all channels: (B,).

    An image with no variation has no defined correlation: NaN.
    """
    _check4("x", x)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    dy, dx = DIRECTIONS[direction]
    v = _u8(x).double()
    H, W = v.shape[-2:]
    a = v[..., : H - dy, : W - dx].flatten(1)
    b = v[..., dy:, dx:].flatten(1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = (a.pow(2).sum(1) * b.pow(2).sum(1)).sqrt()
    r = (a * b).sum(1) / den
    return torch.where(den > 0, r, torch.full_like(r, float("nan")))
