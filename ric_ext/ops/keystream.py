"""Key-seeded noise: ChaCha20 keystream (RFC 8439) and the uniforms drawn from it.

Kernels: csrc/common/chacha20.h (block function), csrc/cpu/kernels_cpu.cpp and
csrc/cuda/kernels_cuda.cu (``keystream_bytes``, ``keyed_uniform``).
Reference: ``_torch_impl.chacha20_keystream`` / ``_torch_impl.keyed_uniform``.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch

from .. import _native
from ..checks import check_int
from . import _torch_impl, _validate

KeyLike = Union[bytes, bytearray, torch.Tensor]


def _check_raw(key: torch.Tensor, nonces: torch.Tensor) -> None:
    if key.dtype != torch.uint8 or key.numel() != 32:
        raise ValueError("key must be 32 uint8 values")
    if nonces.dtype != torch.uint8 or nonces.dim() != 2 or nonces.shape[1] != 12:
        raise ValueError(f"nonces must be a (B, 12) uint8 tensor, got {tuple(nonces.shape)}")


@torch.library.custom_op("ric::chacha20_keystream", mutates_args=())
def _keystream_op(key: torch.Tensor, nonces: torch.Tensor, nbytes: int, counter: int) -> torch.Tensor:
    _validate.raw_op_args(key=key, nonces=nonces)
    _check_raw(key, nonces)
    out = torch.empty((nonces.shape[0], nbytes), dtype=torch.uint8, device=nonces.device)
    dev, stream = _native.device_args(out)
    _native._C.keystream_bytes(
        dev, stream, key.data_ptr(), nonces.data_ptr(), out.data_ptr(), nonces.shape[0], nbytes, counter
    )
    return out


@_keystream_op.register_fake
def _(key, nonces, nbytes, counter):
    return nonces.new_empty((nonces.shape[0], nbytes), dtype=torch.uint8)


@torch.library.custom_op("ric::keyed_uniform", mutates_args=())
def _uniform_op(key: torch.Tensor, nonces: torch.Tensor, n: int, counter: int, tanh_space: bool) -> torch.Tensor:
    _validate.raw_op_args(key=key, nonces=nonces)
    _check_raw(key, nonces)
    out = torch.empty((nonces.shape[0], n), dtype=torch.float32, device=nonces.device)
    dev, stream = _native.device_args(out)
    _native._C.keyed_uniform(
        dev, stream, key.data_ptr(), nonces.data_ptr(), out.data_ptr(), nonces.shape[0], n, counter, tanh_space
    )
    return out


@_uniform_op.register_fake
def _(key, nonces, n, counter, tanh_space):
    return nonces.new_empty((nonces.shape[0], n), dtype=torch.float32)


def key_tensor(key: KeyLike, device: torch.device | str | None = None) -> torch.Tensor:
    """A 32-byte key as a contiguous (32,) uint8 tensor on ``device``.

    Accepts bytes/bytearray or a uint8 tensor of 32 elements. The key's value
    never appears in an error message.
    """
    if isinstance(key, (bytes, bytearray)):
        if len(key) != 32:
            raise ValueError(f"key must be 32 bytes, got {len(key)} bytes")
        t = torch.frombuffer(bytearray(key), dtype=torch.uint8)
    elif isinstance(key, torch.Tensor):
        if key.dtype != torch.uint8:
            raise TypeError(
                f"key must be bytes or a uint8 tensor, got a {str(key.dtype).removeprefix('torch.')} tensor"
            )
        if key.numel() != 32:
            raise ValueError(f"key must be 32 bytes, got {key.numel()} bytes")
        t = key.reshape(32)
    else:
        raise TypeError(f"key must be bytes or a uint8 tensor of 32 bytes, got {type(key).__name__}")
    return t.to(device).contiguous() if device is not None else t.contiguous()


def _check_nonces(nonces: object) -> torch.Tensor:
    nonces = _validate.tensor("nonces", nonces, (torch.uint8,))
    if nonces.dim() != 2 or nonces.shape[1] != 12:
        raise ValueError(f"nonces must have shape (B, 12) (one 96-bit nonce per image), got {tuple(nonces.shape)}")
    return nonces.contiguous()


def _check_counter(counter: object, nblocks: int) -> int:
    if isinstance(counter, bool) or not isinstance(counter, int):
        raise TypeError(f"counter must be an int, got {type(counter).__name__}")
    if counter < 0 or counter + nblocks > 2**32:
        raise ValueError(
            f"counter must satisfy 0 <= counter and counter + blocks <= 2^32 (RFC 8439's 32-bit block counter); "
            f"got counter={counter} with {nblocks} blocks"
        )
    return counter


def _numel(shape: Union[int, Sequence[int]]) -> tuple[tuple[int, ...], int]:
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must be non-negative, got {shape}")
    n = 1
    for s in shape:
        n *= s
    return shape, n


def chacha20_keystream(
    key: KeyLike, nonces: torch.Tensor, nbytes: int, *, counter: int = 0, backend: str = "native"
) -> torch.Tensor:
    """Raw ChaCha20 keystream bytes, one stream per nonce.

    Args:
        key: 32-byte key (bytes or uint8 tensor).
        nonces: (B, 12) uint8, one 96-bit nonce per row; its device is the output's.
        nbytes: bytes per row (>= 0).
        counter: initial 32-bit block counter (RFC 8439 encryption uses 1).
    Returns:
        (B, nbytes) uint8.
    """
    _validate.backend(backend)
    nonces = _check_nonces(nonces)
    check_int("nbytes", nbytes, 0)
    counter = _check_counter(counter, (nbytes + 63) // 64)
    k = key_tensor(key, nonces.device)
    if backend == "torch":
        return _torch_impl.chacha20_keystream(k, nonces, nbytes, counter)
    return _keystream_op(k, nonces, nbytes, counter)


def keyed_uniform(
    key: KeyLike,
    nonces: torch.Tensor,
    shape: Union[int, Sequence[int]],
    *,
    counter: int = 0,
    tanh_space: bool = False,
    backend: str = "native",
) -> torch.Tensor:
    """Key-seeded uniform noise z0, one image per nonce, bit-identical on every backend.

    Element i of image b is word i of the ChaCha20 keystream (key, nonces[b],
    blocks from ``counter``), mapped to ``(word >> 8) * 2^-24`` in [0, 1).

    Args:
        key: 32-byte key (bytes or uint8 tensor).
        nonces: (B, 12) uint8; the output lives on its device.
        shape: per-image shape, e.g. (3, 32, 32).
        tanh_space: return w0 = atanh(clamp(2*z0 - 1, -(1-1e-6), 1-1e-6)) instead,
            the starting point of the tanh-space C&W attack (finite everywhere).
    Returns:
        (B, *shape) float32.
    """
    _validate.backend(backend)
    nonces = _check_nonces(nonces)
    shape, n = _numel(shape)
    counter = _check_counter(counter, (n + 15) // 16)
    k = key_tensor(key, nonces.device)
    if backend == "torch":
        out = _torch_impl.keyed_uniform(k, nonces, n, counter, bool(tanh_space))
    else:
        out = _uniform_op(k, nonces, n, counter, bool(tanh_space))
    return out.reshape(nonces.shape[0], *shape)
