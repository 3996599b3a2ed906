"""Loading of the native module ``ric_ext._C`` and the glue that hands it tensors.

The native core is torch-free: a tensor crosses as its data pointer plus the
device index (-1 for CPU) and, on CUDA, the caller's current stream.
"""

from __future__ import annotations

from typing import Any, Dict

import torch

try:
    from . import _C  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - only when the build is missing
    raise ImportError(
        f"ric_ext's native module is missing; install the package with `pip install .` (import error: {exc})"
    ) from exc


def build_info() -> Dict[str, Any]:
    """What the native module was compiled with.

    Returns a dict with ``backends`` (``["cpu"]`` or ``["cpu", "cuda"]``),
    ``cuda_version`` and ``cuda_architectures`` (None without CUDA),
    ``cxx_compiler``, ``openmp``, plus the runtime's torch version and whether a
    CUDA device is usable right now (``cuda_available``).
    """
    info = dict(_C.build_info())
    info["backends"] = list(info["backends"])
    info["torch_version"] = torch.__version__
    info["cuda_available"] = "cuda" in info["backends"] and torch.cuda.is_available()
    return info


def has_cuda_kernels() -> bool:
    return "cuda" in _C.build_info()["backends"]


def device_args(t: torch.Tensor) -> tuple[int, int]:
    """(device index or -1, cudaStream_t as int) for launching on ``t``'s device."""
    if t.device.type == "cpu":
        return -1, 0
    if t.device.type == "cuda":
        if not has_cuda_kernels():
            raise RuntimeError(
                "ric_ext was built without CUDA kernels; rebuild with nvcc available "
                "(see `python -m ric_ext info`) or use backend='torch'"
            )
        return t.device.index, torch.cuda.current_stream(t.device).cuda_stream
    raise ValueError(f"ric_ext native kernels support cpu and cuda tensors, got device {t.device}")


def ptr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")
