"""Carlini-Wagner margin loss of the NAE attack and of RIC training.

    targeted:   g = max(max_{j != y} Z_j - Z_y, -kappa)    (minimise to make f say y)
    untargeted: g = max(Z_y - max_{j != y} Z_j, -kappa)

Ties: the competing class is the *smallest* index j != y attaining the
maximum, so forward and backward are deterministic on every backend. The
gradient flows where the margin is >= -kappa (as torch.clamp_min's backward).

Kernels: csrc/common/elementwise.h (cw_row), csrc/cpu/kernels_cpu.cpp and
csrc/cuda/kernels_cuda.cu (cw_margin*). Reference: ``_torch_impl.cw_margin``.
"""

from __future__ import annotations

import torch

from .. import _native
from . import _torch_impl, _validate


def _launch(name: str, like: torch.Tensor, *args) -> None:
    dev, stream = _native.device_args(like)
    getattr(_native._C, name)(_native.dtype_name(like), dev, stream, *args)


def _check_raw(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.dim() != 2 or labels.shape != (logits.shape[0],) or labels.dtype != torch.int64:
        raise ValueError(
            f"need logits (B, K) and int64 labels (B,), got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )


@torch.library.custom_op("ric::cw_margin", mutates_args=())
def _cw_op(logits: torch.Tensor, labels: torch.Tensor, kappa: float, targeted: bool) -> torch.Tensor:
    _validate.raw_op_args(logits=logits, labels=labels)
    _check_raw(logits, labels)
    logits, labels = logits.contiguous(), labels.contiguous()
    out = logits.new_empty((logits.shape[0],))
    _launch(
        "cw_margin",
        logits,
        logits.data_ptr(),
        labels.data_ptr(),
        out.data_ptr(),
        logits.shape[0],
        logits.shape[1],
        kappa,
        targeted,
    )
    return out


@_cw_op.register_fake
def _(logits, labels, kappa, targeted):
    return logits.new_empty((logits.shape[0],))


@torch.library.custom_op("ric::cw_margin_backward", mutates_args=())
def _cw_backward_op(
    grad: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, kappa: float, targeted: bool
) -> torch.Tensor:
    _validate.raw_op_args(grad=grad, logits=logits, labels=labels)
    _check_raw(logits, labels)
    if grad.shape != (logits.shape[0],):
        raise ValueError(f"grad must have shape ({logits.shape[0]},), got {tuple(grad.shape)}")
    grad, logits, labels = grad.contiguous(), logits.contiguous(), labels.contiguous()
    out = torch.empty_like(logits)
    _launch(
        "cw_margin_backward",
        logits,
        grad.data_ptr(),
        logits.data_ptr(),
        labels.data_ptr(),
        out.data_ptr(),
        logits.shape[0],
        logits.shape[1],
        kappa,
        targeted,
    )
    return out


@_cw_backward_op.register_fake
def _(grad, logits, labels, kappa, targeted):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup(ctx, inputs, output):
    logits, labels, kappa, targeted = inputs
    ctx.save_for_backward(logits, labels)
    ctx.kappa, ctx.targeted = kappa, targeted


def _bwd(ctx, grad):
    logits, labels = ctx.saved_tensors
    return _cw_backward_op(grad, logits, labels, ctx.kappa, ctx.targeted), None, None, None


_cw_op.register_autograd(_bwd, setup_context=_setup)


def cw_margin(
    logits: torch.Tensor, labels: torch.Tensor, kappa: float = 0.0, *, targeted: bool = True, backend: str = "native"
) -> torch.Tensor:
    """Per-row C&W margin.

    Args:
        logits: (B, K) float32/float64, K >= 2.
        labels: (B,) int64 in [0, K): the target class (targeted) or the true class.
        kappa: confidence, >= 0.
    Returns:
        (B,) margins, differentiable in logits. A label outside [0, K) raises
        ValueError (checked eagerly; inside torch.compile or CUDA-graph capture,
        where that check would need a sync, the kernel returns NaN for that row).
    """
    _validate.backend(backend)
    logits = _validate.tensor("logits", logits, _validate.FLOAT_DTYPES)
    labels = _validate.tensor("labels", labels, (torch.int64,))
    _validate.same_device(logits=logits, labels=labels)
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (B, K) with K >= 2, got {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},) to match logits, got {tuple(labels.shape)}")
    kappa = _validate.non_negative("kappa", kappa)
    if labels.numel() and _validate.can_sync():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= logits.shape[1]:
            raise ValueError(f"labels must be in [0, {logits.shape[1]}), got values in [{lo}, {hi}]")
    if backend == "torch":
        return _torch_impl.cw_margin(logits, labels, kappa, bool(targeted))
    return _cw_op(logits, labels, kappa, bool(targeted))


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Unclamped classification margin Z_y - max_{j != y} Z_j per row: (B, K), (B,) -> (B,).

    Positive iff the classifier says y with room to spare; the stop rules of
    :mod:`ric_ext.nae` compare it with a threshold. Plain PyTorch (a tiny reduction, no kernel).
    """
    _check_raw(logits, labels)
    if logits.shape[1] < 2:
        raise ValueError("margin needs at least two classes")
    zy = logits.gather(1, labels[:, None])[:, 0]
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return zy - others.max(1).values
