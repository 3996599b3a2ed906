"""The keyed pad of the "pad" scheme (docs/scheme.md#pad): a one-time pad on the image's
share of the ciphertext, modulo 1.

    s = (a * x + k) mod 1,   k = keyed_uniform(pad key, nonce)   (forward)
    x = clamp(unwrap((r - k) mod 1) / a, 0, 1)                   (inverse, r = s + error)

For x in [0, 1] and a uniform k, s is uniform and independent of x. The inverse
tolerates an error in r of less than (1 - a) / 2 (the 8-bit rounding of the
ciphertext, amplified by 1/(1 - lam)). Kernel: ``pad_val`` / ``unpad_val`` in
csrc/common/elementwise.h, keystream as ``keyed_uniform``. Reference:
``_torch_impl.keyed_pad``.
"""

from __future__ import annotations

import math

import torch

from .. import _native
from . import _torch_impl, _validate
from .keystream import KeyLike, _check_nonces, key_tensor

#: The guard: pad errors below (1 - a)/2 = 0.01 unwrap exactly. The scheme's rounding error is at most
#: 0.5 / 255 / (1 - lam) = 0.0098 at lam = 0.8, so a = 0.98 is the largest that is always exact there.
DEFAULT_A = 0.98


@torch.library.custom_op("ric::keyed_pad", mutates_args=())
def _pad_op(key: torch.Tensor, nonces: torch.Tensor, x: torch.Tensor, a: float, inverse: bool) -> torch.Tensor:
    _validate.raw_op_args(key=key, nonces=nonces, x=x)
    if x.dtype != torch.float32 or x.dim() != 2 or x.shape[0] != nonces.shape[0]:
        raise ValueError("x must be a (B, n) float32 tensor with one row per nonce")
    x = x.contiguous()
    out = torch.empty_like(x)
    dev, stream = _native.device_args(out)
    _native._C.keyed_pad(
        dev, stream, key.data_ptr(), nonces.data_ptr(), x.data_ptr(), out.data_ptr(), x.shape[0], x.shape[1], a, inverse
    )
    return out


@_pad_op.register_fake
def _(key, nonces, x, a, inverse):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def keyed_pad(
    x: torch.Tensor,
    key: KeyLike,
    nonces: torch.Tensor,
    a: float = DEFAULT_A,
    *,
    inverse: bool = False,
    backend: str = "native",
) -> torch.Tensor:
    """Pad (or, with ``inverse``, unpad) a batch of images under ``key`` and one nonce per image.

    Args:
        x: (B, ...) float32 on the nonces' device: images in [0, 1] (forward), or the
            unmasked shares r (inverse).
        key: the 32-byte pad key (``Key.pad_key``), never the noise key.
        nonces: (B, 12) uint8, one per image.
        a: the share's scale in (0, 1); the inverse tolerates errors below (1 - a)/2.
    Returns:
        Same shape as ``x``, float32: s in [0, 1) (forward), x in [0, 1] (inverse).
    Not differentiable (the pad is a cipher, not a layer).
    """
    _validate.backend(backend)
    nonces = _check_nonces(nonces)
    x = _validate.tensor("x", x, (torch.float32,))
    if x.dim() < 1 or x.shape[0] != nonces.shape[0]:
        raise ValueError(f"x must have one row per nonce: {nonces.shape[0]}, got shape {tuple(x.shape)}")
    if x.device != nonces.device:
        raise ValueError(f"x is on {x.device} but nonces are on {nonces.device}")
    if isinstance(a, bool) or not isinstance(a, (int, float)) or math.isnan(a) or not 0.0 < float(a) < 1.0:
        raise ValueError(f"a must be a float in (0, 1), got {a!r}")
    if not isinstance(inverse, bool):
        raise TypeError(f"inverse must be a bool, got {type(inverse).__name__}")
    k = key_tensor(key, nonces.device)
    flat = x.reshape(x.shape[0], -1)
    if backend == "torch":
        out = _torch_impl.keyed_pad(k, nonces, flat, float(a), inverse)
    else:
        out = _pad_op(k, nonces, flat, float(a), inverse)
    return out.reshape(x.shape)
