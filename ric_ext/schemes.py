"""How a ciphertext hides the image: the two schemes a :class:`~ric_ext.cipher.Cipher` can use.

Both make c = (1 - lam) * share + lam * z, rounded to 8 bits, where z is the NAE; they
differ in the share (docs/scheme.md):

- ``"paper"``: share = E(F(x), z), the learned encoder's output (the paper's scheme;
  the decoder D recovers x). Needs a trained :class:`~ric_ext.models.RIC`.
- ``"pad"``: share = (a * x + k) mod 1, a one-time pad with the key's pad stream k
  (:func:`ric_ext.ops.keyed_pad`). For a uniform k the share is uniform whatever x is,
  so the ciphertext, nonce and step count carry nothing about x beyond its label
  (docs/security.md). No networks are needed. Recovery is limited by the 8-bit
  rounding, amplified by 1/((1 - lam) a): about 44.8 dB at lam = 0.8, a = 0.98.

A scheme turns the images of a batch into a *state* once (:meth:`prepare`), makes the
uint8 ciphertexts of any rows of that state for given NAEs (:meth:`encode`; the
ciphertext stop rule calls it on the active rows), and decodes ciphertexts
(:meth:`decode`).
"""

from __future__ import annotations

from typing import Optional

import torch

from . import ops
from .batching import fast_layout, run_chunked
from .keys import Key
from .models.classifiers import fingerprint
from .models.networks import RIC
from .ops.pad import DEFAULT_A

SCHEMES = ("paper", "pad")


def default_scheme(model: Optional[RIC]) -> str:
    """The scheme when none is named: ``"pad"`` without a RIC model, ``"paper"`` with one (its networks
    are that scheme's; :class:`~ric_ext.cipher.Cipher` warns then, as that scheme leaks)."""
    return "pad" if model is None else "paper"


#: The NAE's weight in the "pad" scheme (the paper's lam).
PAD_LAM = 0.8


class PaperScheme:
    """share = E(F(x), z); decode with D (the networks of ``model``, on fixed micro-batches)."""

    name = "paper"

    def __init__(self, model: RIC, micro_batch: Optional[int]):
        if not isinstance(model, RIC):
            raise TypeError(f"the 'paper' scheme needs a ric_ext RIC model, got {type(model).__name__}")
        self.model, self.micro_batch = model.eval(), micro_batch
        self.lam, self.channels = model.lam, model.channels

    def header(self) -> dict:
        return {"scheme": self.name, "lam": self.lam, "model": fingerprint(self.model)}

    def prepare(self, x: torch.Tensor, nonces: torch.Tensor, key: Key) -> torch.Tensor:
        # F(x) does not depend on the NAE, so the ciphertext rule's checks reuse it.
        return run_chunked(lambda xx: self.model.features(fast_layout(xx)), (x,), self.micro_batch)

    def encode(self, state: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        def enc(f: torch.Tensor, zz: torch.Tensor) -> torch.Tensor:
            return self.model.encrypt_uint8_from_features(f, fast_layout(zz)).contiguous()

        return run_chunked(enc, (state, z), self.micro_batch)

    def decode(
        self, pixels: torch.Tensor, z: torch.Tensor, nonces: torch.Tensor, key: Key, micro_batch: Optional[int]
    ) -> torch.Tensor:
        def dec(p: torch.Tensor, zz: torch.Tensor) -> torch.Tensor:
            return self.model.decrypt(fast_layout(p), fast_layout(zz)).contiguous()

        return run_chunked(dec, (pixels, z), micro_batch)


class PadScheme:
    """share = (a x + k) mod 1 under the key's pad stream; decode by unmasking and unpadding."""

    name = "pad"

    def __init__(self, lam: float = PAD_LAM, a: float = DEFAULT_A):
        # The unpad is exact only while the 8-bit rounding error of the share, 0.5/255/(1-lam),
        # stays below the guard (1-a)/2.
        if not 0.0 < lam < 1.0 or not 0.0 < a < 1.0 or 0.5 / 255 / (1 - lam) >= (1 - a) / 2:
            raise ValueError(f"pad scheme needs 0.5/255/(1-lam) < (1-a)/2, got lam={lam}, a={a}")
        self.lam, self.a, self.channels = float(lam), float(a), None

    def header(self) -> dict:
        return {"scheme": self.name, "lam": self.lam, "pad_a": self.a, "model": None}

    def prepare(self, x: torch.Tensor, nonces: torch.Tensor, key: Key) -> torch.Tensor:
        return ops.keyed_pad(x.float(), key.pad_key, nonces.to(x.device), self.a)

    def encode(self, state: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return ops.mask_uint8(state, z.float(), self.lam)

    def decode(
        self, pixels: torch.Tensor, z: torch.Tensor, nonces: torch.Tensor, key: Key, micro_batch: Optional[int]
    ) -> torch.Tensor:
        r = ops.unmask(pixels, z.float(), self.lam)
        return ops.keyed_pad(r, key.pad_key, nonces.to(r.device), self.a, inverse=True)
