"""Shared fixtures: the devices to test on and deterministic random data.

CUDA cases run where a GPU is present and are skipped otherwise (CI is CPU-only).
"""
from __future__ import annotations

import pytest
import torch

import ric_ext

CUDA = torch.cuda.is_available() and "cuda" in ric_ext.build_info()["backends"]
DEVICES = ["cpu"] + (["cuda"] if CUDA else [])
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU and ric_ext built with CUDA kernels")

# Awkward element counts: empty, one, less than a 4-group, odd, a prime that is
# not a multiple of any vector width, and one large enough for the OpenMP path.
AWKWARD_SHAPES = [(0,), (1,), (3,), (2, 3, 5), (7919,), (2, 3, 33, 31), (40_003,)]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """Same values, non-contiguous layout (a transposed copy transposed back)."""
    if t.dim() < 2:
        return torch.stack([t, t], -1)[..., 0]
    return t.transpose(0, -1).contiguous().transpose(0, -1)
