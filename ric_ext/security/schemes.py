"""Baseline schemes scored next to RIC, so the report shows what RIC buys.

- LSB (the authors' experiment notes): the plaintext's ``bits`` high bits are
  hidden in the low bits of the 8-bit NAE: c = (NAE & ~mask) | (x >> (8 - bits)).
  Decryption (by anyone who knows the scheme, no key needed) puts them back as
  the high bits and fills the rest with the midpoint.
- Plain-noise cover: RIC's encoder and decoder with the key-seeded noise z0
  instead of an NAE (no attack), i.e. what the adversarial step contributes.
"""

from __future__ import annotations

import torch


def lsb_encrypt(x: torch.Tensor, nae: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """(B, C, H, W) images and NAEs in [0, 1] -> uint8 ciphertexts."""
    if not 1 <= bits <= 7:
        raise ValueError(f"bits must be in [1, 7], got {bits}")
    x8 = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    z8 = (nae.clamp(0, 1) * 255).round().to(torch.uint8)
    low = (1 << bits) - 1
    return (z8 & (255 - low)) | (x8 >> (8 - bits))


def lsb_decrypt(c: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """uint8 LSB ciphertexts -> images in [0, 1] (high bits recovered, low bits at their midpoint)."""
    if not 1 <= bits <= 7:
        raise ValueError(f"bits must be in [1, 7], got {bits}")
    low = (1 << bits) - 1
    hi = (c & low).to(torch.int32) << (8 - bits)
    return (hi + (1 << (7 - bits))).float() / 255.0
