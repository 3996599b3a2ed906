"""Fused tanh-space Adam step of the NAE attack.

One pass updates (w, m, v) in place with the arithmetic of torch.optim.Adam
(defaults: no weight decay, no amsgrad) and writes adv = (tanh(w) + 1) / 2.
A per-sample ``active`` mask freezes finished samples (w, m, v untouched).

Kernels: csrc/common/elementwise.h (adam_update), csrc/cpu/kernels_cpu.cpp and
csrc/cuda/kernels_cuda.cu (adam_tanh). Reference: ``_torch_impl.adam_tanh_step``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from .. import _native
from ..checks import check_int
from . import _torch_impl, _validate


@torch.library.custom_op("ric::adam_tanh_step_", mutates_args=("w", "m", "v"))
def _adam_op(
    w: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    grad: torch.Tensor,
    active: torch.Tensor,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    grad_wrt_adv: bool,
) -> torch.Tensor:
    _validate.raw_op_args(w=w, m=m, v=v, grad=grad, active=active)
    if not (w.is_contiguous() and m.is_contiguous() and v.is_contiguous()):
        raise ValueError("w, m and v must be contiguous (they are updated in place)")
    if not (w.shape == m.shape == v.shape == grad.shape) or w.dim() < 1 or active.numel() != w.shape[0]:
        raise ValueError("w, m, v, grad must share one shape (B, ...) and active must have B elements")
    grad, active = grad.contiguous(), active.contiguous()
    adv = torch.empty_like(w)
    dev, stream = _native.device_args(w)
    rows = w.shape[0] if w.dim() else 1
    n = w.numel() // rows if rows else 0
    _native._C.adam_tanh(
        _native.dtype_name(w),
        dev,
        stream,
        w.data_ptr(),
        m.data_ptr(),
        v.data_ptr(),
        grad.data_ptr(),
        active.view(torch.uint8).data_ptr(),
        adv.data_ptr(),
        rows,
        n,
        lr,
        beta1,
        beta2,
        eps,
        step,
        grad_wrt_adv,
    )
    return adv


@_adam_op.register_fake
def _(w, m, v, grad, active, step, lr, beta1, beta2, eps, grad_wrt_adv):
    return torch.empty_like(w)


def adam_tanh_step_(
    w: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    grad: torch.Tensor,
    step: int,
    *,
    lr: float = 0.01,
    betas: Tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    active: Optional[torch.Tensor] = None,
    grad_wrt: str = "w",
    backend: str = "native",
) -> torch.Tensor:
    """In-place Adam step on tanh-space variables; returns adv = (tanh(w) + 1) / 2.

    Args:
        w, m, v: (B, ...) contiguous float32/float64 tensors (parameters, first and
            second moments, m and v start at zero), updated in place.
        grad: gradient, same shape: d loss / d w (``grad_wrt="w"``) or d loss / d adv
            (``grad_wrt="adv"``; the chain rule through tanh is applied inside).
        step: 1-based step count (the bias corrections use it).
        active: optional (B,) bool; rows with False are left untouched.
    Returns:
        adv, same shape as w, in [0, 1].
    """
    _validate.backend(backend)
    w = _validate.tensor("w", w, _validate.FLOAT_DTYPES)
    for name, t in (("m", m), ("v", v), ("grad", grad)):
        _validate.tensor(name, t, (w.dtype,))
        _validate.same_shape("w", w, name, t)
    _validate.same_device(w=w, m=m, v=v, grad=grad)
    if w.dim() < 1:
        raise ValueError("w must have a batch dimension (B, ...)")
    for name, t in (("w", w), ("m", m), ("v", v)):
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous (it is updated in place)")
    check_int("step", step, 1)
    lr = _validate.non_negative("lr", lr)
    eps = _validate.non_negative("eps", eps)
    beta1, beta2 = (float(b) for b in betas)
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise ValueError(f"betas must be in [0, 1), got {betas}")
    if grad_wrt not in ("w", "adv"):
        raise ValueError(f"grad_wrt must be 'w' or 'adv', got {grad_wrt!r}")
    if active is None:
        active = torch.ones(w.shape[0], dtype=torch.bool, device=w.device)
    active = _validate.tensor("active", active, (torch.bool,))
    if active.shape != (w.shape[0],):
        raise ValueError(f"active must have shape ({w.shape[0]},), got {tuple(active.shape)}")
    _validate.same_device(w=w, active=active)
    if backend == "torch":
        w2, m2, v2, adv = _torch_impl.adam_tanh_step(
            w, m, v, grad, active, step, lr, beta1, beta2, eps, grad_wrt == "adv"
        )
        with torch.no_grad():
            w.copy_(w2), m.copy_(m2), v.copy_(v2)
        return adv
    return _adam_op(w, m, v, grad, active, step, lr, beta1, beta2, eps, grad_wrt == "adv")
