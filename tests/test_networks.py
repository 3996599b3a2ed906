"""RIC networks: paper architecture size, shapes, channels, errors, compile, gradients."""

import pytest
import torch

from ric_ext.models import RIC


def test_spec_parameter_count():
    n = sum(p.numel() for p in RIC().parameters())
    assert n == 2_778_531  # docs/scheme.md#networks: 2,778,531 for 3 channels


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("hw", [(8, 8), (9, 13), (32, 32), (31, 17)])
def test_shapes_are_kept(channels, hw):
    m = RIC(channels, width=4, depth=2)
    x = torch.rand(2, channels, *hw)
    z = torch.rand(2, channels, *hw)
    c, x_hat = m(x, z)
    assert c.shape == x.shape == x_hat.shape
    assert c.min() >= 0 and c.max() <= 1
    c8 = m.encrypt_uint8(x, z)
    assert c8.dtype == torch.uint8
    # The uint8 and float eval ciphertexts are the same image.
    assert torch.equal(c8.float() / 255, m.encrypt(x, z, quantize="eval"))
    assert torch.equal(m.decrypt(c8, z), m.decrypt(m.encrypt(x, z, quantize="eval"), z))


def test_bad_inputs():
    m = RIC(3, width=4, depth=2)
    with pytest.raises(ValueError, match="H, W >= 8"):
        m.encrypt(torch.rand(1, 3, 7, 9), torch.rand(1, 3, 7, 9))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m.encrypt(torch.rand(1, 1, 9, 9), torch.rand(1, 1, 9, 9))
    with pytest.raises(ValueError, match="z has shape"):
        m.encrypt(torch.rand(2, 3, 9, 9), torch.rand(1, 3, 9, 9))
    with pytest.raises(ValueError, match="channels"):
        RIC(channels=2)
    with pytest.raises(ValueError, match="depth"):
        RIC(depth=3)
    with pytest.raises(ValueError, match="lam"):
        RIC(lam=1.0)


def test_gradients_reach_every_parameter():
    m = RIC(3, width=4, depth=2)
    x, z = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 12, 12)
    c, x_hat = m(x, z, seed=torch.tensor([1, 2]))
    (x_hat.pow(2).mean() + c.mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_compile_fullgraph():
    # aot_eager traces the whole forward + backward (custom ops included)
    # without paying for inductor's C++ compile in CI.
    m = RIC(3, width=4, depth=2)
    x, z = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 12, 12)
    seed = torch.tensor([3, 4])
    cm = torch.compile(m, fullgraph=True, backend="aot_eager")
    c1, r1 = cm(x, z, seed=seed)
    c2, r2 = m(x, z, seed=seed)
    assert torch.equal(c1, c2)
    torch.testing.assert_close(r1, r2, rtol=1e-5, atol=1e-6)  # same ops, possibly other conv algorithms
    r1.sum().backward()


def test_bf16_autocast_keeps_mask_float32():
    m = RIC(3, width=4, depth=2)
    x, z = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        c, x_hat = m(x, z)
    assert c.dtype == torch.float32 and x_hat.dtype == torch.float32
