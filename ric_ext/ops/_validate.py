"""Argument checks shared by the ops: every failure names the argument.

Messages never include key material (only lengths and types).
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)


def tensor(name: str, t: object, dtypes: Iterable[torch.dtype] | None = None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if dtypes is not None:
        dtypes = tuple(dtypes)
        if t.dtype not in dtypes:
            allowed = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
            raise TypeError(f"{name} must have dtype {allowed}, got {str(t.dtype).removeprefix('torch.')}")
    return t


def same_device(**named: Optional[torch.Tensor]) -> torch.device:
    devices = {n: t.device for n, t in named.items() if t is not None}
    first_name, first = next(iter(devices.items()))
    for n, d in devices.items():
        if d != first:
            raise ValueError(f"{n} is on {d} but {first_name} is on {first}; move them to one device")
    return first


def same_shape(a_name: str, a: torch.Tensor, b_name: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{a_name} has shape {tuple(a.shape)} but {b_name} has shape {tuple(b.shape)}; they must match"
        )


def lam(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"lam must be a float in (0, 1), got {type(value).__name__}")
    v = float(value)
    if math.isnan(v) or not 0.0 < v < 1.0:
        raise ValueError(f"lam must be in (0, 1), got {v}")
    return v


def non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a non-negative float, got {type(value).__name__}")
    v = float(value)
    if math.isnan(v) or v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def backend(value: str) -> str:
    if value not in ("native", "torch"):
        raise ValueError(f"backend must be 'native' or 'torch', got {value!r}")
    return value


def can_sync() -> bool:
    """Whether a check that reads tensor values (a device sync) is allowed now."""
    if torch.compiler.is_compiling():
        return False
    if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
        return False
    return True


def raw_op_args(**named: Optional[torch.Tensor]) -> None:
    """Cheap checks inside the custom ops themselves, for callers of ``torch.ops.ric.*``
    that skip the functional API: one device for all tensors, so a kernel never
    dereferences a pointer from another device."""
    same_device(**named)
