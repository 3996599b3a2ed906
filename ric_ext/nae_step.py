"""One attack step's heavy part: the classifier's forward and backward and the
C&W margin, ``(z, y) -> (cw, d(c * sum cw)/dz)``, in three interchangeable forms.

- ``EagerStep``: plain autograd (the reference, and the CPU default).
- ``CudaGraphStep``: one CUDA graph per static batch shape, so a step is a
  single graph launch instead of hundreds of small kernel launches.
  Rows past the active count are padding and their outputs are discarded.
  The Adam update stays outside the graph on purpose: its bias corrections
  change with the step number and a graph would bake them in.
- ``CompiledStep``: ``torch.compile`` of the same function per bucket (any
  device; ``mode="reduce-overhead"`` on CUDA), for classifiers where
  inductor's fusion pays off.

The static shape is ``micro_batch`` rows when one is given (the active samples
go through in chunks of exactly that many rows, which also makes each row's
result independent of its batch: :mod:`ric_ext.batching`), else the next
power of two of the active count. All three compute the same function; the
tests check the graph and compiled forms against the eager one where they run.
"""

from __future__ import annotations

import abc
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import nn

from . import ops
from .batching import check_micro_batch, fast_layout, pad_rows, run_chunked

STEP_IMPLS = ("auto", "eager", "cuda_graph", "compile")


def _cost_grad(
    classifier: nn.Module, c: float, kappa: float, backend: str, z: torch.Tensor, y: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    z = z.detach().requires_grad_(True)
    cw = ops.cw_margin(classifier(fast_layout(z)), y, kappa, targeted=True, backend=backend)
    (grad,) = torch.autograd.grad(c * cw.sum(), z)
    return cw.detach(), grad.contiguous()


def bucket_size(n: int) -> int:
    """The static batch size that serves ``n`` active samples: the next power of two (at least 1)."""
    return 1 << max(n - 1, 0).bit_length()


class EagerStep:
    def __init__(self, classifier: nn.Module, c: float, kappa: float, backend: str, micro_batch: Optional[int] = None):
        self.classifier, self.c, self.kappa, self.backend = classifier, c, kappa, backend
        self.micro_batch = micro_batch

    def __call__(self, z: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        fn = lambda zz, yy: _cost_grad(self.classifier, self.c, self.kappa, self.backend, zz, yy)  # noqa: E731
        return run_chunked(fn, (z, y), self.micro_batch)


class _Bucketed(abc.ABC):
    """Runs the active rows through per-shape runners (static shapes); subclasses make the runner."""

    def __init__(self, classifier: nn.Module, c: float, kappa: float, backend: str, micro_batch: Optional[int] = None):
        self.classifier, self.c, self.kappa, self.backend = classifier, c, kappa, backend
        self.micro_batch = micro_batch
        self.runners: Dict[tuple, Callable] = {}
        self.num_classes: Dict[tuple, int] = {}

    def _check_labels(self, z: torch.Tensor, y: torch.Tensor) -> None:
        # Graph replays skip cw_margin's label check (it needs a device sync), so check here once per shape.
        key = tuple(z.shape[1:])
        if key not in self.num_classes:
            with torch.no_grad():
                self.num_classes[key] = int(self.classifier(z[:1].detach()).shape[1])
        k = self.num_classes[key]
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            raise ValueError(f"labels must be in [0, {k}) for this classifier")

    def _run_static(self, z: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        n, b = z.shape[0], z.shape[0] if self.micro_batch else bucket_size(z.shape[0])
        key = (b, tuple(z.shape[1:]), z.dtype)
        if key not in self.runners:
            self.runners[key] = self.make_runner(b, pad_rows(z, b), pad_rows(y, b))
        cw, grad = self.runners[key](pad_rows(z, b), pad_rows(y, b))
        return cw[:n], grad[:n]

    def __call__(self, z: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        self._check_labels(z, y)
        return run_chunked(self._run_static, (z, y), self.micro_batch)

    @abc.abstractmethod
    def make_runner(self, b: int, z: torch.Tensor, y: torch.Tensor) -> Callable:
        """A function of (z, y) with exactly ``b`` rows; (z, y) is a first input to warm up with."""


class CudaGraphStep(_Bucketed):
    """CUDA graph per bucket; the static input/output buffers live as long as this object."""

    def __init__(self, classifier, c, kappa, backend, micro_batch=None):
        super().__init__(classifier, c, kappa, backend, micro_batch)
        self.pool = torch.cuda.graph_pool_handle()

    def make_runner(self, b: int, z: torch.Tensor, y: torch.Tensor) -> Callable:
        static_z, static_y = z.clone(), y.clone()
        fn = lambda: _cost_grad(self.classifier, self.c, self.kappa, self.backend, static_z, static_y)  # noqa: E731
        # Warm up on a side stream (lazy init, autograd's buffers) before capturing, as torch's docs require.
        side = torch.cuda.Stream(device=z.device)
        side.wait_stream(torch.cuda.current_stream(z.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                fn()
        torch.cuda.current_stream(z.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            static_cw, static_grad = fn()

        def run(zz: torch.Tensor, yy: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            static_z.copy_(zz)
            static_y.copy_(yy)
            graph.replay()
            return static_cw.clone(), static_grad.clone()

        return run


class CompiledStep(_Bucketed):
    """``torch.compile`` of the step function, one static-shape compilation per bucket."""

    def make_runner(self, b: int, z: torch.Tensor, y: torch.Tensor) -> Callable:
        mode = "reduce-overhead" if z.device.type == "cuda" else None

        def fn(zz: torch.Tensor, yy: torch.Tensor):
            return _cost_grad(self.classifier, self.c, self.kappa, self.backend, zz, yy)

        compiled = torch.compile(fn, dynamic=False, mode=mode)

        def run(zz: torch.Tensor, yy: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            cw, grad = compiled(zz, yy)
            return cw.clone(), grad.clone()

        return run


def make_step(
    impl: str,
    classifier: nn.Module,
    device: torch.device,
    c: float,
    kappa: float,
    backend: str,
    micro_batch: Optional[int] = None,
):
    """The step function for ``impl`` ('auto' = CUDA graphs on CUDA, eager elsewhere)."""
    check_micro_batch(micro_batch)
    if impl not in STEP_IMPLS:
        raise ValueError(f"step_impl must be one of {STEP_IMPLS}, got {impl!r}")
    if impl == "auto":
        impl = "cuda_graph" if device.type == "cuda" and backend == "native" else "eager"
    if impl == "cuda_graph":
        if device.type != "cuda":
            raise ValueError("step_impl='cuda_graph' needs the classifier on a CUDA device")
        return CudaGraphStep(classifier, c, kappa, backend, micro_batch)
    if impl == "compile":
        return CompiledStep(classifier, c, kappa, backend, micro_batch)
    return EagerStep(classifier, c, kappa, backend, micro_batch)
