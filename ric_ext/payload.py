"""What the "digits" scheme's share carries: an 8-bit image as n = C*H*W base-``base`` digits,
one per ciphertext subpixel (docs/scheme.md#digits). Integer arithmetic only.

Layout of an image's digits, before the keyed pad:

- **lossless**: digit 0 is ``base - 1`` (the flag); digits 1..h hold the payload's length in
  bytes (base ``base``, least significant first); then the payload, the image losslessly
  compressed (:mod:`ric_ext.codec`), in blocks of ``block_bytes`` bytes written as
  ``block_digits`` digits each (big-endian bytes, least significant digit first); then zeros.
- **lossy** (an image whose compressed form does not fit, e.g. noise): digit i is subpixel i
  quantised to ``base`` levels, except digit 0, which takes ``base - 1`` levels so that it
  never equals the flag. At base 64 that is 46.4 dB on uniform noise.

Every digit is then padded with the key (:func:`ric_ext.ops.keyed_digit_pad`), so whatever the
mode, the length or the image, the padded digits are uniform: the layout leaks nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from . import codec
from .errors import IntegrityError


def digits_for(value: int, base: int) -> int:
    """The number of base-``base`` digits that can hold every integer below ``value`` (>= 1)."""
    d, reach = 1, base
    while reach < value:
        d, reach = d + 1, reach * base
    return d


def _block(base: int) -> Tuple[int, int]:
    """(bytes, digits) per block: the densest packing with at most 7 bytes (values fit a uint64)."""
    best = (0.0, 1, 8)
    for b in range(1, 8):
        d = digits_for(256**b, base)
        if b / d > best[0] + 1e-12:
            best = (b / d, b, d)
    return best[1], best[2]


@dataclass(frozen=True)
class Layout:
    """Where the payload sits among the digits of one image of ``shape`` at ``base``."""

    base: int
    shape: Tuple[int, int, int]
    n: int  #: digits per image (C*H*W)
    length_digits: int  #: h: digits of the payload-length field
    block_bytes: int
    block_digits: int
    capacity: int  #: the longest payload (bytes) that fits; 0 when none does

    @property
    def blocks(self) -> int:
        return self.capacity // self.block_bytes


@functools.lru_cache(maxsize=64)
def layout(base: int, shape: Tuple[int, int, int]) -> Layout:
    """The layout for images of ``shape`` (C, H, W) at digit base ``base`` (3..256)."""
    if not 3 <= base <= 256:
        raise ValueError(f"base must be in [3, 256], got {base}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (C, H, W) with positive sizes, got {shape}")
    n = shape[0] * shape[1] * shape[2]
    bb, bd = _block(base)
    h = digits_for((n // bd) * bb + 1, base)
    blocks = max((n - 1 - h) // bd, 0)
    capacity = blocks * bb if shape[0] in codec.CHANNELS else 0
    return Layout(base, shape, n, h, bb, bd, capacity)


# -- lossy levels -------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _quantiser(levels: int) -> Tuple[np.ndarray, np.ndarray]:
    """(level of each byte value, byte value of each level): floor(v * levels / 256), and the
    integer middle of each level's range (the least squared error an integer can have)."""
    v = np.arange(256, dtype=np.int64)
    level = (v * levels) >> 8
    lo = np.array([int(np.flatnonzero(level == k)[0]) for k in range(levels)])
    hi = np.array([int(np.flatnonzero(level == k)[-1]) for k in range(levels)])
    return level.astype(np.uint8), ((lo + hi) // 2).astype(np.uint8)


def lossy_digits(images: np.ndarray, base: int) -> np.ndarray:
    """(B, C, H, W) uint8 -> (B, n) digits of the lossy mode."""
    flat = images.reshape(images.shape[0], -1)
    out = _quantiser(base)[0][flat]
    out[:, 0] = _quantiser(base - 1)[0][flat[:, 0]]
    return out


def lossy_image(digits: np.ndarray, base: int) -> np.ndarray:
    """(B, n) digits of the lossy mode -> (B, n) uint8 subpixels (any digit in [0, base) is valid)."""
    out = _quantiser(base)[1][np.minimum(digits, base - 1)]
    out[:, 0] = _quantiser(base - 1)[1][np.minimum(digits[:, 0], base - 2)]
    return out


# -- bytes <-> digits -----------------------------------------------------------------------
def _bytes_to_digits(data: np.ndarray, lay: Layout) -> np.ndarray:
    """(B, blocks * block_bytes) uint8 -> (B, blocks * block_digits) digits."""
    B = data.shape[0]
    blocks = data.reshape(B, -1, lay.block_bytes).astype(np.uint64)
    value = np.zeros(blocks.shape[:2], dtype=np.uint64)
    for i in range(lay.block_bytes):
        value = (value << np.uint64(8)) | blocks[:, :, i]
    out = np.empty((*value.shape, lay.block_digits), dtype=np.uint8)
    base = np.uint64(lay.base)
    for j in range(lay.block_digits):
        out[:, :, j] = (value % base).astype(np.uint8)
        value //= base
    return out.reshape(B, -1)


def _digits_to_bytes(digits: np.ndarray, lay: Layout) -> Tuple[np.ndarray, np.ndarray]:
    """(B, blocks * block_digits) digits -> ((B, blocks * block_bytes) uint8, (B,) bool: every block in range)."""
    B = digits.shape[0]
    d = digits.reshape(B, -1, lay.block_digits).astype(np.uint64)
    value = np.zeros(d.shape[:2], dtype=np.uint64)
    for j in reversed(range(lay.block_digits)):
        value = value * np.uint64(lay.base) + d[:, :, j]
    ok = (value < np.uint64(256**lay.block_bytes)).all(axis=1)
    out = np.empty((*value.shape, lay.block_bytes), dtype=np.uint8)
    for i in reversed(range(lay.block_bytes)):
        out[:, :, i] = (value & np.uint64(0xFF)).astype(np.uint8)
        value >>= np.uint64(8)
    return out.reshape(B, -1), ok


def _length_digits(lengths: np.ndarray, lay: Layout) -> np.ndarray:
    out = np.empty((lengths.shape[0], lay.length_digits), dtype=np.uint8)
    v = lengths.astype(np.int64)
    for j in range(lay.length_digits):
        out[:, j] = v % lay.base
        v //= lay.base
    return out


# -- packing ----------------------------------------------------------------------------------
def compress(image: np.ndarray, lay: Layout) -> Optional[bytes]:
    """The codec's bytes of one (C, H, W) image if they fit ``lay``, else None (the lossy mode).

    The fast setting first; the slower, smaller one only when the fast one is at most a quarter
    too long (it saves ~10%: docs/benchmarks.md#codec).
    """
    if lay.capacity <= 0:
        return None
    for effort in range(len(codec.EFFORTS)):
        data = codec.encode(image, effort)
        if len(data) <= lay.capacity:
            return data
        if len(data) > 1.25 * lay.capacity:
            return None
    return None


def pack(images: np.ndarray, lay: Layout, payloads: Sequence[Optional[bytes]]) -> Tuple[np.ndarray, np.ndarray]:
    """The digits of a batch: (B, C, H, W) uint8 images and each one's payload (:func:`compress`,
    None for the lossy mode) -> ((B, n) uint8 digits, (B,) bool lossless)."""
    B = images.shape[0]
    lossless = np.array([p is not None for p in payloads], dtype=bool)
    digits = lossy_digits(images, lay.base) if not lossless.all() else np.zeros((B, lay.n), dtype=np.uint8)
    if lossless.any():
        rows = np.flatnonzero(lossless)
        data = np.zeros((rows.size, lay.blocks * lay.block_bytes), dtype=np.uint8)
        lengths = np.zeros(rows.size, dtype=np.int64)
        for k, r in enumerate(rows):
            p = payloads[r]
            data[k, : len(p)] = np.frombuffer(p, dtype=np.uint8)
            lengths[k] = len(p)
        h, body = lay.length_digits, lay.blocks * lay.block_digits
        packed = np.zeros((rows.size, lay.n), dtype=np.uint8)
        packed[:, 0] = lay.base - 1
        packed[:, 1 : 1 + h] = _length_digits(lengths, lay)
        packed[:, 1 + h : 1 + h + body] = _bytes_to_digits(data, lay)
        digits[rows] = packed
    return digits, lossless


def unpack(digits: np.ndarray, lay: Layout) -> Tuple[List[object], np.ndarray]:
    """(B, n) digits -> (per image: the (C, H, W) uint8 image, or the IntegrityError that stops it;
    (B,) bool lossless). Lossless payloads are decoded here; nothing is guessed."""
    B = digits.shape[0]
    lossless = digits[:, 0] == lay.base - 1
    out: List[object] = [None] * B
    if (~lossless).any():
        rows = np.flatnonzero(~lossless)
        pix = lossy_image(digits[rows], lay.base).reshape(rows.size, *lay.shape)
        for k, r in enumerate(rows):
            out[r] = pix[k]
    if lossless.any():
        rows = np.flatnonzero(lossless)
        h, body = lay.length_digits, lay.blocks * lay.block_digits
        sub = digits[rows].astype(np.int64)
        lengths = np.zeros(rows.size, dtype=np.int64)
        for j in reversed(range(h)):
            lengths = lengths * lay.base + sub[:, 1 + j]
        data, in_range = _digits_to_bytes(digits[rows][:, 1 + h : 1 + h + body], lay)
        for k, r in enumerate(rows):
            n_bytes = int(lengths[k])
            if lay.capacity == 0 or not in_range[k] or not 0 < n_bytes <= lay.capacity:
                out[r] = IntegrityError("the share's digits are not a valid payload (wrong key, or modified)")
                continue
            used = -(-n_bytes // lay.block_bytes)
            # everything past the payload was written as zeros: a change there is a change too
            if data[k, n_bytes : used * lay.block_bytes].any() or sub[k, 1 + h + used * lay.block_digits :].any():
                out[r] = IntegrityError("the share's digits past the payload are not zero (modified, or the wrong key)")
                continue
            try:
                out[r] = codec.decode(data[k, :n_bytes].tobytes(), lay.shape)
            except IntegrityError as exc:
                out[r] = exc
    return out, lossless
