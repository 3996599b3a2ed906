"""ChaCha20 keystream and keyed uniforms: RFC 8439 known answers, native == reference."""

import numpy as np
import pytest
import torch
from conftest import needs_cuda

from ric_ext import _native, ops
from ric_ext.ops import _torch_impl

RFC_KEY = bytes(range(32))


def _nonce(hexstr: str) -> torch.Tensor:
    return torch.tensor([list(bytes.fromhex(hexstr))], dtype=torch.uint8)


# RFC 8439 section 2.3.2: block function, counter 1.
BLOCK_232 = bytes.fromhex(
    "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
    "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
)
# RFC 8439 section 2.4.2: encryption of the "sunscreen" plaintext, counter 1.
SUNSCREEN = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)
CIPHER_242 = bytes.fromhex(
    "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
    "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
    "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
    "5af90bbf74a35be6b40b8eedf2785e42874d"
)
# RFC 8439 appendix A.1, test vectors #1 (all-zero key and nonce, counter 0)
# and #2 (counter 1).
A1_1 = bytes.fromhex(
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
)
A1_2 = bytes.fromhex(
    "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
    "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f"
)


@pytest.mark.parametrize("backend", ["native", "torch"])
def test_rfc8439_block_function(backend, device):
    ks = ops.chacha20_keystream(RFC_KEY, _nonce("000000090000004a00000000").to(device), 64, counter=1, backend=backend)
    assert bytes(ks[0].cpu().tolist()) == BLOCK_232


def test_rfc8439_block_function_host_entry():
    # The header's block function called directly (the code the kernels inline).
    key = [int.from_bytes(RFC_KEY[4 * i : 4 * i + 4], "little") for i in range(8)]
    nonce_b = bytes.fromhex("000000090000004a00000000")
    nonce = [int.from_bytes(nonce_b[4 * i : 4 * i + 4], "little") for i in range(3)]
    words = _native._C.chacha20_block(key, 1, nonce)
    assert b"".join(w.to_bytes(4, "little") for w in words) == BLOCK_232


@pytest.mark.parametrize("backend", ["native", "torch"])
def test_rfc8439_encryption(backend, device):
    ks = ops.chacha20_keystream(
        RFC_KEY, _nonce("000000000000004a00000000").to(device), len(SUNSCREEN), counter=1, backend=backend
    )
    ct = bytes(a ^ b for a, b in zip(SUNSCREEN, ks[0].cpu().tolist()))
    assert ct == CIPHER_242


@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("counter,expected", [(0, A1_1), (1, A1_2)])
def test_rfc8439_appendix_a1(backend, counter, expected, device):
    ks = ops.chacha20_keystream(
        bytes(32), torch.zeros(1, 12, dtype=torch.uint8, device=device), 64, counter=counter, backend=backend
    )
    assert bytes(ks[0].cpu().tolist()) == expected


def test_keystream_batched_rows_are_independent_streams(device, gen):
    nonces = torch.randint(0, 256, (5, 12), dtype=torch.uint8, generator=gen).to(device)
    batched = ops.chacha20_keystream(RFC_KEY, nonces, 200)
    for b in range(5):
        assert torch.equal(batched[b], ops.chacha20_keystream(RFC_KEY, nonces[b : b + 1], 200)[0])


@pytest.mark.parametrize("shape", [(0,), (1,), (15,), (17,), (3, 5, 7), (3, 32, 32), (1, 7919)])
@pytest.mark.parametrize("batch", [0, 1, 3])
def test_uniform_native_equals_reference_bitwise(shape, batch, device, gen):
    nonces = torch.randint(0, 256, (batch, 12), dtype=torch.uint8, generator=gen).to(device)
    key = torch.randint(0, 256, (32,), dtype=torch.uint8, generator=gen)
    a = ops.keyed_uniform(key, nonces, shape)
    b = ops.keyed_uniform(key, nonces, shape, backend="torch")
    assert a.shape == (batch, *shape) and a.dtype == torch.float32
    assert torch.equal(a, b)  # exact: integer generator + exact 24-bit mapping
    if a.numel():
        assert a.min() >= 0 and a.max() < 1
        # 24 random bits: every value is a multiple of 2^-24.
        assert torch.equal(a * 2**24, torch.floor(a * 2**24))


def test_uniform_is_keystream_words(gen):
    nonces = torch.randint(0, 256, (2, 12), dtype=torch.uint8, generator=gen)
    u = ops.keyed_uniform(RFC_KEY, nonces, 40, counter=3)
    ks = ops.chacha20_keystream(RFC_KEY, nonces, 160, counter=3).numpy()
    words = ks.view("<u4")
    assert np.array_equal(u.numpy(), (words >> 8).astype(np.float32) * np.float32(2**-24))


def test_uniform_statistics():
    # A loose sanity check on 1M draws (mean 0.5, var 1/12): catches a broken
    # mapping, not a statistical test suite.
    u = ops.keyed_uniform(RFC_KEY, torch.zeros(1, 12, dtype=torch.uint8), 1_000_000)
    assert abs(u.mean().item() - 0.5) < 2e-3
    assert abs(u.var().item() - 1 / 12) < 2e-3


@pytest.mark.parametrize("shape", [(1,), (3, 5, 7), (3, 32, 32)])
def test_tanh_space_matches_reference(shape, device, gen):
    nonces = torch.randint(0, 256, (3, 12), dtype=torch.uint8, generator=gen).to(device)
    w = ops.keyed_uniform(RFC_KEY, nonces, shape, tanh_space=True)
    ref = ops.keyed_uniform(RFC_KEY, nonces, shape, tanh_space=True, backend="torch")
    u = ops.keyed_uniform(RFC_KEY, nonces, shape)
    # atanh comes from different libm implementations (glibc / CUDA / ATen's
    # vectorised one); each is accurate to a few ulp, so allow 4 ulp of w's
    # magnitude (|w| <= 7.3 after the clamp).
    torch.testing.assert_close(w, ref, rtol=5e-7, atol=4 * 2**-23 * 8)
    assert torch.isfinite(w).all()
    torch.testing.assert_close((torch.tanh(w) + 1) / 2, u, rtol=0, atol=1e-6)


def test_tanh_space_is_finite_at_zero():
    # Find a nonce/word with u == 0 is impractical; test the clamp path directly.
    w = _torch_impl.to_tanh_space(torch.tensor([0.0, 1.0 - 2**-24, 0.5]))
    assert torch.isfinite(w).all() and w[2] == 0


@needs_cuda
def test_cpu_cuda_bit_identity(gen):
    nonces = torch.randint(0, 256, (7, 12), dtype=torch.uint8, generator=gen)
    a = ops.keyed_uniform(RFC_KEY, nonces, (3, 33, 31))
    b = ops.keyed_uniform(RFC_KEY, nonces.cuda(), (3, 33, 31)).cpu()
    assert torch.equal(a, b)
    assert torch.equal(
        ops.chacha20_keystream(RFC_KEY, nonces, 999), ops.chacha20_keystream(RFC_KEY, nonces.cuda(), 999).cpu()
    )


def test_bad_arguments_name_the_argument():
    nonces = torch.zeros(2, 12, dtype=torch.uint8)
    with pytest.raises(ValueError, match="key must be 32 bytes"):
        ops.keyed_uniform(b"short", nonces, 4)
    with pytest.raises(TypeError, match="key must be bytes or a uint8 tensor"):
        ops.keyed_uniform("a string key", nonces, 4)
    with pytest.raises(TypeError, match="key must be bytes or a uint8 tensor"):
        ops.keyed_uniform(torch.zeros(32, dtype=torch.int32), nonces, 4)
    with pytest.raises(ValueError, match=r"nonces must have shape \(B, 12\)"):
        ops.keyed_uniform(RFC_KEY, torch.zeros(2, 8, dtype=torch.uint8), 4)
    with pytest.raises(TypeError, match="nonces must have dtype uint8"):
        ops.keyed_uniform(RFC_KEY, torch.zeros(2, 12), 4)
    with pytest.raises(ValueError, match="counter"):
        ops.keyed_uniform(RFC_KEY, nonces, 64, counter=2**32 - 2)
    with pytest.raises(ValueError, match="shape must be non-negative"):
        ops.keyed_uniform(RFC_KEY, nonces, (-1, 3))
    with pytest.raises(ValueError, match="backend"):
        ops.keyed_uniform(RFC_KEY, nonces, 4, backend="cuda")


def test_key_never_in_error_messages():
    secret = bytes(range(100, 131))  # 31 bytes: rejected
    with pytest.raises(ValueError) as exc:
        ops.keyed_uniform(secret, torch.zeros(1, 12, dtype=torch.uint8), 4)
    assert secret.hex() not in str(exc.value) and repr(secret) not in str(exc.value)


def test_opcheck_keystream_ops(device):
    nonces = torch.randint(0, 256, (3, 12), dtype=torch.uint8, device=device)
    key = torch.arange(32, dtype=torch.uint8, device=device)
    torch.library.opcheck(torch.ops.ric.keyed_uniform.default, (key, nonces, 50, 0, False))
    torch.library.opcheck(torch.ops.ric.keyed_uniform.default, (key, nonces, 50, 0, True))
    torch.library.opcheck(torch.ops.ric.chacha20_keystream.default, (key, nonces, 100, 1))


def test_compile_fullgraph_uniform():
    nonces = torch.randint(0, 256, (3, 12), dtype=torch.uint8)
    key = torch.arange(32, dtype=torch.uint8)

    @torch.compile(fullgraph=True)
    def f(k, n):
        return torch.ops.ric.keyed_uniform(k, n, 3 * 8 * 8, 0, False).reshape(3, 3, 8, 8) * 2 - 1

    assert torch.equal(f(key, nonces), ops.keyed_uniform(key, nonces, (3, 8, 8)) * 2 - 1)
