"""The keyed digit pad of the "digits" scheme (docs/scheme.md#digits): a one-time pad on the
low base-``base`` digit of each ciphertext byte, in integers only.

    m = (d + k) mod base                    (forward: d, the payload's digits, in [0, base))
    d = ((c mod base) - k) mod base          (inverse: c, any byte; c mod base is its low digit)
    k = floor(word * base / 2^32),  word = ChaCha20 keystream word i of (pad key, nonce)

For a uniform k, m is uniform on [0, base) whatever d is. Integer arithmetic gives the same
digits on every machine and device. Kernel: ``word_to_digit`` / ``digit_pad_val`` /
``digit_unpad_val`` in csrc/common/elementwise.h. Reference: ``_torch_impl.keyed_digit_pad``.
"""

from __future__ import annotations

import torch

from .. import _native
from . import _torch_impl, _validate
from .keystream import KeyLike, _check_nonces, key_tensor

#: Bases the pad takes: a digit and the byte it lives in must fit 8 bits.
MIN_BASE, MAX_BASE = 2, 256


@torch.library.custom_op("ric::keyed_digit_pad", mutates_args=())
def _digit_pad_op(key: torch.Tensor, nonces: torch.Tensor, x: torch.Tensor, base: int, inverse: bool) -> torch.Tensor:
    _validate.raw_op_args(key=key, nonces=nonces, x=x)
    if x.dtype != torch.uint8 or x.dim() != 2 or x.shape[0] != nonces.shape[0]:
        raise ValueError("x must be a (B, n) uint8 tensor with one row per nonce")
    if not MIN_BASE <= base <= MAX_BASE:
        raise ValueError(f"base must be in [{MIN_BASE}, {MAX_BASE}], got {base}")
    x = x.contiguous()
    out = torch.empty_like(x)
    dev, stream = _native.device_args(out)
    _native._C.keyed_digit_pad(
        dev,
        stream,
        key.data_ptr(),
        nonces.data_ptr(),
        x.data_ptr(),
        out.data_ptr(),
        x.shape[0],
        x.shape[1],
        base,
        inverse,
    )
    return out


@_digit_pad_op.register_fake
def _(key, nonces, x, base, inverse):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def keyed_digit_pad(
    x: torch.Tensor,
    key: KeyLike,
    nonces: torch.Tensor,
    base: int,
    *,
    inverse: bool = False,
    backend: str = "native",
) -> torch.Tensor:
    """Pad (or, with ``inverse``, unpad) base-``base`` digits under ``key`` and one nonce per image.

    Args:
        x: (B, ...) uint8 on the nonces' device: digits in [0, base) (forward), or ciphertext
            bytes, whose low digit ``c mod base`` is unpadded (inverse).
        key: the 32-byte pad key (``Key.digit_key``).
        nonces: (B, 12) uint8, one per image.
        base: the digit base, in [2, 256].
    Returns:
        Same shape as ``x``, uint8 digits in [0, base).
    Not differentiable (a cipher, not a layer).
    """
    _validate.backend(backend)
    nonces = _check_nonces(nonces)
    x = _validate.tensor("x", x, (torch.uint8,))
    if x.dim() < 1 or x.shape[0] != nonces.shape[0]:
        raise ValueError(f"x must have one row per nonce: {nonces.shape[0]}, got shape {tuple(x.shape)}")
    if x.device != nonces.device:
        raise ValueError(f"x is on {x.device} but nonces are on {nonces.device}")
    if isinstance(base, bool) or not isinstance(base, int) or not MIN_BASE <= base <= MAX_BASE:
        raise ValueError(f"base must be an int in [{MIN_BASE}, {MAX_BASE}], got {base!r}")
    if not isinstance(inverse, bool):
        raise TypeError(f"inverse must be a bool, got {type(inverse).__name__}")
    if not inverse and x.numel() and _validate.can_sync() and int(x.max()) >= base:
        raise ValueError(f"x must hold digits in [0, {base}) (the forward pad's input), got a value {int(x.max())}")
    k = key_tensor(key, nonces.device)
    flat = x.reshape(x.shape[0], -1)
    if backend == "torch":
        out = _torch_impl.keyed_digit_pad(k, nonces, flat, base, inverse)
    else:
        out = _digit_pad_op(k, nonces, flat, base, inverse)
    return out.reshape(x.shape)
