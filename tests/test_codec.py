"""The share's lossless codec (ric_ext.codec): exact round trips, either wrapper decodes the other's
bitstream, and every malformed payload is an IntegrityError (never a crash or a huge allocation)."""

import importlib.util

import numpy as np
import pytest

from ric_ext import codec
from ric_ext.errors import IntegrityError

HAS_IMAGECODECS = importlib.util.find_spec("imagecodecs") is not None
BACKENDS = ["pillow"] + (["imagecodecs"] if HAS_IMAGECODECS else [])
# grey and colour, 1x1, odd sizes, a non-square one
SHAPES = [(1, 1, 1), (3, 1, 1), (3, 7, 5), (1, 33, 31), (3, 32, 32), (3, 17, 64)]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    monkeypatch.setenv("RIC_CODEC", "pillow" if request.param == "pillow" else "")
    assert codec.backend() == request.param
    return request.param


def _image(shape, seed=0, smooth=True):
    g = np.random.default_rng(seed)
    if not smooth:
        return g.integers(0, 256, shape, dtype=np.uint8)
    c, h, w = shape
    ramp = (np.arange(h)[:, None] * 3 + np.arange(w)[None, :] * 5) % 256
    return np.ascontiguousarray(np.stack([(ramp + 40 * k) % 256 for k in range(c)]).astype(np.uint8))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("effort", range(len(codec.EFFORTS)))
def test_round_trip_is_exact(backend, shape, effort):
    for smooth in (True, False):
        img = _image(shape, smooth=smooth)
        data = codec.encode(img, effort)
        assert codec.stated_size(data) == (shape[2], shape[1])
        assert np.array_equal(codec.decode(data, shape), img)


@pytest.mark.skipif(not HAS_IMAGECODECS, reason="needs imagecodecs (a dependency; absent where it has no wheel)")
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 33, 31)])
def test_either_wrapper_decodes_the_others_bitstream(monkeypatch, shape):
    # The promise behind "decrypts on any machine": a file written where imagecodecs is installed
    # decodes where only Pillow is, and back; both hand the same bitstream to libwebp.
    img = _image(shape, seed=3, smooth=False)
    made = {}
    for b in ("pillow", ""):
        monkeypatch.setenv("RIC_CODEC", b)
        made[codec.backend()] = codec.encode(img, 0)
    for b in ("pillow", ""):
        monkeypatch.setenv("RIC_CODEC", b)
        for data in made.values():
            assert np.array_equal(codec.decode(data, shape), img)


def test_malformed_payloads_raise_integrity_errors(backend):
    img = _image((3, 16, 16))
    data = codec.encode(img)
    with pytest.raises(IntegrityError, match="not a 16x16 lossless WebP"):
        codec.decode(b"garbage" * 10, (3, 16, 16))
    with pytest.raises(IntegrityError, match="not a 8x8 lossless WebP"):
        codec.decode(data, (3, 8, 8))  # a stated size other than the ciphertext's is refused before decoding
    broken = bytearray(data)
    for i in range(30, len(broken)):
        broken[i] ^= 0x5A
    with pytest.raises(IntegrityError):
        codec.decode(bytes(broken), (3, 16, 16))
    with pytest.raises(IntegrityError):
        codec.decode(data[: len(data) // 2], (3, 16, 16))
    with pytest.raises(IntegrityError, match="unequal colour channels"):
        codec.decode(data, (1, 16, 16))  # a colour payload is not a grey image


def test_a_huge_stated_size_is_never_decoded(backend):
    # A payload that states 16383 x 16383 pixels would make the decoder allocate ~1 GB: it is refused
    # from its header.
    big = codec.encode(np.zeros((3, 2000, 1), dtype=np.uint8))
    assert codec.stated_size(big) == (1, 2000)
    with pytest.raises(IntegrityError, match="not a 1x1 lossless WebP"):
        codec.decode(big, (3, 1, 1))


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match="C in \\(1, 3\\)"):
        codec.encode(np.zeros((4, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        codec.encode(np.zeros((3, 8, 8), dtype=np.float32))
