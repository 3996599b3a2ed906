"""What the security evaluation runs: its sections and their settings (:class:`AttackConfig`).
Apart from :mod:`.attacks` so that the sections (:mod:`.sections`) can name their settings'
type without importing the module that runs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .inversion import InversionSettings
from .public_model import PublicModelSettings

SECTIONS = ("inversion", "keys", "ciphertext_only", "robustness", "baselines", "public_model")


@dataclass(frozen=True)
class AttackConfig:
    attacks: Sequence[str] = SECTIONS
    inversion: InversionSettings = field(default_factory=InversionSettings)
    reencrypt_images: int = 10
    reencrypt_n: Sequence[int] = (1, 2, 8, 32)
    jpeg_qualities: Sequence[int] = (95, 90, 75, 50, 25)
    noise_sigmas: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0)  # grey levels (0-255 scale)
    lsb_bits: int = 4
    public: PublicModelSettings = field(default_factory=PublicModelSettings)

    def __post_init__(self) -> None:
        bad = [a for a in self.attacks if a not in SECTIONS]
        if bad:
            raise ValueError(f"unknown attack section(s) {bad}; choose from {list(SECTIONS)}")
        if self.reencrypt_images < 1 or not self.reencrypt_n or min(self.reencrypt_n) < 1:
            raise ValueError("reencrypt_images and every reencrypt_n must be >= 1")
        if any(not 1 <= q <= 100 for q in self.jpeg_qualities):
            raise ValueError("JPEG qualities must be in [1, 100]")
        if any(s < 0 for s in self.noise_sigmas):
            raise ValueError("noise sigmas must be >= 0")

    def to_dict(self) -> dict:
        return {
            "attacks": list(self.attacks),
            "inversion": self.inversion.to_dict(),
            "reencrypt_images": self.reencrypt_images,
            "reencrypt_n": list(self.reencrypt_n),
            "jpeg_qualities": list(self.jpeg_qualities),
            "noise_sigmas": list(self.noise_sigmas),
            "lsb_bits": self.lsb_bits,
            "public": self.public.to_dict(),
        }
