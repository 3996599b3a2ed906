"""The keyed pad (ops.keyed_pad): native == reference bit for bit, exact inverse, keyed, uniform."""

import pytest
import torch

from ric_ext import ops
from ric_ext.ops import _torch_impl

KEY = bytes(range(32))

# Awkward per-image shapes: one element, odd sizes, not a multiple of a 16-word block or of
# the CPU's 128-element chunk, grey and colour, and one big enough for the OpenMP path.
SHAPES = [(1,), (1, 3, 5), (3, 7, 9), (1, 33, 31), (3, 64, 64)]


def _nonces(b: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _images(b: int, shape, seed: int = 1) -> torch.Tensor:
    # 8-bit images (what users encrypt), plus the extremes 0 and 1
    x = torch.randint(0, 256, (b, *shape), generator=torch.Generator().manual_seed(seed)).float() / 255
    x.view(b, -1)[:, 0] = 0.0
    x.view(b, -1)[:, -1] = 1.0
    return x


@pytest.mark.parametrize("shape", SHAPES)
def test_native_matches_reference_bit_for_bit(device, shape):
    # Exact equality: both sides round each multiply/add once (-ffp-contract=off, __fmul_rn) and
    # draw the same keystream words, so any difference is a bug, not rounding.
    x = _images(3, shape).to(device)
    n = _nonces(3).to(device)
    s = ops.keyed_pad(x, KEY, n)
    assert torch.equal(s, ops.keyed_pad(x, KEY, n, backend="torch"))
    assert s.min() >= 0 and s.max() < 1
    r = s + (torch.rand(s.shape, generator=torch.Generator().manual_seed(2)).to(device) - 0.5) * 0.0196
    assert torch.equal(ops.keyed_pad(r, KEY, n, inverse=True), ops.keyed_pad(r, KEY, n, inverse=True, backend="torch"))


@pytest.mark.parametrize("shape", SHAPES)
def test_inverse_is_exact_on_8bit_images_within_the_guard(shape):
    x = _images(4, shape)
    n = _nonces(4)
    s = ops.keyed_pad(x, KEY, n)
    assert torch.equal(torch.round(ops.keyed_pad(s, KEY, n, inverse=True) * 255), x * 255)
    # Errors up to (just under) the guard (1 - a)/2 = 0.01 unwrap to the right side of the circle,
    # including for x = 0 and x = 1, whose shares sit next to the wrap.
    for err in (0.0099, -0.0099):
        back = ops.keyed_pad(s + err, KEY, n, inverse=True)
        assert (back - x).abs().max() <= 0.0099 / 0.98 + 1e-6


def test_each_key_and_nonce_gives_another_pad():
    x = _images(2, (3, 8, 8))
    n = _nonces(2)
    s = ops.keyed_pad(x, KEY, n)
    other_key = ops.keyed_pad(x, bytes(32), n)
    flipped = n.clone()
    flipped[0, 11] ^= 1
    other_nonce = ops.keyed_pad(x, KEY, flipped)
    assert (s != other_key).float().mean() > 0.99
    assert (s[0] != other_nonce[0]).float().mean() > 0.99 and torch.equal(s[1], other_nonce[1])
    # with the wrong key the inverse is noise, not the image
    assert (ops.keyed_pad(s, bytes(32), n, inverse=True) - x).abs().mean() > 0.2


def test_the_padded_share_is_uniform_whatever_the_image():
    # The point of the pad: s does not depend on x. A black image, a white one and a photo-like
    # ramp all give shares whose histogram is flat (chi-square over 16 bins; 1% critical value
    # for 15 degrees of freedom is 30.6) and whose mean is 0.5.
    n = _nonces(1, seed=5)
    for x in (
        torch.zeros(1, 3, 64, 64),
        torch.ones(1, 3, 64, 64),
        torch.linspace(0, 1, 3 * 64 * 64).view(1, 3, 64, 64),
    ):
        s = ops.keyed_pad(x, KEY, n)
        counts = torch.histc(s, bins=16, min=0, max=1)
        expected = s.numel() / 16
        assert float(((counts - expected) ** 2 / expected).sum()) < 30.6
        assert abs(float(s.mean()) - 0.5) < 0.01


def test_bad_arguments_name_themselves():
    x, n = _images(2, (3, 4, 4)), _nonces(2)
    with pytest.raises(ValueError, match="a must be a float in \\(0, 1\\)"):
        ops.keyed_pad(x, KEY, n, a=1.0)
    with pytest.raises(ValueError, match="one row per nonce"):
        ops.keyed_pad(x, KEY, _nonces(3))
    with pytest.raises(TypeError, match="x must have dtype float32"):
        ops.keyed_pad(x.double(), KEY, n)
    with pytest.raises(ValueError, match="key must be 32 bytes"):
        ops.keyed_pad(x, b"short", n)


def test_opcheck(device):
    x, n = _images(2, (3, 5, 7)).to(device), _nonces(2).to(device)
    k = ops.key_tensor(KEY, device)
    for inverse in (False, True):
        torch.library.opcheck(
            torch.ops.ric.keyed_pad.default,
            (k, n, x.reshape(2, -1), 0.98, inverse),
            test_utils=("test_schema", "test_faketensor"),
        )


def test_reference_is_used_by_the_reference_backend():
    x, n = _images(1, (3, 4, 4)), _nonces(1)
    k = ops.key_tensor(KEY)
    assert torch.equal(
        ops.keyed_pad(x, KEY, n, backend="torch").reshape(1, -1),
        _torch_impl.keyed_pad(k, n, x.reshape(1, -1), 0.98, False),
    )
