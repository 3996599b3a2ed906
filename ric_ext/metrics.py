"""Evaluation metrics exactly as SPEC.md's protocol.

Images are (B, C, H, W) float in [0, 1] (or uint8). PSNR, SSIM and the mean
absolute error compare the 8-bit images round(255 x), data range 255, and are
computed per image then averaged. SSIM follows Wang et al. as in
scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)``: an 11x11 Gaussian window,
per channel, averaged over the valid (uncropped) region.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_uint8_grid(x: torch.Tensor) -> torch.Tensor:
    """round(255 x) clamped to [0, 255] as float64 (uint8 input is taken as is)."""
    if x.dtype == torch.uint8:
        return x.double()
    return torch.clamp(torch.round(x.double() * 255.0), 0, 255)


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"images must both be (B, C, H, W) of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB on the 8-bit grid (inf for identical images)."""
    _check(x, y)
    mse = (to_uint8_grid(x) - to_uint8_grid(y)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse)


def mae(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image mean absolute pixel error on the 0-255 scale."""
    _check(x, y)
    return (to_uint8_grid(x) - to_uint8_grid(y)).abs().flatten(1).mean(1)


def _gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Per-image SSIM (mean over channels) on the 8-bit grid; H, W >= 11."""
    _check(x, y)
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11, got {tuple(x.shape[-2:])}")
    a, b = to_uint8_grid(x), to_uint8_grid(y)
    B, C, H, W = a.shape
    g = _gaussian_window()
    k = g.numel()

    def filt(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian, 'valid' region only
        t = t.reshape(B * C, 1, H, W)
        t = F.conv2d(t, g.view(1, 1, k, 1))
        return F.conv2d(t, g.view(1, 1, 1, k))

    ux, uy = filt(a), filt(b)
    vx = filt(a * a) - ux * ux
    vy = filt(b * b) - uy * uy
    vxy = filt(a * b) - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.reshape(B, C, -1).mean(-1).mean(-1)


def agreement(labels_a: torch.Tensor, labels_b: torch.Tensor) -> float:
    """Fraction of images on which two label vectors agree."""
    if labels_a.shape != labels_b.shape:
        raise ValueError("label vectors must have the same shape")
    return float((labels_a == labels_b).double().mean()) if labels_a.numel() else math.nan
