"""One engine per scheme: each owns its encryption and decryption (:mod:`.base` says what an
engine does). :class:`~ric_ext.cipher.Cipher` picks one when it is made and hands it every call.

- :class:`DigitsEngine` (:mod:`.digits`): the default digits scheme, format 4.
- :class:`ReplayedEngine` (:mod:`.replayed`): the ``"pad"`` and ``"paper"`` schemes, formats 1-3.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from .base import Engine
from .digits import DIGITS_NAE, DigitsEngine
from .replayed import ReplayedEngine

#: the engine class that reads each scheme's headers (formats 1 and 2 name none: the paper's)
_READERS = {"digits": DigitsEngine, "pad": ReplayedEngine, "paper": ReplayedEngine}


def engine_for_header(
    header: dict, *, models: Optional[str], device: Union[str, torch.device], batch_size: int
) -> Engine:
    """The engine that decrypts ciphertexts with this (version-checked) header."""
    from ..errors import CiphertextFormatError

    reader = _READERS.get(header.get("scheme", "paper"))
    if reader is None:
        raise CiphertextFormatError(f"unknown scheme {header.get('scheme')!r} in the ciphertext header")
    return reader.from_header(header, models=models, device=device, batch_size=batch_size)


__all__ = ["DIGITS_NAE", "DigitsEngine", "Engine", "ReplayedEngine", "engine_for_header"]
