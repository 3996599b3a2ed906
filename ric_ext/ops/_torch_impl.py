"""Pure-PyTorch references of every fused op (the ``backend="torch"`` path).

Each function mirrors the order of floating-point operations of the native
kernel (csrc/common/elementwise.h), so exact ops compare bit-for-bit. They are
written for clarity, not speed: integer generators use int64 tensors holding
32-bit words, and divisions use a full tensor divisor so that no backend turns
them into multiplications by a reciprocal.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

MASK32 = 0xFFFFFFFF
QUANT_NONE, QUANT_TRAIN, QUANT_EVAL = 0, 1, 2
_TWO_POW_M24 = 2.0**-24
# Same float32 value as kAtanhClamp in csrc/common/chacha20.h: 1.0f - 1e-6f.
ATANH_CLAMP = float(np.float32(1.0) - np.float32(1e-6))


def _div(a: torch.Tensor, b: float) -> torch.Tensor:
    return torch.true_divide(a, torch.full_like(a, b))


# ---------------------------------------------------------------------------
# ChaCha20 (RFC 8439)
# ---------------------------------------------------------------------------
def _rotl(x: torch.Tensor, n: int) -> torch.Tensor:
    return ((x << n) | (x >> (32 - n))) & MASK32


def _le_words(b: torch.Tensor) -> torch.Tensor:
    """(..., 4k) uint8 -> (..., k) int64 little-endian 32-bit words."""
    b = b.to(torch.int64).reshape(*b.shape[:-1], b.shape[-1] // 4, 4)
    return b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16) | (b[..., 3] << 24)


def chacha20_words(key: torch.Tensor, nonces: torch.Tensor, nblocks: int, counter: int = 0) -> torch.Tensor:
    """Keystream words: key (32,) uint8, nonces (B, 12) uint8 -> (B, nblocks, 16) int64 in [0, 2^32)."""
    device = nonces.device
    kw = _le_words(key.to(device))  # (8,)
    nw = _le_words(nonces)  # (B, 3)
    B = nonces.shape[0]
    ctr = (torch.arange(nblocks, dtype=torch.int64, device=device) + counter) & MASK32
    const = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    shape = (B, nblocks)
    s = [torch.full(shape, c, dtype=torch.int64, device=device) for c in const]
    s += [kw[i].expand(shape) for i in range(8)]
    s += [ctr.expand(shape)]
    s += [nw[:, i : i + 1].expand(shape) for i in range(3)]
    x = [t.clone() for t in s]

    def qr(a: int, b: int, c: int, d: int) -> None:
        x[a] = (x[a] + x[b]) & MASK32
        x[d] = _rotl(x[d] ^ x[a], 16)
        x[c] = (x[c] + x[d]) & MASK32
        x[b] = _rotl(x[b] ^ x[c], 12)
        x[a] = (x[a] + x[b]) & MASK32
        x[d] = _rotl(x[d] ^ x[a], 8)
        x[c] = (x[c] + x[d]) & MASK32
        x[b] = _rotl(x[b] ^ x[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12)
        qr(1, 5, 9, 13)
        qr(2, 6, 10, 14)
        qr(3, 7, 11, 15)
        qr(0, 5, 10, 15)
        qr(1, 6, 11, 12)
        qr(2, 7, 8, 13)
        qr(3, 4, 9, 14)
    return torch.stack([(x[i] + s[i]) & MASK32 for i in range(16)], dim=-1)


def chacha20_keystream(key: torch.Tensor, nonces: torch.Tensor, nbytes: int, counter: int = 0) -> torch.Tensor:
    """(B, nbytes) uint8 keystream bytes."""
    nblocks = (nbytes + 63) // 64
    w = chacha20_words(key, nonces, nblocks, counter)  # (B, J, 16)
    shifts = torch.tensor([0, 8, 16, 24], device=w.device)
    b = (w.unsqueeze(-1) >> shifts) & 0xFF
    return b.reshape(nonces.shape[0], nblocks * 64)[:, :nbytes].to(torch.uint8)


def keyed_uniform(
    key: torch.Tensor, nonces: torch.Tensor, n: int, counter: int = 0, tanh_space: bool = False
) -> torch.Tensor:
    """(B, n) float32 uniforms in [0, 1) (24 bits each), or atanh(2u-1) if tanh_space."""
    nblocks = (n + 15) // 16
    w = chacha20_words(key, nonces, nblocks, counter).reshape(nonces.shape[0], nblocks * 16)[:, :n]
    u = (w >> 8).to(torch.float32) * _TWO_POW_M24
    return to_tanh_space(u) if tanh_space else u


def to_tanh_space(u: torch.Tensor) -> torch.Tensor:
    """atanh(clamp(2u - 1, -c, c)) with c = 1 - 1e-6 (float32), finite for u in [0, 1]."""
    return torch.atanh(torch.clamp(u * 2.0 - 1.0, -ATANH_CLAMP, ATANH_CLAMP))


# ---------------------------------------------------------------------------
# Philox4x32-10 and the mask's dither
# ---------------------------------------------------------------------------
def _mulhilo(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Split b into 16-bit halves so no int64 product overflows.
    t1 = a * (b & 0xFFFF)
    t2 = a * (b >> 16)
    s = t1 + ((t2 & 0xFFFF) << 16)
    return (s >> 32) + (t2 >> 16), s & MASK32


def philox4x32_10(ctr: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """ctr (..., 4), key (..., 2) int64 words in [0, 2^32) -> (..., 4) int64 words."""
    c = [ctr[..., i] for i in range(4)]
    k0, k1 = key[..., 0], key[..., 1]
    for r in range(10):
        if r > 0:
            k0 = (k0 + 0x9E3779B9) & MASK32
            k1 = (k1 + 0xBB67AE85) & MASK32
        hi0, lo0 = _mulhilo(0xD2511F53, c[0])
        hi1, lo1 = _mulhilo(0xCD9E8D57, c[2])
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
    return torch.stack(c, dim=-1)


def _split64(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 (two's complement) -> (low, high) 32-bit words."""
    return v & MASK32, (v >> 32) & MASK32


def dither(n: int, seed: torch.Tensor, device: Optional[torch.device] = None) -> torch.Tensor:
    """The mask's training dither for n elements: seed = int64 (2,) [seed, offset] -> (n,) float32 in [-0.5, 0.5)."""
    device = device or seed.device
    seed = seed.to(device)
    groups = torch.arange((n + 3) // 4, dtype=torch.int64, device=device)
    g_lo, g_hi = _split64(groups)
    o_lo, o_hi = _split64(seed[1].expand_as(groups))
    k_lo, k_hi = _split64(seed[0].expand_as(groups))
    w = philox4x32_10(torch.stack([g_lo, g_hi, o_lo, o_hi], -1), torch.stack([k_lo, k_hi], -1))
    return ((w.reshape(-1)[:n] >> 8).to(torch.float32) * _TWO_POW_M24) - 0.5


# ---------------------------------------------------------------------------
# Mask / unmask
# ---------------------------------------------------------------------------
def mask_pre(e: torch.Tensor, z: torch.Tensor, lam: float, mode: int, seed: Optional[torch.Tensor]) -> torch.Tensor:
    """Pre-clamp quantiser input v (see csrc/common/elementwise.h: mask_pre)."""
    x = e * (1.0 - lam) + z * lam
    if mode == QUANT_NONE:
        return x
    v = x * 255.0
    if mode == QUANT_TRAIN:
        return v + dither(e.numel(), seed, e.device).reshape(e.shape).to(e.dtype)
    return torch.round(v)


def mask(e: torch.Tensor, z: torch.Tensor, lam: float, mode: int, seed: Optional[torch.Tensor]) -> torch.Tensor:
    pre = mask_pre(e, z, lam, mode, seed)
    return pre if mode == QUANT_NONE else _div(torch.clamp(pre, 0.0, 255.0), 255.0)


def mask_uint8(e: torch.Tensor, z: torch.Tensor, lam: float) -> torch.Tensor:
    q = torch.clamp(mask_pre(e, z, lam, QUANT_EVAL, None), 0.0, 255.0)
    return torch.nan_to_num(q, nan=0.0).to(torch.uint8)


def mask_backward(
    grad: torch.Tensor, e: torch.Tensor, z: torch.Tensor, lam: float, mode: int, seed: Optional[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Straight-through quantiser; zero gradient where the clamp is active."""
    ge, gz = grad * (1.0 - lam), grad * lam
    if mode == QUANT_NONE:
        return ge, gz
    pre = mask_pre(e, z, lam, mode, seed)
    passes = (pre >= 0) & (pre <= 255)
    zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
    return torch.where(passes, ge, zero), torch.where(passes, gz, zero)


def unmask(c: torch.Tensor, z: torch.Tensor, lam: float) -> torch.Tensor:
    if c.dtype == torch.uint8:
        c = _div(c.to(z.dtype), 255.0)
    return (c - z * lam) * (1.0 / (1.0 - lam))


# ---------------------------------------------------------------------------
# C&W margin
# ---------------------------------------------------------------------------
def cw_margin(logits: torch.Tensor, labels: torch.Tensor, kappa: float, targeted: bool) -> torch.Tensor:
    """Differentiable reference; the competing class is the first index attaining the max."""
    zy = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.masked_fill(torch.nn.functional.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    best_val = other.max(dim=1, keepdim=True).values
    j = (other == best_val).to(torch.uint8).argmax(dim=1)
    best = logits.gather(1, j[:, None]).squeeze(1)
    margin = best - zy if targeted else zy - best
    return torch.clamp_min(margin, -kappa)


# ---------------------------------------------------------------------------
# Tanh-space Adam step
# ---------------------------------------------------------------------------
def adam_tanh_step(
    w: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    grad: torch.Tensor,
    active: torch.Tensor,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    grad_wrt_adv: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Functional: returns (w', m', v', adv) with rows where active is False unchanged."""
    g = grad
    if grad_wrt_adv:
        t = torch.tanh(w)
        g = g * ((1.0 - t * t) * 0.5)
    w1 = 1.0 - beta1
    m2 = m + w1 * (g - m) if w1 < 0.5 else g - (g - m) * (1.0 - w1)
    v2 = v * beta2 + ((1.0 - beta2) * g) * g
    neg_step_size = -(lr / (1.0 - beta1**step))
    bc2_sqrt = (1.0 - beta2**step) ** 0.5
    denom = _div(v2.sqrt(), bc2_sqrt) + eps
    w2 = w + torch.true_divide(neg_step_size * m2, denom)
    act = active.reshape(-1, *([1] * (w.dim() - 1))).bool()
    w2, m2, v2 = torch.where(act, w2, w), torch.where(act, m2, m), torch.where(act, v2, v)
    adv = (torch.tanh(w2) + 1.0) * 0.5
    return w2, m2, v2, adv


def keyed_pad(key: torch.Tensor, nonces: torch.Tensor, x: torch.Tensor, a: float, inverse: bool) -> torch.Tensor:
    """The keyed pad of the "pad" scheme on (B, n) float32 rows (kernel: pad_val / unpad_val).

    Forward: s = (a*x + k) mod 1. Inverse: d = (r - k) mod 1, unwrapped at cut = a + (1 - a)/2
    (values above it are the small negatives), x = clamp(d / a, 0, 1). k = keyed_uniform(key, nonces).
    """
    k = keyed_uniform(key, nonces, x.shape[1])
    af = torch.tensor(a, dtype=torch.float32, device=x.device)
    if not inverse:
        v = x * af + k
        return torch.where(v >= 1.0, v - 1.0, v)
    d = x - k
    d = torch.where(d < 0, d + 1.0, torch.where(d >= 1.0, d - 1.0, d))
    cut = torch.tensor(a + (1.0 - a) / 2, dtype=torch.float32, device=x.device)
    d = torch.where(d > cut, d - 1.0, d)
    return torch.clamp(d / af, 0.0, 1.0)


def keyed_digits(key: torch.Tensor, nonces: torch.Tensor, n: int, base: int) -> torch.Tensor:
    """(B, n) int64 keyed digits in [0, base): floor(word * base / 2^32) of keystream words from block 0."""
    nblocks = (n + 15) // 16
    w = chacha20_words(key, nonces, nblocks, 0).reshape(nonces.shape[0], nblocks * 16)[:, :n]
    return (w * base) >> 32


def keyed_digit_pad(key: torch.Tensor, nonces: torch.Tensor, x: torch.Tensor, base: int, inverse: bool) -> torch.Tensor:
    """The keyed digit pad of the "digits" scheme on (B, n) uint8 rows (kernel: digit_pad_val / digit_unpad_val).

    Forward: (d + k) mod base. Inverse: ((c mod base) - k) mod base. k = keyed_digits(key, nonces).
    """
    k = keyed_digits(key, nonces, x.shape[1], base)
    v = x.to(torch.int64) % base
    out = (v - k + base) % base if inverse else (v + k) % base
    return out.to(torch.uint8)
