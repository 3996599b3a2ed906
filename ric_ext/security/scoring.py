"""Scoring a guess of the plaintext, beside guesses that know nothing about the image."""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch

from .. import metrics

#: Targets: an attack may beat the training-set mean image by at most this much.
TARGET_DPSNR, TARGET_DSSIM = 1.0, 0.05


def _psnr_each(guess: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB, capped at 100) of guesses against plaintexts."""
    return metrics.psnr(guess.detach().float().cpu().clamp(0, 1), x).clamp(max=100)


def score(guess: torch.Tensor, x: torch.Tensor) -> dict:
    """Mean PSNR (dB, capped at 100 per image) and SSIM of guesses against plaintexts."""
    guess = guess.detach().float().cpu().clamp(0, 1)
    out = {"psnr": float(_psnr_each(guess, x).mean())}
    out["ssim"] = float(metrics.ssim(guess, x).mean()) if min(x.shape[-2:]) >= 11 else float("nan")
    return out


def paired_vs(guess_psnr: torch.Tensor, ref_psnr: torch.Tensor) -> dict:
    """How a guess compares with a reference guess image by image, from their per-image PSNRs (n,).

    The means of two guesses can agree while one of them still knows something about each image;
    the paired difference says whether it does: its mean with a standard error, and the share of
    images on which the guess is the closer of the two (ties count half).
    """
    d = (guess_psnr - ref_psnr).double()
    n = d.numel()
    se = float(d.std() / math.sqrt(n)) if n > 1 else float("nan")
    closer = (d > 0).double() + 0.5 * (d == 0).double()
    return {"dpsnr": float(d.mean()), "dpsnr_se": se, "share_closer": float(closer.mean()), "images": n}


class Scorer:
    """Scores rows and compares them with the training-set mean image's score."""

    def __init__(self, x: torch.Tensor, refs: Dict[str, torch.Tensor]):
        self.x = x
        self.refs = {k: score(v, x) for k, v in refs.items()}
        self.base = self.refs["training-set mean image"]
        # the label is public, so per image the guess to beat is its class-mean image
        self._class_psnr = _psnr_each(refs["class-mean image"], x)

    def row(
        self,
        section: str,
        name: str,
        guess: torch.Tensor,
        settings: dict,
        target: bool = False,
        against: Optional[dict] = None,
        extra: Optional[dict] = None,
    ) -> dict:
        s = score(guess, self.x)
        base = against or self.base
        r = {
            "section": section,
            "attack": name,
            **s,
            "dpsnr_vs_train_mean": s["psnr"] - self.base["psnr"],
            "dssim_vs_train_mean": s["ssim"] - self.base["ssim"],
            "settings": settings,
            "baselines": self.refs,
        }
        r["vs_class_mean"] = paired_vs(_psnr_each(guess, self.x), self._class_psnr)
        if target:
            r["target"] = f"PSNR <= {base['psnr'] + TARGET_DPSNR:.2f} dB and SSIM <= {base['ssim'] + TARGET_DSSIM:.3f}"
            r["meets_target"] = bool(
                s["psnr"] <= base["psnr"] + TARGET_DPSNR and not s["ssim"] > base["ssim"] + TARGET_DSSIM
            )
        if extra:
            r.update(extra)
        return r
