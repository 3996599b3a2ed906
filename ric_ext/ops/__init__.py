"""Fused RIC ops. Each has ``backend="native"`` (the C++/CUDA kernel behind a
``torch.library.custom_op`` in namespace ``ric``) and ``backend="torch"`` (the
pure-PyTorch reference in :mod:`ric_ext.ops._torch_impl`).

| function              | custom op(s)                               | kernel source                  |
|-----------------------|--------------------------------------------|--------------------------------|
| ``chacha20_keystream``| ``ric::chacha20_keystream``                | csrc/common/chacha20.h         |
| ``keyed_uniform``     | ``ric::keyed_uniform``                     | csrc/common/chacha20.h         |
| ``keyed_pad``         | ``ric::keyed_pad``                         | csrc/common/elementwise.h, chacha20.h |
| ``keyed_digit_pad``   | ``ric::keyed_digit_pad``                   | csrc/common/elementwise.h, chacha20.h |
| ``mask``              | ``ric::mask``, ``ric::mask_backward``      | csrc/common/elementwise.h, philox.h |
| ``mask_uint8``        | ``ric::mask_uint8``                        | csrc/common/elementwise.h      |
| ``unmask``            | ``ric::unmask``                            | csrc/common/elementwise.h      |
| ``cw_margin``         | ``ric::cw_margin``, ``ric::cw_margin_backward`` | csrc/common/elementwise.h |
| ``adam_tanh_step_``   | ``ric::adam_tanh_step_``                   | csrc/common/elementwise.h      |

CPU loops live in csrc/cpu/kernels_cpu.cpp, CUDA kernels in csrc/cuda/kernels_cuda.cu.
"""

from .adam import adam_tanh_step_
from .cw import cw_margin, margin
from .digits import keyed_digit_pad
from .keystream import chacha20_keystream, key_tensor, keyed_uniform
from .mask import mask, mask_uint8, unmask
from .pad import keyed_pad

__all__ = [
    "adam_tanh_step_",
    "chacha20_keystream",
    "cw_margin",
    "key_tensor",
    "keyed_digit_pad",
    "keyed_pad",
    "keyed_uniform",
    "margin",
    "mask",
    "mask_uint8",
    "unmask",
]
