"""How a ciphertext hides the image: the three schemes a :class:`~ric_ext.cipher.Cipher` can use.

- ``"digits"`` (the default, format 4; docs/scheme.md#digits): each ciphertext byte is
  ``base * q + m``. The low digit m carries the image, losslessly compressed where it fits
  (:mod:`ric_ext.payload`), under a keyed one-time pad of digits; the high digit q is the
  NAE (:mod:`ric_ext.nae_digits`). Decryption is integer arithmetic and a codec: no
  classifier, no NAE, no float that could differ between machines.
- ``"pad"`` (format 3): c = (1 - lam) * s + lam * z rounded to 8 bits, with the share
  s = (a * x + k) mod 1 under a keyed pad (:func:`ric_ext.ops.keyed_pad`). Decryption
  regenerates the NAE z by replaying the attack in float32. About 44.8 dB.
- ``"paper"``: the same mix with the learned encoder's share E(F(x), z), decoded by D (the
  paper's scheme). Needs a trained :class:`~ric_ext.models.RIC`; leaks a blurred image.

The two replayed schemes turn a batch into a *state* once (:meth:`prepare`), make the uint8
ciphertexts of any rows of that state for given NAEs (:meth:`encode`; the ciphertext stop
rule calls it on the active rows), and decode ciphertexts (:meth:`decode`). The digits
scheme instead makes the padded share (:meth:`DigitScheme.share`) and reads it back
(:meth:`DigitScheme.recover`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

from . import codec, ops, payload
from .batching import fast_layout, run_chunked
from .keys import Key
from .models.classifiers import fingerprint
from .models.networks import RIC
from .nae_digits import levels_of
from .ops.pad import DEFAULT_A

SCHEMES = ("digits", "pad", "paper")
#: Schemes whose decryption replays the NAE attack in float32 (formats 1-3).
REPLAYED = ("pad", "paper")
#: The digits scheme's base: 4 NAE levels and 6 bits of share per subpixel (docs/decisions.md).
DIGITS_BASE = 64


def default_scheme(model: Optional[RIC]) -> str:
    """The scheme when none is named: ``"digits"`` without a RIC model, ``"paper"`` with one (its networks
    are that scheme's; :class:`~ric_ext.cipher.Cipher` warns then, as that scheme leaks)."""
    return "digits" if model is None else "paper"


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


_POOL: Optional[ThreadPoolExecutor] = None
#: Below this many images a batch's codec work runs on the calling thread (a pool costs more).
PARALLEL_MIN = 32


def _by_chunks(fn: Callable[[slice], object], n: int) -> List:
    """``fn`` over contiguous slices of ``range(n)``: one per core on a thread pool when the codec
    releases the GIL (imagecodecs) and the batch pays for it; else one slice on this thread."""
    global _POOL
    workers = os.cpu_count() or 1
    if workers == 1 or n < PARALLEL_MIN or codec.backend() != "imagecodecs":
        return [fn(slice(0, n))]
    if _POOL is None:
        _POOL = ThreadPoolExecutor(workers, thread_name_prefix="ric-codec")
    step = -(-n // workers)
    return list(_POOL.map(fn, [slice(i, min(i + step, n)) for i in range(0, n, step)]))


class DigitScheme:
    """Ciphertext byte = base * q + m: the padded share m (the image's digits) and the NAE digit q."""

    name = "digits"

    def __init__(self, base: int = DIGITS_BASE):
        if isinstance(base, bool) or not isinstance(base, int) or not 3 <= base <= 128:
            raise ValueError(f"base must be an int in [3, 128] (the NAE digit needs 2 levels at least), got {base!r}")
        codec.check_available()
        self.base, self.levels, self.channels = base, levels_of(base), None
        # what a float mix c = (1 - lam) * share + lam * nae would weigh the NAE with: its share of the byte range
        self.lam = 1.0 - base / 256.0

    def header(self) -> dict:
        return {"scheme": self.name, "base": self.base, "codec": codec.NAME}

    def share(
        self, images: torch.Tensor, nonces: torch.Tensor, key: Key
    ) -> Tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """The padded share of (B, C, H, W) uint8 CPU images.

        Returns (m: (B, C, H, W) uint8 digits < base, lossless: (B,) bool, recovered: (B, C, H, W)
        uint8, what decryption will return: the image itself where lossless, else its lossy digits).
        """
        x = images.numpy()
        lay = payload.layout(self.base, tuple(x.shape[1:]))
        payloads = [
            p for part in _by_chunks(lambda sl: [payload.compress(i, lay) for i in x[sl]], len(x)) for p in part
        ]
        digits, lossless = payload.pack(x, lay, payloads)
        recovered = x.copy()
        if (~lossless).any():
            lossy = np.flatnonzero(~lossless)
            recovered[lossy] = payload.lossy_image(digits[lossy], self.base).reshape(len(lossy), *x.shape[1:])
        m = ops.keyed_digit_pad(torch.from_numpy(digits).view(images.shape), key.digit_key, nonces.cpu(), self.base)
        return m, lossless, recovered

    def unpad(self, pixels: torch.Tensor, nonces: torch.Tensor, key: Key) -> np.ndarray:
        """(B, n) digits of the share in ``pixels`` (uint8, any device) under ``key``."""
        d = ops.keyed_digit_pad(pixels, key.digit_key, nonces.to(pixels.device), self.base, inverse=True)
        return d.reshape(d.shape[0], -1).cpu().numpy()

    def recover(self, pixels: torch.Tensor, nonces: torch.Tensor, key: Key) -> Tuple[List[object], np.ndarray]:
        """Per image: its (C, H, W) uint8 image, or the IntegrityError that stops it; and (B,) lossless."""
        digits = self.unpad(pixels, nonces, key)
        lay = payload.layout(self.base, tuple(pixels.shape[1:]))
        parts = _by_chunks(lambda sl: payload.unpack(digits[sl], lay), digits.shape[0])
        return [im for p in parts for im in p[0]], np.concatenate([p[1] for p in parts])

    def decode_lenient(self, pixels: torch.Tensor, nonces: torch.Tensor, key: Key) -> torch.Tensor:
        """What ``key`` reads from ``pixels``, never raising: the image where it decodes, else the digits
        read as lossy levels (noise). For the security evaluation's guesses; decryption is :meth:`recover`."""
        digits = self.unpad(pixels, nonces, key)
        lay = payload.layout(self.base, tuple(pixels.shape[1:]))
        items, _ = payload.unpack(digits, lay)
        noise = payload.lossy_image(digits, self.base).reshape(pixels.shape[0], *lay.shape)
        out = np.stack([it if isinstance(it, np.ndarray) else noise[i] for i, it in enumerate(items)])
        return torch.from_numpy(out)

    def nae_digit(self, pixels: torch.Tensor) -> torch.Tensor:
        """The NAE each ciphertext shows (its high digits), as z in [0, 1]: (q + 0.5) / levels."""
        return ((pixels // self.base).float() + 0.5) / self.levels

    @staticmethod
    def digests(
        key: Key, nonces: torch.Tensor, images: np.ndarray, lossless: np.ndarray, pixels: torch.Tensor
    ) -> torch.Tensor:
        """(B, 16) uint8: HMAC-SHA256(digest key, nonce | shape | mode | image | ciphertext pixels), cut to
        128 bits: what decryption must return, and the ciphertext it must come from.

        Bound to the nonce, so equal images under different nonces have unrelated digests; covering the
        ciphertext too, a changed byte of it (even of the NAE digit, which does not change the image) is
        an error in memory as in a file."""
        dk, out = key.digest_key, []
        cts = pixels.cpu().numpy()
        for i in range(images.shape[0]):
            msg = bytes(nonces[i].tolist()) + np.array(images.shape[1:], ">u4").tobytes()
            msg += bytes([1 if lossless[i] else 0]) + np.ascontiguousarray(images[i]).tobytes()
            msg += np.ascontiguousarray(cts[i]).tobytes()
            out.append(list(hmac.new(dk, b"ric-ext v4 digest\0" + msg, hashlib.sha256).digest()[:16]))
        return torch.tensor(out, dtype=torch.uint8).reshape(len(out), 16)
