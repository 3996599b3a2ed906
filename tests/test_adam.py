"""Fused tanh-space Adam: reference, torch.optim.Adam, active mask, chain rule."""

import pytest
import torch
from conftest import needs_cuda

from ric_ext import ops


def _state(shape, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g, dtype=dtype).to(device)
    return w, torch.zeros_like(w), torch.zeros_like(w)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (4, 3, 5, 5), (2, 40_003)])
@pytest.mark.parametrize("grad_wrt", ["w", "adv"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_reference(shape, grad_wrt, dtype, device):
    ws = [_state(shape, dtype, device) for _ in range(2)]
    gen = torch.Generator().manual_seed(1)
    active = torch.tensor([i % 3 != 1 for i in range(shape[0])], device=device)
    for step in range(1, 6):
        grad = torch.randn(shape, generator=gen, dtype=dtype).to(device)
        advs = [
            ops.adam_tanh_step_(w, m, v, grad, step, lr=0.01, active=active, grad_wrt=grad_wrt, backend=b)
            for (w, m, v), b in zip(ws, ("native", "torch"))
        ]
        # tanh comes from different libm implementations (a few ulp); Adam's
        # update divides by sqrt(v) and amplifies such differences in w by at
        # most lr / (sqrt(v) + eps) * rel.err, so a few float32 ulp of |w| ~ 4.
        tol = dict(rtol=2e-6, atol=2e-6) if dtype == torch.float32 else dict(rtol=1e-13, atol=1e-13)
        for a, b in zip(ws[0], ws[1]):
            torch.testing.assert_close(a, b, **tol)
        torch.testing.assert_close(advs[0], advs[1], **tol)


def test_matches_torch_optim_adam():
    w, m, v = _state((4, 3, 8, 8))
    p = torch.nn.Parameter(w.clone())
    opt = torch.optim.Adam([p], lr=0.01)
    gen = torch.Generator().manual_seed(2)
    for step in range(1, 21):
        grad = torch.randn(w.shape, generator=gen)
        opt.zero_grad()
        p.grad = grad.clone()
        opt.step()
        adv = ops.adam_tanh_step_(w, m, v, grad, step, lr=0.01)
    # torch's CPU lerp/addcmul may use FMA while the kernel rounds each step;
    # after 20 steps of |w| ~ 3 the drift stays within a few ulp.
    torch.testing.assert_close(w, p.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m, opt.state[p]["exp_avg"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v, opt.state[p]["exp_avg_sq"], rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(adv, (torch.tanh(w) + 1) / 2, rtol=0, atol=1e-6)


def test_inactive_rows_do_not_move():
    w, m, v = _state((3, 10))
    w0 = w.clone()
    active = torch.tensor([True, False, True])
    adv = ops.adam_tanh_step_(w, m, v, torch.ones_like(w), 1, active=active)
    assert torch.equal(w[1], w0[1]) and torch.equal(m[1], torch.zeros(10)) and torch.equal(v[1], torch.zeros(10))
    assert not torch.equal(w[0], w0[0])
    torch.testing.assert_close(adv[1], (torch.tanh(w0[1]) + 1) / 2, rtol=0, atol=1e-6)


def test_grad_wrt_adv_applies_chain_rule():
    w, m, v = _state((2, 50))
    w2, m2, v2 = w.clone(), m.clone(), v.clone()
    x = w.clone().requires_grad_()
    adv = (torch.tanh(x) + 1) / 2
    g_adv = torch.randn_like(adv)
    adv.backward(g_adv)
    ops.adam_tanh_step_(w, m, v, g_adv, 1, grad_wrt="adv")
    ops.adam_tanh_step_(w2, m2, v2, x.grad, 1, grad_wrt="w")
    torch.testing.assert_close(w, w2, rtol=1e-6, atol=1e-6)  # chain rule rounded differently


def test_opcheck(device):
    w, m, v = _state((3, 17), device=device)
    torch.library.opcheck(
        torch.ops.ric.adam_tanh_step_.default,
        (
            w,
            m,
            v,
            torch.randn(3, 17, device=device),
            torch.ones(3, dtype=torch.bool, device=device),
            1,
            0.01,
            0.9,
            0.999,
            1e-8,
            False,
        ),
    )


def test_compile_fullgraph():
    w, m, v = _state((3, 17))
    w2, m2, v2 = w.clone(), m.clone(), v.clone()
    grad = torch.randn(3, 17)
    act = torch.ones(3, dtype=torch.bool)
    f = torch.compile(
        lambda w, m, v, g, a: torch.ops.ric.adam_tanh_step_(w, m, v, g, a, 1, 0.01, 0.9, 0.999, 1e-8, True),
        fullgraph=True,
    )
    a1 = f(w, m, v, grad, act)
    a2 = ops.adam_tanh_step_(w2, m2, v2, grad, 1, grad_wrt="adv")
    assert torch.equal(a1, a2) and torch.equal(w, w2)


@needs_cuda
def test_cuda_close_to_cpu():
    w, m, v = _state((4, 3, 32, 32))
    wc, mc, vc = w.cuda(), m.cuda(), v.cuda()
    g = torch.randn_like(w)
    ops.adam_tanh_step_(w, m, v, g, 1)
    ops.adam_tanh_step_(wc, mc, vc, g.cuda(), 1)
    torch.testing.assert_close(w, wc.cpu(), rtol=2e-6, atol=2e-6)  # CUDA tanhf vs glibc: a few ulp


def test_bad_arguments():
    w, m, v = _state((3, 4))
    g = torch.randn(3, 4)
    with pytest.raises(ValueError, match="step must be an int >= 1"):
        ops.adam_tanh_step_(w, m, v, g, 0)
    with pytest.raises(ValueError, match="m must be contiguous"):
        mt = torch.zeros(4, 3).t()
        ops.adam_tanh_step_(w, mt, v, g, 1)
    with pytest.raises(ValueError, match="shape"):
        ops.adam_tanh_step_(w, m, v, torch.randn(3, 5), 1)
    with pytest.raises(TypeError, match="grad must have dtype"):
        ops.adam_tanh_step_(w, m, v, g.double(), 1)
    with pytest.raises(ValueError, match=r"active must have shape \(3,\)"):
        ops.adam_tanh_step_(w, m, v, g, 1, active=torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="betas"):
        ops.adam_tanh_step_(w, m, v, g, 1, betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="grad_wrt"):
        ops.adam_tanh_step_(w, m, v, g, 1, grad_wrt="z")
