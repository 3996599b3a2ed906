"""Philox4x32-10: Random123 known answers, and the mask's in-kernel dither."""

import pytest
import torch
from conftest import needs_cuda

from ric_ext import _native, ops
from ric_ext.ops import _torch_impl

# Random123's kat_vectors for philox4x32_10: (counter, key) -> output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_native_header_kat(ctr, key, expected):
    assert tuple(_native._C.philox4x32_10(list(ctr), list(key))) == expected


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_reference_kat(ctr, key, expected):
    out = _torch_impl.philox4x32_10(torch.tensor([ctr], dtype=torch.int64), torch.tensor([key], dtype=torch.int64))
    assert tuple(out[0].tolist()) == expected


def _dither_from_mask(n, seed, device):
    # With e = z = 0.5 the pre-quantiser value is 127.5 + u exactly, so the
    # float output reveals the dither u (127.5 + u is exact in float32).
    e = torch.full((n,), 0.5, device=device)
    c = ops.mask(e, e, 0.8, quantize="train", seed=seed)
    return (c.double() * 255 - 127.5).float()


@pytest.mark.parametrize("n", [1, 3, 4, 5, 1001])
def test_dither_stream_matches_reference(n, device):
    seed = torch.tensor([0x1234_5678_9ABC_DEF0, 77], dtype=torch.int64, device=device)
    got = _dither_from_mask(n, seed, device)
    want = _torch_impl.dither(n, seed)
    torch.testing.assert_close(got, want, rtol=0, atol=2**-16)  # q/255*255 round trip in double
    assert want.min() >= -0.5 and want.max() < 0.5


def test_dither_depends_on_seed_and_offset():
    a = _torch_impl.dither(64, torch.tensor([1, 0]))
    assert not torch.equal(a, _torch_impl.dither(64, torch.tensor([2, 0])))
    assert not torch.equal(a, _torch_impl.dither(64, torch.tensor([1, 1])))


@needs_cuda
def test_dither_cpu_cuda_bit_identity():
    e = torch.rand(4, 3, 33, 31, generator=torch.Generator().manual_seed(0))
    z = torch.rand(4, 3, 33, 31, generator=torch.Generator().manual_seed(1))
    seed = torch.tensor([123456789, 42])
    a = ops.mask(e, z, quantize="train", seed=seed)
    b = ops.mask(e.cuda(), z.cuda(), quantize="train", seed=seed.cuda()).cpu()
    assert torch.equal(a, b)
