"""Masking (encoder side) and residual reconstruction (decoder side) of RIC.

    mask:   c = Q((1 - lam) * e + lam * z)
    unmask: r = (c - lam * z) / (1 - lam)       (computed as (c - lam*z) * (1/(1-lam)))

Q is the 8-bit quantiser: "train" = clamp(255x + u, 0, 255)/255 with a Philox
dither u ~ U[-0.5, 0.5) generated in the kernel; "eval" = clamp(round(255x), 0, 255)/255;
"none" = no quantisation. Backward is straight-through for Q, zero where the
clamp saturates.

Kernels: csrc/common/elementwise.h (math), csrc/common/philox.h (dither),
csrc/cpu/kernels_cpu.cpp and csrc/cuda/kernels_cuda.cu (mask*, unmask*).
Reference: ``_torch_impl.mask`` / ``mask_backward`` / ``mask_uint8`` / ``unmask``.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from .. import _native
from . import _torch_impl, _validate

QUANT_MODES = {"none": _torch_impl.QUANT_NONE, "train": _torch_impl.QUANT_TRAIN, "eval": _torch_impl.QUANT_EVAL}


def _launch(name: str, like: torch.Tensor, *args) -> None:
    dev, stream = _native.device_args(like)
    getattr(_native._C, name)(_native.dtype_name(like), dev, stream, *args)


def _check_raw(e: torch.Tensor, z: torch.Tensor, mode: int, seed) -> None:
    """Shape checks the kernels rely on (cheap; also guards direct torch.ops.ric callers)."""
    _validate.same_shape("e", e, "z", z)
    if mode not in (0, 1, 2):
        raise ValueError(f"mode must be 0 (none), 1 (train) or 2 (eval), got {mode}")
    if mode == 1 and (seed is None or seed.dtype != torch.int64 or seed.numel() != 2):
        raise ValueError("quantize='train' needs an int64 seed tensor of 2 elements")


@torch.library.custom_op("ric::mask", mutates_args=())
def _mask_op(e: torch.Tensor, z: torch.Tensor, lam: float, mode: int, seed: Optional[torch.Tensor]) -> torch.Tensor:
    _validate.raw_op_args(e=e, z=z, seed=seed)
    _check_raw(e, z, mode, seed)
    e, z = e.contiguous(), z.contiguous()
    out = torch.empty_like(e)
    _launch("mask", e, e.data_ptr(), z.data_ptr(), out.data_ptr(), e.numel(), lam, mode, _native.ptr(seed))
    return out


@_mask_op.register_fake
def _(e, z, lam, mode, seed):
    return torch.empty_like(e, memory_format=torch.contiguous_format)


@torch.library.custom_op("ric::mask_backward", mutates_args=())
def _mask_backward_op(
    grad: torch.Tensor, e: torch.Tensor, z: torch.Tensor, lam: float, mode: int, seed: Optional[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    _validate.raw_op_args(grad=grad, e=e, z=z, seed=seed)
    _check_raw(e, z, mode, seed)
    _validate.same_shape("grad", grad, "e", e)
    grad, e, z = grad.contiguous(), e.contiguous(), z.contiguous()
    ge, gz = torch.empty_like(e), torch.empty_like(e)
    _launch(
        "mask_backward",
        e,
        grad.data_ptr(),
        e.data_ptr(),
        z.data_ptr(),
        ge.data_ptr(),
        gz.data_ptr(),
        e.numel(),
        lam,
        mode,
        _native.ptr(seed),
    )
    return ge, gz


@_mask_backward_op.register_fake
def _(grad, e, z, lam, mode, seed):
    return (
        torch.empty_like(e, memory_format=torch.contiguous_format),
        torch.empty_like(e, memory_format=torch.contiguous_format),
    )


def _mask_setup(ctx, inputs, output):
    e, z, lam, mode, seed = inputs
    ctx.save_for_backward(e, z, seed)
    ctx.lam, ctx.mode = lam, mode


def _mask_bwd(ctx, grad):
    e, z, seed = ctx.saved_tensors
    ge, gz = _mask_backward_op(grad, e, z, ctx.lam, ctx.mode, seed)
    return ge, gz, None, None, None


_mask_op.register_autograd(_mask_bwd, setup_context=_mask_setup)


@torch.library.custom_op("ric::mask_uint8", mutates_args=())
def _mask_u8_op(e: torch.Tensor, z: torch.Tensor, lam: float) -> torch.Tensor:
    _validate.raw_op_args(e=e, z=z)
    _check_raw(e, z, 2, None)
    e, z = e.contiguous(), z.contiguous()
    out = torch.empty(e.shape, dtype=torch.uint8, device=e.device)
    _launch("mask_u8", e, e.data_ptr(), z.data_ptr(), out.data_ptr(), e.numel(), lam)
    return out


@_mask_u8_op.register_fake
def _(e, z, lam):
    return torch.empty(e.shape, dtype=torch.uint8, device=e.device)


@torch.library.custom_op("ric::unmask", mutates_args=())
def _unmask_op(c: torch.Tensor, z: torch.Tensor, lam: float) -> torch.Tensor:
    _validate.raw_op_args(c=c, z=z)
    _validate.same_shape("c", c, "z", z)
    c, z = c.contiguous(), z.contiguous()
    out = torch.empty_like(z)
    name = "unmask_u8" if c.dtype == torch.uint8 else "unmask"
    _launch(name, z, c.data_ptr(), z.data_ptr(), out.data_ptr(), z.numel(), lam)
    return out


@_unmask_op.register_fake
def _(c, z, lam):
    return torch.empty_like(z, memory_format=torch.contiguous_format)


def _unmask_setup(ctx, inputs, output):
    c, z, lam = inputs
    ctx.lam = lam
    ctx.c_is_float = c.dtype != torch.uint8


def _unmask_bwd(ctx, grad):
    # r = (c - lam z) / (1 - lam): linear, so the gradient needs no saved tensors.
    inv = 1.0 / (1.0 - ctx.lam)
    gc = grad * inv if ctx.c_is_float else None
    return gc, grad * (-ctx.lam * inv), None


_unmask_op.register_autograd(_unmask_bwd, setup_context=_unmask_setup)


def _check_pair(e_name: str, e: object, z: object, e_dtypes) -> tuple[torch.Tensor, torch.Tensor]:
    e = _validate.tensor(e_name, e, e_dtypes)
    z = _validate.tensor("z", z, _validate.FLOAT_DTYPES)
    _validate.same_device(**{e_name: e, "z": z})
    _validate.same_shape(e_name, e, "z", z)
    if e.dtype != torch.uint8 and e.dtype != z.dtype:
        raise TypeError(f"{e_name} has dtype {e.dtype} but z has dtype {z.dtype}; they must match")
    return e, z


def _seed_tensor(seed: Union[None, int, torch.Tensor], device: torch.device) -> torch.Tensor:
    if seed is None:
        # Drawn from torch's generator on the target device: torch.manual_seed
        # controls it, and CUDA-graph replays draw fresh values.
        return torch.randint(-(2**63), 2**63 - 1, (2,), dtype=torch.int64, device=device)
    if isinstance(seed, bool):
        raise TypeError("seed must be an int, an int64 tensor of shape (2,) or None, got bool")
    if isinstance(seed, int):
        if not -(2**63) <= seed < 2**64:
            raise ValueError(f"seed must fit in 64 bits, got {seed}")
        seed = seed - 2**64 if seed >= 2**63 else seed
        return torch.tensor([seed, 0], dtype=torch.int64, device=device)
    seed = _validate.tensor("seed", seed, (torch.int64,))
    if seed.shape != (2,):
        raise ValueError(f"seed tensor must have shape (2,) = [seed, offset], got {tuple(seed.shape)}")
    if seed.device != device:
        raise ValueError(f"seed is on {seed.device} but e is on {device}; move them to one device")
    return seed.contiguous()


def mask(
    e: torch.Tensor,
    z: torch.Tensor,
    lam: float = 0.8,
    *,
    quantize: str = "train",
    seed: Union[None, int, torch.Tensor] = None,
    backend: str = "native",
) -> torch.Tensor:
    """Encoder-side masking c = Q((1 - lam) * e + lam * z), fused with its quantiser.

    Args:
        e: encoder output, any shape, float32/float64.
        z: the noise-like adversarial example, same shape, dtype and device.
        lam: mixing weight in (0, 1) (docs/scheme.md: 0.8).
        quantize: "train" (dithered, the differentiable stand-in for rounding),
            "eval" (round to the 8-bit grid) or "none".
        seed: dither stream for "train": an int, an int64 (2,) tensor [seed, offset]
            on e's device, or None to draw one from torch's generator.
    Returns:
        c with e's shape and dtype, in [0, 1] when quantised. Differentiable in e and z
        (straight-through quantiser, zero gradient where the clamp saturates).
    """
    _validate.backend(backend)
    e, z = _check_pair("e", e, z, _validate.FLOAT_DTYPES)
    lam = _validate.lam(lam)
    if quantize not in QUANT_MODES:
        raise ValueError(f"quantize must be one of {sorted(QUANT_MODES)}, got {quantize!r}")
    mode = QUANT_MODES[quantize]
    seed_t = _seed_tensor(seed, e.device) if mode == _torch_impl.QUANT_TRAIN else None
    if backend == "torch":
        return _MaskReference.apply(e, z, lam, mode, seed_t)
    return _mask_op(e, z, lam, mode, seed_t)


class _MaskReference(torch.autograd.Function):
    """The reference forward with the reference straight-through backward."""

    @staticmethod
    def forward(ctx, e, z, lam, mode, seed):
        ctx.save_for_backward(e, z, seed)
        ctx.lam, ctx.mode = lam, mode
        return _torch_impl.mask(e, z, lam, mode, seed)

    @staticmethod
    def backward(ctx, grad):
        e, z, seed = ctx.saved_tensors
        ge, gz = _torch_impl.mask_backward(grad, e, z, ctx.lam, ctx.mode, seed)
        return ge, gz, None, None, None


def mask_uint8(e: torch.Tensor, z: torch.Tensor, lam: float = 0.8, *, backend: str = "native") -> torch.Tensor:
    """The 8-bit ciphertext clamp(round(255 * ((1-lam) e + lam z)), 0, 255) as uint8 (NaN -> 0).

    Equals ``(mask(e, z, lam, quantize="eval") * 255).round().to(torch.uint8)``
    without materialising the float ciphertext. Not differentiable.
    """
    _validate.backend(backend)
    e, z = _check_pair("e", e, z, _validate.FLOAT_DTYPES)
    lam = _validate.lam(lam)
    if backend == "torch":
        return _torch_impl.mask_uint8(e, z, lam)
    return _mask_u8_op(e, z, lam)


def unmask(c: torch.Tensor, z: torch.Tensor, lam: float = 0.8, *, backend: str = "native") -> torch.Tensor:
    """Decoder-side residual r = (c - lam * z) / (1 - lam).

    Args:
        c: the ciphertext, float (values q/255) or the uint8 ciphertext itself
            (read directly: a quarter of the bytes).
        z: the regenerated NAE, float32/float64, same shape and device as c.
    Returns:
        r with z's dtype; differentiable in z and in a float c.
    """
    _validate.backend(backend)
    c, z = _check_pair("c", c, z, (torch.uint8, torch.float32, torch.float64))
    lam = _validate.lam(lam)
    if backend == "torch":
        return _torch_impl.unmask(c, z, lam)
    return _unmask_op(c, z, lam)
