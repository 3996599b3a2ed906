"""C&W margin against the reference: values, tie rule, gradients, opcheck, compile."""

import pytest
import torch
from conftest import needs_cuda

from ric_ext import ops


@pytest.mark.parametrize("B,K", [(0, 10), (1, 2), (7, 10), (33, 3), (5, 1000), (1025, 7)])
@pytest.mark.parametrize("targeted", [True, False])
@pytest.mark.parametrize("kappa", [0.0, 5.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_reference(B, K, targeted, kappa, dtype, device, gen):
    logits = (torch.randn(B, K, generator=gen, dtype=dtype) * 4).to(device)
    labels = torch.randint(0, K, (B,), generator=gen).to(device)
    a = ops.cw_margin(logits, labels, kappa, targeted=targeted)
    b = ops.cw_margin(logits, labels, kappa, targeted=targeted, backend="torch")
    assert torch.equal(a, b)  # one subtraction and a max: exact
    assert a.shape == (B,) and (a >= -kappa).all()


@pytest.mark.parametrize("targeted", [True, False])
def test_backward_equals_reference_with_ties(targeted, device):
    # Ties between competing classes (rows 0, 1) and a clamped row (2).
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 20.0, 0.0]], device=device)
    labels = torch.tensor([0, 3, 2], device=device)
    grads = []
    for backend in ("native", "torch"):
        x = logits.clone().requires_grad_()
        ops.cw_margin(x, labels, 5.0, targeted=targeted, backend=backend).backward(
            torch.tensor([1.0, 2.0, 3.0], device=device)
        )
        grads.append(x.grad)
    assert torch.equal(grads[0], grads[1])
    s = 1.0 if targeted else -1.0
    # Row 0: competitor is index 1 (first of the tied maxima), label 0.
    assert grads[0][0].tolist() == [-s, s, 0.0, 0.0]
    # Row 1: all equal; the competitor is index 0, the smallest j != y.
    assert grads[0][1].tolist() == [2 * s, 0.0, 0.0, -2 * s]
    if targeted:  # margin 0-20 = -20 < -5: clamped, no gradient
        assert grads[0][2].tolist() == [0.0] * 4


@pytest.mark.parametrize("targeted", [True, False])
def test_gradcheck_float64(targeted, gen):
    # Distinct, well-separated logits keep gradcheck's finite differences away
    # from the kinks of max and clamp.
    logits = torch.randperm(24, generator=gen).reshape(4, 6).double().requires_grad_()
    labels = torch.tensor([0, 5, 2, 3])
    assert torch.autograd.gradcheck(lambda x: ops.cw_margin(x, labels, 3.0, targeted=targeted), (logits,))


def test_opcheck(device):
    logits = torch.randn(6, 10, device=device, requires_grad=True)
    labels = torch.randint(0, 10, (6,), device=device)
    torch.library.opcheck(torch.ops.ric.cw_margin.default, (logits, labels, 5.0, True))
    torch.library.opcheck(torch.ops.ric.cw_margin.default, (logits, labels, 0.0, False))
    torch.library.opcheck(
        torch.ops.ric.cw_margin_backward.default, (torch.randn(6, device=device), logits.detach(), labels, 5.0, True)
    )


def test_compile_fullgraph(gen):
    logits = torch.randn(6, 10, generator=gen)
    labels = torch.randint(0, 10, (6,), generator=gen)

    def f(x, y):
        g = torch.ops.ric.cw_margin(x, y, 5.0, True)
        return g, g.mean() * 10

    g1, m1 = torch.compile(f, fullgraph=True)(logits, labels)
    g2, m2 = f(logits, labels)
    assert torch.equal(g1, g2)  # the op itself: exact
    torch.testing.assert_close(m1, m2)  # inductor may reduce in another order


def test_non_contiguous(device, gen):
    logits = torch.randn(10, 7, generator=gen).to(device)
    labels = torch.randint(0, 7, (10,), generator=gen).to(device)
    lt = logits.t().contiguous().t()
    assert not lt.is_contiguous()
    assert torch.equal(ops.cw_margin(lt, labels, 2.0), ops.cw_margin(logits, labels, 2.0))


@needs_cuda
def test_cuda_equals_cpu():
    logits = torch.randn(300, 10)
    labels = torch.randint(0, 10, (300,))
    assert torch.equal(ops.cw_margin(logits, labels, 5.0), ops.cw_margin(logits.cuda(), labels.cuda(), 5.0).cpu())


def test_bad_arguments():
    logits = torch.randn(4, 10)
    with pytest.raises(ValueError, match="labels must be in"):
        ops.cw_margin(logits, torch.tensor([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="labels must be in"):
        ops.cw_margin(logits, torch.tensor([0, -1, 2, 3]))
    with pytest.raises(TypeError, match="labels must have dtype int64"):
        ops.cw_margin(logits, torch.tensor([0, 1, 2, 3], dtype=torch.int32))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        ops.cw_margin(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="K >= 2"):
        ops.cw_margin(torch.randn(4, 1), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="kappa must be >= 0"):
        ops.cw_margin(logits, torch.zeros(4, dtype=torch.int64), -1.0)
    with pytest.raises(TypeError, match="logits must have dtype"):
        ops.cw_margin(logits.half(), torch.zeros(4, dtype=torch.int64))


def test_kernel_guards_bad_labels_without_sync():
    # The raw op (what runs under compile / graph capture, where the eager
    # range check is skipped) returns NaN rather than reading out of bounds.
    out = torch.ops.ric.cw_margin(torch.randn(2, 3), torch.tensor([0, 7]), 1.0, True)
    assert not torch.isnan(out[0]) and torch.isnan(out[1])
