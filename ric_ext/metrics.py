"""Evaluation metrics exactly as the evaluation protocol of docs/scheme.md.

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
        raise ValueError(
            f"images must both be (B, C, H, W) of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


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


# -- the authors' metrics (``evaluate --metric-mode paper``) --------------------------------
# Their evaluation (csjunjun/RIC, SVHN.py ``valmetric``) calls scikit-image on the
# *unrounded* float images times 255: ``peak_signal_noise_ratio(x, x_hat, data_range=255)``
# and ``structural_similarity(x, x_hat, win_size=11, data_range=255, multichannel=True)``,
# i.e. a uniform 11x11 window (gaussian_weights defaults to False) with the sample
# covariance (use_sample_covariance defaults to True), per channel, averaged over the
# region where the window fits. scikit-image's own default window is 7x7.

PSNR_CAP = 100.0  # an exact recovery (MSE 0, PSNR +inf) counts as this in means


def mean_psnr(values: torch.Tensor, cap: float = PSNR_CAP) -> float:
    """Mean of per-image PSNRs with +inf (exact recoveries) counted as ``cap`` dB, so one exact
    image cannot turn the mean into inf; report how many were exact beside it."""
    if values.numel() == 0:
        return math.nan
    return float(values.double().clamp(max=cap).mean())


def psnr_float(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR of unrounded float images (the authors' PSNR), inf where identical."""
    _check(x, y)
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def ssim_uniform(x: torch.Tensor, y: torch.Tensor, win_size: int = 7, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM with scikit-image's defaults: uniform ``win_size`` window, sample covariance,
    per channel then averaged, on the unrounded images (the authors' call used win_size=11)."""
    _check(x, y)
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be odd and >= 3, got {win_size}")
    if min(x.shape[-2:]) < win_size:
        raise ValueError(
            f"SSIM with a {win_size}x{win_size} window needs images at least that large, got {tuple(x.shape[-2:])}"
        )
    a, b = x.double(), y.double()
    B, C, H, W = a.shape
    k = torch.full((1, 1, win_size, win_size), 1.0 / win_size**2, dtype=torch.float64)

    def filt(t: torch.Tensor) -> torch.Tensor:  # 'valid' region = scikit-image's crop of pad = (win - 1) // 2
        return F.conv2d(t.reshape(B * C, 1, H, W), k)

    n = win_size**2
    cov_norm = n / (n - 1)
    ux, uy = filt(a), filt(b)
    vx = cov_norm * (filt(a * a) - ux * ux)
    vy = cov_norm * (filt(b * b) - uy * uy)
    vxy = cov_norm * (filt(a * b) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.reshape(B, C, -1).mean(-1).mean(-1)
