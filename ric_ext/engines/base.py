"""What every scheme's engine does for a :class:`~ric_ext.cipher.Cipher`.

An engine owns one scheme's encryption and decryption and holds no key: the cipher passes its
key to every call, so :meth:`Cipher.with_key` shares the engine (its loaded banks, compiled steps
and captured CUDA graphs) across keys. The cipher does what is common to every scheme (checking
images and nonces, the header's version and key id) and hands the rest to its engine once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Optional

import torch
from torch import nn

from ..ciphertext import Ciphertext, checked_nonces
from ..errors import CiphertextFormatError
from ..keys import Key
from ..nae import NAEConfig

#: ``nonce_source(rows, attempt)``: the (len(rows), 12) uint8 nonces of those batch rows for attempt 0, 1, ...
NonceSource = Callable[[torch.Tensor, int], torch.Tensor]


def checked_nonces_of(source: NonceSource, rows: torch.Tensor, attempt: int) -> torch.Tensor:
    """Fresh nonces for ``rows`` at ``attempt`` from ``source``, checked: (len(rows), 12) uint8 on the CPU."""
    return checked_nonces(source(rows, attempt), rows.numel())


def need_classifier(classifier: Optional[nn.Module]) -> nn.Module:
    if classifier is None:
        raise ValueError("this cipher has no classifier (a decrypt-only cipher); give one to encrypt or classify")
    return classifier


def check_classifier(classifier: Optional[nn.Module]) -> Optional[nn.Module]:
    """The classifier in eval mode (never otherwise modified), or None; TypeError for anything else."""
    if classifier is not None and not isinstance(classifier, nn.Module):
        raise TypeError(f"classifier must be a torch.nn.Module or None, got {type(classifier).__name__}")
    return classifier.eval() if classifier is not None else None


def nae_of_header(header: dict) -> NAEConfig:
    """The NAE settings a header records; CiphertextFormatError when they are missing or malformed."""
    try:
        return NAEConfig.from_dict(header["nae"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CiphertextFormatError(f"malformed NAE settings in the ciphertext header: {exc}") from None


class Engine(ABC):
    """One scheme's encryption and decryption (see the module's docstring).

    Attributes every engine sets: ``scheme`` (its :mod:`ric_ext.schemes` object: ``name``,
    ``channels``, ``lam``, ``header()``), ``classifier`` (None: decrypt-only), ``nae_config``,
    ``batch_size``, ``version`` (the format it writes) and ``replays`` (whether decryption replays
    the attack). ``model`` is the paper's RIC networks, else None.
    """

    version: int
    replays: bool
    model: Optional[nn.Module] = None
    micro_batch: Optional[int] = None

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where the engine computes."""

    def bank_for(self, shape: tuple):
        """The NAE bank (C, H, W) images start from; None: the keyed noise (every replayed scheme)."""
        return None

    @abstractmethod
    def describe(self) -> dict:
        """The scheme's own settings, for reports: name -> JSON-able value."""

    @abstractmethod
    def header(self, key: Key) -> dict:
        """The header of every ciphertext this engine makes under ``key``."""

    @abstractmethod
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's labels (B,) int64 for (B, C, H, W) images (float in [0, 1] or uint8)."""

    @abstractmethod
    def encrypt(
        self, x: torch.Tensor, nonces: torch.Tensor, key: Key, retries: int, source: Optional[NonceSource]
    ) -> Ciphertext:
        """Encrypt checked float images ``x`` under ``nonces``; an image whose ciphertext fails its check
        gets up to ``retries`` fresh nonces from ``source`` (0 when the caller gave the nonces)."""

    @abstractmethod
    def check_header(self, header: dict, ct: Optional[Ciphertext]) -> NAEConfig:
        """Raise if a header of this engine's scheme (and the ciphertext's fields) do not fit it;
        return its NAE settings. The cipher has checked the version, key id and scheme."""

    @abstractmethod
    def decrypt_uint8(self, ct: Ciphertext, key: Key) -> tuple:
        """(pixels (B, C, H, W) uint8, lossless (B,) bool or None) of checked ciphertexts."""

    @abstractmethod
    def decrypt(self, ct: Ciphertext, key: Key) -> torch.Tensor:
        """The plaintexts (B, C, H, W) float32 in [0, 1] on the CPU of checked ciphertexts."""

    @abstractmethod
    def regenerate(self, ct: Ciphertext, key: Key) -> torch.Tensor:
        """The NAEs of ``ct`` as the holder of ``key`` regenerates them (see Cipher.regenerate)."""

    @abstractmethod
    def decode(self, ct: Ciphertext, z: torch.Tensor, key: Key) -> torch.Tensor:
        """Unchecked decoding of ``ct`` with NAEs ``z`` under ``key`` (see Cipher.decode)."""
