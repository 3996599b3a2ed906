"""Validation inside training: a fixed held-out set evaluated exactly as ``evaluate`` does.

Eval-mode (rounding) quantiser, NAEs made by the deployed attack (with the
run's NAE settings) from a fixed validation key and fixed nonces, ciphertexts classified by the frozen
classifier, NAEs regenerated for decryption, 8-bit PSNR / SSIM. Training-batch
PSNR (dithered quantiser, the training NAEs) is not evidence of this.
"""

from __future__ import annotations

import time
from typing import Optional

import torch
from torch import nn

from ..batching import DEFAULT_MICRO_BATCH
from ..keys import Key, hkdf_sha256
from ..models.networks import RIC
from ..nae import NAEConfig


class Validator:
    """``__call__(model) -> dict`` of val_* metrics on ``images`` (N, C, H, W) in [0, 1]."""

    def __init__(
        self,
        images: torch.Tensor,
        classifier: nn.Module,
        *,
        seed: int = 0,
        nae: Optional[NAEConfig] = None,
        micro_batch: Optional[int] = DEFAULT_MICRO_BATCH,
    ):
        if images.dim() != 4 or images.shape[0] < 1:
            raise ValueError(f"validation images must be a non-empty (N, C, H, W) tensor, got {tuple(images.shape)}")
        self.images, self.classifier, self.micro_batch = images, classifier, micro_batch
        self.nae = nae or NAEConfig()
        # A validation key derived from the seed: the same set of ciphertexts every time.
        # A validation key and nonces derived from the seed: every validation sees the same NAEs.
        self.key = Key(hkdf_sha256(int(seed).to_bytes(8, "little", signed=True), b"ric-ext validation key"))
        self.nonces = torch.randint(
            0, 256, (images.shape[0], 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed + 17)
        )

    def __call__(self, model: RIC) -> dict:
        from ..evaluate import evaluate

        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        try:
            res = evaluate(
                model,
                self.classifier,
                self.images.to(next(model.parameters()).device),
                key=self.key,
                nonces=self.nonces,
                nae=self.nae,
                micro_batch=self.micro_batch,
                wrong_key=False,
            )
        finally:
            model.train(was_training)
        return {
            "val_psnr": res["psnr"],
            "val_ssim": res["ssim"],
            "val_mae": res["mae"],
            "val_agreement": res["agreement"],
            "val_cipher_psnr": res["cipher_psnr"],
            "val_nae_steps": res["nae_steps_mean"],
            "val_n": res["n"],
            "val_s": time.perf_counter() - t0,
        }
