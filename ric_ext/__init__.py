"""ric_ext: recoverable privacy-preserving image classification (RIC) for PyTorch.

Fused C++/CUDA kernels (:mod:`ric_ext.ops`) with pure-PyTorch references.
See README.md and ../shared/SPEC.md for the scheme.
"""
from ._native import build_info
from . import ops

__version__ = "0.1.0"
__all__ = ["build_info", "ops", "__version__"]
