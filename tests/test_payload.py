"""The share's digit layout (ric_ext.payload): exact packing, the lossy fallback's quality, and
corrupted digits that are refused, never decoded into another image."""

import math

import numpy as np
import pytest

from ric_ext import payload
from ric_ext.errors import IntegrityError


def _smooth(b, shape, seed=0):
    g = np.random.default_rng(seed)
    c, h, w = shape
    base = g.integers(0, 200, (b, c, 1, 1))
    ramp = (np.arange(h)[:, None] + np.arange(w)[None, :])[None, None]
    return ((base + ramp + g.integers(0, 3, (b, c, h, w))) % 256).astype(np.uint8)


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def test_blocks_and_capacity_known_values():
    # base 64: 3 bytes are exactly 4 digits; base 51: 7 bytes in 10 digits (51^10 > 2^56);
    # base 85: 4 bytes in 5 digits; base 128: 7 bytes in 8 digits.
    assert payload._block(64) == (3, 4)
    assert payload._block(51) == (7, 10)
    assert payload._block(85) == (4, 5)
    assert payload._block(128) == (7, 8)
    lay = payload.layout(64, (3, 32, 32))
    # 3072 digits: 1 flag, 2 length digits (64^2 = 4096 > the 2304 bytes that could fit), 767 blocks
    assert (lay.n, lay.length_digits, lay.capacity) == (3072, 2, 767 * 3)
    assert payload.digits_for(256**3, 64) == 4 and payload.digits_for(1, 64) == 1
    assert payload.layout(64, (4, 8, 8)).capacity == 0  # the codec stores 1 or 3 channels only


@pytest.mark.parametrize("base", [51, 64, 85, 128])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 33, 31), (3, 9, 7)])
def test_lossless_round_trip(base, shape):
    imgs = _smooth(5, shape)
    lay = payload.layout(base, shape)
    pl = [payload.compress(i, lay) for i in imgs]
    digits, lossless = payload.pack(imgs, lay, pl)
    assert digits.shape == (5, lay.n) and int(digits.max()) < base
    out, back = payload.unpack(digits, lay)
    assert np.array_equal(back, lossless)
    for o, i, ll in zip(out, imgs, lossless):
        assert np.array_equal(o, i) if ll else _psnr(o, i) > 44.8


@pytest.mark.parametrize("base,floor", [(51, 44.8), (64, 46.3), (85, 49.7), (128, 51.1)])
def test_noise_takes_the_lossy_digits_at_their_quality(base, floor):
    # Uniform noise does not compress: every image falls back to one digit per subpixel. Its error is
    # the quantiser's: 256 values in `base` levels, each read back as its level's integer middle
    # (base 64: levels of 4 values, errors -1..2, MSE 1.5, 46.4 dB; base 51: levels of 5 or 6 values,
    # 45.05 dB; the floor is 44.8 dB at base 51). 8 images of 3x32x32 = 24,576 subpixels.
    imgs = np.random.default_rng(1).integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    lay = payload.layout(base, (3, 32, 32))
    digits, lossless = payload.pack(imgs, lay, [payload.compress(i, lay) for i in imgs])
    assert not lossless.any()
    assert (digits[:, 0] != base - 1).all()  # the lossy mode never writes the flag
    out, back = payload.unpack(digits, lay)
    assert not back.any()
    assert _psnr(np.stack(out), imgs) > floor


def test_quantiser_reads_each_level_back_inside_it():
    for levels in (50, 51, 63, 64, 127):
        level, value = payload._quantiser(levels)
        assert level.min() == 0 and level.max() == levels - 1
        assert (np.diff(level.astype(int)) >= 0).all()
        assert (level[value] == np.arange(levels)).all()  # the value of a level quantises back to it


def test_corrupted_digits_are_refused_not_decoded():
    imgs = _smooth(1, (3, 32, 32))
    lay = payload.layout(64, (3, 32, 32))
    digits, lossless = payload.pack(imgs, lay, [payload.compress(imgs[0], lay)])
    assert lossless.all()
    cases = []
    long = digits.copy()
    long[0, 1:3] = 63  # a length beyond the capacity
    cases.append(long)
    zero = digits.copy()
    zero[0, 1:3] = 0
    cases.append(zero)
    body = digits.copy()
    body[0, 10:40] = (body[0, 10:40] + 17) % 64  # the bitstream's header and first bytes scrambled
    cases.append(body)
    rnd = np.random.default_rng(0).integers(0, 64, digits.shape, dtype=np.uint8)
    rnd[0, 0] = 63  # random digits that claim to be lossless: what the wrong key gives 1 time in 64
    cases.append(rnd)
    for bad in cases:
        out, ll = payload.unpack(bad, lay)
        assert ll[0] and isinstance(out[0], IntegrityError)


def test_bytes_digits_conversion_is_exact_and_checks_its_range():
    lay = payload.layout(51, (3, 16, 16))
    data = np.random.default_rng(2).integers(0, 256, (3, lay.blocks * lay.block_bytes), dtype=np.uint8)
    digits = payload._bytes_to_digits(data, lay)
    assert int(digits.max()) < 51
    back, ok = payload._digits_to_bytes(digits, lay)
    assert ok.all() and np.array_equal(back, data)
    digits[1, : lay.block_digits] = 50  # 51^10 - 1 > 2^56 - 1: not the digits of any 7 bytes
    assert not payload._digits_to_bytes(digits, lay)[1][1]
