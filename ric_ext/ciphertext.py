"""What an encryption gives: :class:`Ciphertext`, a batch of 8-bit ciphertext images with their
public nonces, labels and header, and the format versions this library reads.

Every scheme's engine (:mod:`ric_ext.engines`) makes and reads these; :mod:`ric_ext.fileformat`
writes them to PNG files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
from torch import nn

from .errors import CiphertextFormatError, ModelMismatchError, WrongKeyError

#: 4: the digits scheme, decrypted without replay, with plaintext digests (docs/scheme.md#digits);
#: 3: the header names its scheme; 2: per-image step counts; 1: fixed-step NAEs.
FORMAT_VERSION = 4
#: Fresh nonces an image gets at most when its ciphertext came out mislabelled (Cipher.encrypt).
NONCE_RETRIES = 4


def random_nonces(n: int) -> torch.Tensor:
    """``n`` fresh 96-bit nonces from the OS's CSPRNG, (n, 12) uint8."""
    return torch.frombuffer(bytearray(os.urandom(12 * n)), dtype=torch.uint8).reshape(n, 12).clone()


def checked_nonces(nonces: torch.Tensor, n: int) -> torch.Tensor:
    """``nonces`` on the CPU if they are (n, 12) uint8 (what a ``nonce_source`` must give), else ValueError."""
    if not isinstance(nonces, torch.Tensor) or nonces.shape != (n, 12) or nonces.dtype != torch.uint8:
        raise ValueError(f"nonce_source must return a ({n}, 12) uint8 tensor")
    return nonces.cpu()


READABLE_VERSIONS = (1, 2, 3, 4)


@dataclass
class Ciphertext:
    """A batch of ciphertexts.

    Attributes:
        pixels: (B, C, H, W) uint8, the 8-bit ciphertext images.
        nonces: (B, 12) uint8, one public nonce per image.
        labels: (B,) int64, the label each NAE targets (the plaintext's prediction).
        steps: (B,) int64, the Adam updates each image's NAE took. Formats 2-3 replay exactly
            that many on decryption (written to their files); format 4 only reports them (not
            written). None for format-1 ciphertexts and format-4 files.
        header: settings shared by the batch: format version, scheme and its settings, NAE
            settings, fingerprints of the classifier (and RIC weights), and the key id.
        digests: (B, 16) uint8, format 4: each plaintext's keyed digest, bound to its nonce
            (decryption checks it). None for formats 1-3.
        lossless: (B,) bool, format 4, the owner's side only (never written to a file): whether
            each image was stored losslessly (else as its lossy digits). None when unknown.
    """

    pixels: torch.Tensor
    nonces: torch.Tensor
    labels: torch.Tensor
    header: dict = field(default_factory=dict)
    steps: Optional[torch.Tensor] = None
    digests: Optional[torch.Tensor] = None
    lossless: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def __getitem__(self, idx: Union[int, slice]) -> Ciphertext:
        if isinstance(idx, int):
            idx = slice(idx, idx + 1 if idx != -1 else None)
        opt = lambda t: None if t is None else t[idx]  # noqa: E731
        return Ciphertext(
            self.pixels[idx],
            self.nonces[idx],
            self.labels[idx],
            dict(self.header),
            opt(self.steps),
            opt(self.digests),
            opt(self.lossless),
        )

    def as_float(self) -> torch.Tensor:
        """Pixels as float32 in [0, 1] (q / 255): what a cloud classifier receives."""
        return self.pixels.float() / 255.0

    @staticmethod
    def cat(items: list) -> Ciphertext:
        if not items:
            raise ValueError("cannot concatenate an empty list of ciphertexts")
        if any(c.header != items[0].header for c in items):
            raise ValueError("cannot concatenate ciphertexts with different headers (settings, weights or key)")

        def joined(name: str) -> Optional[torch.Tensor]:
            has = {getattr(c, name) is not None for c in items}
            if len(has) > 1:
                raise ValueError(f"cannot concatenate ciphertexts with and without {name} (format versions differ)")
            return torch.cat([getattr(c, name) for c in items]) if has == {True} else None

        return Ciphertext(
            torch.cat([c.pixels for c in items]),
            torch.cat([c.nonces for c in items]),
            torch.cat([c.labels for c in items]),
            dict(items[0].header),
            joined("steps"),
            joined("digests"),
            joined("lossless"),
        )


def classifier_name(classifier: Optional[nn.Module]) -> Optional[str]:
    """The name a classifier was loaded by (``load_classifier`` sets it: a built-in or stored name, or the
    file's stem), which is also the model's name on ``ric-ext serve``; None when unknown."""
    return getattr(classifier, "ric_name", None) if classifier is not None else None


def header_of(ct: Union[Ciphertext, dict]) -> dict:
    """The header of a Ciphertext, or the dict itself."""
    return ct.header if isinstance(ct, Ciphertext) else ct


def check_common(header: dict, key_id: str, scheme: str) -> None:
    """What every format's header must show to belong to a cipher of ``scheme`` under the key
    ``key_id``: a readable version, the key id, and the scheme (formats 1-2 knew only the paper's)."""
    version = header.get("version")
    if version not in READABLE_VERSIONS:
        raise CiphertextFormatError(f"unsupported ciphertext format version {version!r}")
    if header.get("key_id") != key_id:
        raise WrongKeyError("this ciphertext was made under another key (its key id differs from this key's)")
    made_with = header.get("scheme", "paper")
    if (made_with == "digits") != (version == 4):
        raise CiphertextFormatError(f"malformed ciphertext header: scheme {made_with!r} in format {version}")
    if made_with != scheme:
        raise ModelMismatchError(f"this ciphertext was made with the {made_with!r} scheme; this cipher uses {scheme!r}")
