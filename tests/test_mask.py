"""Fused mask / unmask against the PyTorch reference, gradients, opcheck, compile."""

import pytest
import torch
from conftest import AWKWARD_SHAPES, needs_cuda, non_contiguous

from ric_ext import ops

MODES = ["train", "eval", "none"]


def _pair(shape, dtype, device, gen, spread=1.2):
    # Values slightly outside [0, 1] so that both clamp bounds are exercised.
    e = (torch.rand(shape, generator=gen, dtype=dtype) * spread - (spread - 1) / 2).to(device)
    z = torch.rand(shape, generator=gen, dtype=dtype).to(device)
    return e, z


@pytest.mark.parametrize("shape", AWKWARD_SHAPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mask_equals_reference_bitwise(shape, mode, dtype, device, gen):
    e, z = _pair(shape, dtype, device, gen)
    seed = torch.tensor([987654321, 5], device=device)
    a = ops.mask(e, z, 0.8, quantize=mode, seed=seed)
    b = ops.mask(e, z, 0.8, quantize=mode, seed=seed, backend="torch")
    assert a.shape == e.shape and a.dtype == dtype
    # Exact: both sides round every multiply/add separately in the same order
    # and the dither is an exact integer stream.
    assert torch.equal(a, b)
    if mode != "none" and a.numel():
        assert a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("mode", MODES)
def test_mask_non_contiguous_inputs(mode, device, gen):
    e, z = _pair((3, 9, 11), torch.float32, device, gen)
    seed = torch.tensor([1, 2], device=device)
    a = ops.mask(non_contiguous(e), non_contiguous(z), 0.7, quantize=mode, seed=seed)
    assert torch.equal(a, ops.mask(e, z, 0.7, quantize=mode, seed=seed))
    # A transposed view is read as the transposed values, never misread.
    et, zt = e.transpose(1, 2), z.transpose(1, 2)
    assert torch.equal(
        ops.mask(et, zt, 0.7, quantize=mode, seed=seed),
        ops.mask(et.contiguous(), zt.contiguous(), 0.7, quantize=mode, seed=seed),
    )


def test_eval_is_the_8bit_grid(gen):
    e, z = _pair((2, 3, 17, 19), torch.float32, "cpu", gen)
    c = ops.mask(e, z, quantize="eval")
    assert torch.equal(c * 255, torch.round(c * 255))
    u8 = ops.mask_uint8(e, z)
    assert u8.dtype == torch.uint8
    assert torch.equal(u8, (c * 255).round().to(torch.uint8))


@pytest.mark.parametrize("shape", AWKWARD_SHAPES)
def test_mask_uint8_equals_reference(shape, device, gen):
    e, z = _pair(shape, torch.float32, device, gen)
    assert torch.equal(ops.mask_uint8(e, z, 0.8), ops.mask_uint8(e, z, 0.8, backend="torch"))


def test_train_dither_is_unbiased_rounding(gen):
    # E[clamp(255x + u)] = 255x away from the bounds: the dither is a
    # differentiable stand-in for rounding. 200k samples of a fixed x.
    x = torch.full((200_000,), 0.3)
    c = ops.mask(x, x, 0.8, quantize="train", seed=7)
    assert abs(c.mean().item() * 255 - 0.3 * 255) < 0.01
    assert (c * 255 - 0.3 * 255).abs().max() <= 0.5 + 1e-4


def test_train_seed_none_uses_torch_generator():
    x = torch.rand(100)
    torch.manual_seed(3)
    a = ops.mask(x, x, quantize="train")
    torch.manual_seed(3)
    b = ops.mask(x, x, quantize="train")
    c = ops.mask(x, x, quantize="train")
    assert torch.equal(a, b) and not torch.equal(b, c)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(0,), (1,), (5,), (2, 3, 7, 9)])
def test_mask_backward_equals_reference(mode, shape, device, gen):
    e, z = _pair(shape, torch.float32, device, gen, spread=1.5)
    seed = torch.tensor([11, 12], device=device)
    outs = []
    for backend in ("native", "torch"):
        ee, zz = e.clone().requires_grad_(), z.clone().requires_grad_()
        c = ops.mask(ee, zz, 0.8, quantize=mode, seed=seed, backend=backend)
        g = torch.linspace(-1, 1, c.numel(), device=device).reshape(c.shape)
        c.backward(g)
        outs.append((ee.grad, zz.grad))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_mask_backward_is_straight_through_with_saturation(gen):
    e = torch.tensor([0.5, 5.0, -5.0], requires_grad=True)
    z = torch.tensor([0.5, 0.5, 0.5], requires_grad=True)
    ops.mask(e, z, 0.8, quantize="eval").sum().backward()
    f32 = torch.float32
    assert torch.equal(e.grad, torch.tensor([0.2, 0.0, 0.0], dtype=f32))
    assert torch.equal(z.grad, torch.tensor([0.8, 0.0, 0.0], dtype=f32))


def test_mask_gradcheck_float64(gen):
    # The quantisers are piecewise constant (their straight-through gradient is
    # a definition, checked against the reference above); the mix itself is
    # checked numerically.
    e, z = _pair((2, 3, 5), torch.float64, "cpu", gen)
    e.requires_grad_(), z.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: ops.mask(a, b, 0.8, quantize="none"), (e, z))


@pytest.mark.parametrize("shape", AWKWARD_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unmask_equals_reference_bitwise(shape, dtype, device, gen):
    e, z = _pair(shape, dtype, device, gen)
    c = ops.mask(e, z, 0.8, quantize="eval")
    assert torch.equal(ops.unmask(c, z), ops.unmask(c, z, backend="torch"))
    if dtype == torch.float32:
        u8 = ops.mask_uint8(e, z)
        # Reading the uint8 ciphertext directly gives exactly the float path.
        assert torch.equal(ops.unmask(u8, z), ops.unmask(c, z))
        assert torch.equal(ops.unmask(u8, z), ops.unmask(u8, z, backend="torch"))


def test_unmask_inverts_mask_without_quantisation(gen):
    e, z = _pair((3, 8, 8), torch.float64, "cpu", gen)
    r = ops.unmask(ops.mask(e, z, 0.8, quantize="none"), z)
    torch.testing.assert_close(r, e, rtol=0, atol=1e-12)  # float64 rounding only


def test_unmask_non_contiguous(device, gen):
    e, z = _pair((4, 5, 6), torch.float32, device, gen)
    c = ops.mask(e, z, quantize="eval")
    assert torch.equal(ops.unmask(non_contiguous(c), non_contiguous(z)), ops.unmask(c, z))


def test_unmask_gradcheck_float64(gen):
    c, z = _pair((2, 3, 5), torch.float64, "cpu", gen)
    c.requires_grad_(), z.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: ops.unmask(a, b, 0.8), (c, z))
    zz = z.detach().clone().requires_grad_()
    u8 = (c.detach() * 255).round().clamp(0, 255).to(torch.uint8)
    assert torch.autograd.gradcheck(lambda b: ops.unmask(u8, b, 0.8), (zz,))


def test_opcheck_mask_ops(gen, device):
    e, z = _pair((2, 3, 5, 7), torch.float32, device, gen)
    e.requires_grad_(), z.requires_grad_()
    seed = torch.tensor([5, 6], device=device)
    for mode in (0, 1, 2):
        torch.library.opcheck(torch.ops.ric.mask.default, (e, z, 0.8, mode, seed if mode == 1 else None))
    torch.library.opcheck(torch.ops.ric.mask_uint8.default, (e.detach(), z.detach(), 0.8))
    torch.library.opcheck(torch.ops.ric.unmask.default, (e, z, 0.8))
    u8 = ops.mask_uint8(e.detach(), z.detach())
    torch.library.opcheck(torch.ops.ric.unmask.default, (u8, z, 0.8))
    torch.library.opcheck(torch.ops.ric.mask_backward.default, (e.detach(), e.detach(), z.detach(), 0.8, 1, seed))


def test_compile_fullgraph_mask_unmask(gen):
    e, z = _pair((2, 3, 8, 8), torch.float32, "cpu", gen)
    seed = torch.tensor([9, 9])

    def f(e, z, seed):
        c = ops.mask(e, z, 0.8, quantize="train", seed=seed)
        return ops.unmask(c, z, 0.8), c

    compiled = torch.compile(f, fullgraph=True)
    r1, c1 = compiled(e, z, seed)
    r2, c2 = f(e, z, seed)
    assert torch.equal(c1, c2) and torch.equal(r1, r2)
    # And the gradient through the compiled graph.
    ee = e.clone().requires_grad_()
    compiled(ee, z, seed)[0].sum().backward()
    ee2 = e.clone().requires_grad_()
    f(ee2, z, seed)[0].sum().backward()
    assert torch.equal(ee.grad, ee2.grad)


@needs_cuda
@pytest.mark.parametrize("mode", MODES)
def test_cuda_equals_cpu(mode):
    gen = torch.Generator().manual_seed(0)
    e, z = _pair((5, 3, 33, 31), torch.float32, "cpu", gen)
    seed = torch.tensor([31337, 3])
    a = ops.mask(e, z, quantize=mode, seed=seed)
    b = ops.mask(e.cuda(), z.cuda(), quantize=mode, seed=seed.cuda()).cpu()
    assert torch.equal(a, b)
    assert torch.equal(ops.mask_uint8(e, z), ops.mask_uint8(e.cuda(), z.cuda()).cpu())
    assert torch.equal(ops.unmask(a, z), ops.unmask(a.cuda(), z.cuda()).cpu())


@needs_cuda
def test_cuda_graph_capture_mask():
    e = torch.rand(4, 3, 32, 32, device="cuda")
    z = torch.rand(4, 3, 32, 32, device="cuda")
    seed = torch.tensor([1, 0], device="cuda")
    out = ops.mask(e, z, quantize="train", seed=seed)  # warm-up
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = ops.mask(e, z, quantize="train", seed=seed)
        r = ops.unmask(out, z)
    seed.copy_(torch.tensor([2, 0], device="cuda"))
    g.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, ops.mask(e, z, quantize="train", seed=torch.tensor([2, 0], device="cuda")))
    assert torch.equal(r, ops.unmask(out, z))


def test_bad_arguments_name_the_argument():
    e, z = torch.rand(2, 3), torch.rand(2, 3)
    with pytest.raises(ValueError, match="lam must be in"):
        ops.mask(e, z, 1.0)
    with pytest.raises(ValueError, match="lam must be in"):
        ops.mask(e, z, float("nan"))
    with pytest.raises(ValueError, match="lam must be in"):
        ops.unmask(e, z, -0.1)
    with pytest.raises(TypeError, match="lam must be a float"):
        ops.mask(e, z, "0.8")
    with pytest.raises(ValueError, match="shape"):
        ops.mask(e, torch.rand(3, 2))
    with pytest.raises(TypeError, match="e must have dtype"):
        ops.mask(e.half(), z)
    with pytest.raises(TypeError, match="dtype"):
        ops.mask(e.double(), z)
    with pytest.raises(TypeError, match="z must be a torch.Tensor"):
        ops.mask(e, [1, 2, 3])
    with pytest.raises(ValueError, match="quantize"):
        ops.mask(e, z, quantize="round")
    with pytest.raises(ValueError, match=r"seed tensor must have shape \(2,\)"):
        ops.mask(e, z, quantize="train", seed=torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="c must have dtype"):
        ops.unmask(e.to(torch.int32), z)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            ops.mask(e, z.cuda())
    else:
        with pytest.raises(ValueError, match="meta"):
            ops.mask(e, z.to("meta"))


def test_raw_op_device_check():
    from ric_ext.ops import _validate

    e = torch.rand(4)
    with pytest.raises(ValueError, match="z is on meta but e is on cpu"):
        _validate.raw_op_args(e=e, z=e.to("meta"), seed=None)


@needs_cuda
def test_raw_ops_reject_device_mix():
    # Callers of torch.ops.ric.* skip the functional API's checks; the ops
    # still refuse tensors on different devices instead of reading bad memory.
    e = torch.rand(4)
    with pytest.raises(ValueError, match="device"):
        torch.ops.ric.mask(e, e.cuda(), 0.8, 2, None)
    with pytest.raises(ValueError, match="device"):
        torch.ops.ric.keyed_uniform(
            torch.zeros(32, dtype=torch.uint8), torch.zeros(1, 12, dtype=torch.uint8, device="cuda"), 4, 0, False
        )


def test_raw_ops_check_shapes():
    e = torch.rand(4)
    with pytest.raises(ValueError, match="shape"):
        torch.ops.ric.mask(e, torch.rand(5), 0.8, 2, None)
    with pytest.raises(ValueError, match="seed"):
        torch.ops.ric.mask(e, e, 0.8, 1, None)
    with pytest.raises(ValueError, match="labels"):
        torch.ops.ric.cw_margin(torch.rand(3, 4), torch.zeros(2, dtype=torch.int64), 0.0, True)
    with pytest.raises(ValueError, match="active"):
        w = torch.zeros(3, 4)
        torch.ops.ric.adam_tanh_step_(
            w, w.clone(), w.clone(), w.clone(), torch.ones(2, dtype=torch.bool), 1, 0.01, 0.9, 0.999, 1e-8, False
        )
    with pytest.raises(ValueError, match="key"):
        torch.ops.ric.keyed_uniform(
            torch.zeros(31, dtype=torch.uint8), torch.zeros(1, 12, dtype=torch.uint8), 4, 0, False
        )
