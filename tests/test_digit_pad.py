"""The keyed digit pad (ops.keyed_digit_pad): native == reference exactly, exact inverse, keyed,
uniform whatever the input, and a known-answer chain back to the RFC 8439 keystream."""

import pytest
import torch
from conftest import AWKWARD_SHAPES

from ric_ext import ops
from ric_ext.ops import _torch_impl

KEY = bytes(range(32))
BASES = [2, 51, 64, 85, 128, 255, 256]


def _nonces(b: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _digits(b: int, shape, base: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, base, (b, *shape), generator=torch.Generator().manual_seed(seed)).to(torch.uint8)


# Integer arithmetic only: every comparison below is exact equality, there is no tolerance.
@pytest.mark.parametrize("shape", [s for s in AWKWARD_SHAPES if len(s) > 0] + [(3, 64, 64)])
@pytest.mark.parametrize("base", [51, 64, 256])
def test_native_matches_reference(device, shape, base):
    n = _nonces(3).to(device)
    d = _digits(3, shape, base).to(device)
    m = ops.keyed_digit_pad(d, KEY, n, base)
    assert torch.equal(m, ops.keyed_digit_pad(d, KEY, n, base, backend="torch"))
    c = torch.randint(0, 256, (3, *shape), generator=torch.Generator().manual_seed(4)).to(torch.uint8).to(device)
    assert torch.equal(
        ops.keyed_digit_pad(c, KEY, n, base, inverse=True),
        ops.keyed_digit_pad(c, KEY, n, base, inverse=True, backend="torch"),
    )


@pytest.mark.parametrize("base", BASES)
def test_inverse_reads_the_low_digit_of_any_byte(base):
    # A ciphertext byte is base * q + m; the inverse must return d whatever the high digit q is.
    n = _nonces(4)
    d = _digits(4, (3, 9, 7), base)
    m = ops.keyed_digit_pad(d, KEY, n, base)
    assert int(m.max()) < base
    high = torch.randint(0, 256 // base, m.shape, generator=torch.Generator().manual_seed(2)).to(torch.int64)
    c = (high * base + m.to(torch.int64)).to(torch.uint8)
    assert torch.equal(ops.keyed_digit_pad(c, KEY, n, base, inverse=True), d)


def test_known_answer_from_the_rfc8439_keystream():
    # k_i = floor(word_i * base / 2^32) with word_i the i-th little-endian keystream word (block 0);
    # ops.chacha20_keystream is itself checked against RFC 8439's vectors (test_keystream.py).
    n = _nonces(2)
    raw = ops.chacha20_keystream(KEY, n, 4 * 40).to(torch.int64).reshape(2, 40, 4)
    words = raw[..., 0] | (raw[..., 1] << 8) | (raw[..., 2] << 16) | (raw[..., 3] << 24)
    for base in (51, 64, 200):
        k = ops.keyed_digit_pad(torch.zeros(2, 40, dtype=torch.uint8), KEY, n, base)
        assert torch.equal(k.to(torch.int64), (words * base) >> 32)
    # and one literal vector, so that a change of the keystream's word order cannot go unseen
    k = ops.keyed_digit_pad(torch.zeros(1, 8, dtype=torch.uint8), bytes(32), torch.zeros(1, 12, dtype=torch.uint8), 64)
    # RFC 8439 2.4.2 / the all-zero key and nonce, block 0: words 0xade0b876, 0x903df1a0, 0xe56a5d40, ...
    assert k[0, :3].tolist() == [0xADE0B876 * 64 >> 32, 0x903DF1A0 * 64 >> 32, 0xE56A5D40 * 64 >> 32]


def test_each_key_and_nonce_gives_another_pad():
    n = _nonces(2)
    d = _digits(2, (3, 16, 16), 64)
    m = ops.keyed_digit_pad(d, KEY, n, 64)
    assert (m != ops.keyed_digit_pad(d, bytes(32), n, 64)).float().mean() > 0.95
    flipped = n.clone()
    flipped[0, 0] ^= 1
    other = ops.keyed_digit_pad(d, KEY, flipped, 64)
    assert (m[0] != other[0]).float().mean() > 0.95 and torch.equal(m[1], other[1])
    # the wrong key unpads to noise
    assert (ops.keyed_digit_pad(m, bytes(32), n, 64, inverse=True) != d).float().mean() > 0.95


@pytest.mark.parametrize("base", [51, 64])
def test_the_padded_digits_are_uniform_whatever_the_input(base):
    # All-zero, all-max and ramp inputs give flat digit histograms: chi-square over `base` bins
    # against its 0.1% critical value (base - 1 degrees of freedom: 87.0 for 50, 103.4 for 63).
    crit = {51: 87.0, 64: 103.4}[base]
    n = _nonces(1, seed=5)
    for d in (
        torch.zeros(1, 3, 64, 64, dtype=torch.uint8),
        torch.full((1, 3, 64, 64), base - 1, dtype=torch.uint8),
        (torch.arange(3 * 64 * 64) % base).to(torch.uint8).view(1, 3, 64, 64),
    ):
        m = ops.keyed_digit_pad(d, KEY, n, base)
        counts = torch.bincount(m.flatten().to(torch.int64), minlength=base).float()
        expected = m.numel() / base
        assert float(((counts - expected) ** 2 / expected).sum()) < crit


def test_bad_arguments_name_themselves():
    d, n = _digits(2, (3, 4, 4), 64), _nonces(2)
    with pytest.raises(ValueError, match="base must be an int in \\[2, 256\\]"):
        ops.keyed_digit_pad(d, KEY, n, 1)
    with pytest.raises(ValueError, match="base must be an int"):
        ops.keyed_digit_pad(d, KEY, n, 64.0)
    with pytest.raises(ValueError, match="x must hold digits in \\[0, 51\\)"):
        ops.keyed_digit_pad(d, KEY, n, 51)
    with pytest.raises(ValueError, match="one row per nonce"):
        ops.keyed_digit_pad(d, KEY, _nonces(3), 64)
    with pytest.raises(TypeError, match="x must have dtype uint8"):
        ops.keyed_digit_pad(d.float(), KEY, n, 64)
    with pytest.raises(ValueError, match="key must be 32 bytes"):
        ops.keyed_digit_pad(d, b"short", n, 64)


def test_opcheck(device):
    d, n = _digits(2, (3, 5, 7), 64).to(device), _nonces(2).to(device)
    k = ops.key_tensor(KEY, device)
    for inverse in (False, True):
        torch.library.opcheck(
            torch.ops.ric.keyed_digit_pad.default,
            (k, n, d.reshape(2, -1), 64, inverse),
            test_utils=("test_schema", "test_faketensor"),
        )


def test_reference_is_used_by_the_reference_backend():
    d, n = _digits(1, (3, 4, 4), 64), _nonces(1)
    k = ops.key_tensor(KEY)
    assert torch.equal(
        ops.keyed_digit_pad(d, KEY, n, 64, backend="torch").reshape(1, -1),
        _torch_impl.keyed_digit_pad(k, n, d.reshape(1, -1), 64, False),
    )
