"""Batch-invariant execution: run a function over fixed-size micro-batches.

Convolution and GEMM libraries (oneDNN, MKL, cuDNN) pick algorithms and
blockings by shape, so the same image can come out of a network with
different float rounding when it shares a batch of 1, 3 or 16 images. On this
project's CPUs a batch of 1 or 3 rounds differently from a batch of 16 (1e-7 in
the decoder, 1e-5 in classifier logits), enough to flip a few 8-bit pixels of
a decrypted image. Calling the network only on chunks of exactly
``micro_batch`` rows (the last one padded with copies of its final row) fixes
the shape, and each row's arithmetic then does not depend on its companions or
position (tests/test_batching.py checks this on the bundled networks), so an
image decrypts to the same bytes alone, in any order, or in any batch size.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence, Tuple, Union

import torch

from .checks import check_int

Tensors = Union[torch.Tensor, Tuple[torch.Tensor, ...]]
#: The networks' micro-batch unless a caller says otherwise (stored in every ciphertext header).
DEFAULT_MICRO_BATCH = 8


def check_micro_batch(micro_batch: Optional[int]) -> Optional[int]:
    """``micro_batch`` if it is None or an int >= 1, else ValueError naming it."""
    return None if micro_batch is None else check_int("micro_batch", micro_batch, 1)


def batch_slices(n: int, size: int) -> Iterator[slice]:
    """Slices of ``range(n)`` of ``size`` rows each (the last may be shorter): how every batch is cut."""
    check_int("size", size, 1)
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def fast_layout(t: torch.Tensor) -> torch.Tensor:
    """Images in channels-last layout on the CPU, where oneDNN's convolutions run ~1.2-1.4x faster
    with it (measured on the bundled networks; docs/benchmarks.md); unchanged elsewhere."""
    if t.dim() == 4 and t.device.type == "cpu":
        return t.contiguous(memory_format=torch.channels_last)
    return t


def pad_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    """``t`` with its last row repeated until it has ``rows`` rows (a valid input for any network)."""
    n = t.shape[0]
    if n == rows:
        return t
    return torch.cat([t, t[-1:].expand(rows - n, *t.shape[1:])])


def run_chunked(fn: Callable[..., Tensors], inputs: Sequence[torch.Tensor], micro_batch: Optional[int]) -> Tensors:
    """``fn(*inputs)`` computed over chunks of exactly ``micro_batch`` rows and concatenated.

    ``micro_batch=None`` calls ``fn`` once on the whole batch. ``fn`` returns a
    tensor or a tuple of tensors, each with the batch as its first dimension.
    """
    n = inputs[0].shape[0]
    if check_micro_batch(micro_batch) is None or n == 0:
        return fn(*inputs)
    outs = []
    for sl in batch_slices(n, micro_batch):
        part = [t[sl] for t in inputs]
        m = part[0].shape[0]
        res = fn(*[pad_rows(t, micro_batch) for t in part])
        outs.append(tuple(r[:m] for r in res) if isinstance(res, tuple) else res[:m])
    if isinstance(outs[0], tuple):
        return tuple(torch.cat([o[k] for o in outs]) for k in range(len(outs[0])))
    return torch.cat(outs)
