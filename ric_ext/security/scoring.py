"""Scoring a guess of the plaintext, beside guesses that know nothing about the image."""

from __future__ import annotations

from typing import Dict, Optional

import torch

from .. import metrics

#: Targets: an attack may beat the training-set mean image by at most this much.
TARGET_DPSNR, TARGET_DSSIM = 1.0, 0.05


def score(guess: torch.Tensor, x: torch.Tensor) -> dict:
    """Mean PSNR (dB, capped at 100 per image) and SSIM of guesses against plaintexts."""
    guess = guess.detach().float().cpu().clamp(0, 1)
    out = {"psnr": float(metrics.psnr(guess, x).clamp(max=100).mean())}
    out["ssim"] = float(metrics.ssim(guess, x).mean()) if min(x.shape[-2:]) >= 11 else float("nan")
    return out


class Scorer:
    """Scores rows and compares them with the training-set mean image's score."""

    def __init__(self, x: torch.Tensor, refs: Dict[str, torch.Tensor]):
        self.x = x
        self.refs = {k: score(v, x) for k, v in refs.items()}
        self.base = self.refs["training-set mean image"]

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
        if target:
            r["target"] = f"PSNR <= {base['psnr'] + TARGET_DPSNR:.2f} dB and SSIM <= {base['ssim'] + TARGET_DSSIM:.3f}"
            r["meets_target"] = bool(
                s["psnr"] <= base["psnr"] + TARGET_DPSNR and not s["ssim"] > base["ssim"] + TARGET_DSSIM
            )
        if extra:
            r.update(extra)
        return r
