"""The lossless image codec inside the "digits" scheme's share: WebP lossless (RFC 9649).

Why WebP lossless, and not JPEG-XL: docs/decisions.md (measured sizes and speeds in
docs/benchmarks.md). Two wrappers of the same libwebp are used, whichever is installed:
imagecodecs (a dependency; it releases the GIL, so decoding runs on every core) else Pillow
(the fallback where imagecodecs has no wheel). Both write the same bitstream for the same settings, and a
lossless bitstream decodes to the same pixels with any conforming decoder, so a file made
with one decodes with the other, on any machine (tests/test_codec.py).

Grey images are stored as RGB with equal channels (WebP has no grey mode); decoding checks
that the channels are equal. Only 1- and 3-channel images are supported; others take the
scheme's lossy path.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Optional, Sequence, Tuple

import numpy as np

from .errors import IntegrityError

#: The name the ciphertext header records.
NAME = "webp-lossless"
#: (method, quality) per effort level: the fast setting first, the slower and ~10% smaller one only for
#: images whose fast encoding does not fit the share. (6, 100) is 5-40x slower still and no smaller
#: on SVHN, LFW or CIFAR-10 (python/benchmarks/bench_codecs.py; docs/benchmarks.md#codec).
EFFORTS: Tuple[Tuple[int, int], ...] = ((0, 0), (4, 75))
#: Channel counts the codec stores.
CHANNELS = (1, 3)

_VP8L_SIGNATURE = 0x2F


def backend() -> str:
    """'imagecodecs' when it is importable (and RIC_CODEC is not 'pillow'), else 'pillow'."""
    if os.environ.get("RIC_CODEC", "").lower() != "pillow":
        try:
            import imagecodecs  # noqa: F401

            return "imagecodecs"
        except ImportError:
            pass
    return "pillow"


def check_available() -> None:
    """Raise a clear error when no WebP encoder/decoder is available (Pillow built without libwebp)."""
    if backend() == "imagecodecs":
        return
    from PIL import features

    if not features.check("webp"):
        raise RuntimeError(
            "this Pillow was built without WebP support, which the digits scheme's lossless codec needs; "
            "install a Pillow wheel from PyPI, or imagecodecs (`pip install imagecodecs`)"
        )


def _rgb(image: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 with C in CHANNELS -> (H, W, 3) contiguous."""
    hwc = image.transpose(1, 2, 0)
    if hwc.shape[2] == 1:
        hwc = np.repeat(hwc, 3, axis=2)
    # a fresh copy: ascontiguousarray keeps the odd strides of size-1 axes, which imagecodecs refuses
    return np.array(hwc, dtype=np.uint8, order="C", copy=True)


def encode(image: np.ndarray, effort: int = 0) -> bytes:
    """WebP-lossless bytes of a (C, H, W) uint8 image, C in (1, 3), at ``EFFORTS[effort]``."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[0] not in CHANNELS:
        raise ValueError(f"image must be (C, H, W) uint8 with C in {CHANNELS}, got {image.dtype} {image.shape}")
    method, quality = EFFORTS[effort]
    rgb = _rgb(image)
    if backend() == "imagecodecs":
        import imagecodecs

        return bytes(imagecodecs.webp_encode(rgb, lossless=True, level=quality, method=method))
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="WEBP", lossless=True, quality=quality, method=method)
    return buf.getvalue()


def stated_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) that a simple-format lossless WebP file states, or None if ``data`` is not one.

    Read before decoding, so that a payload can never make the decoder allocate more than
    the ciphertext's own size.
    """
    if len(data) < 25 or data[:4] != b"RIFF" or data[8:16] != b"WEBPVP8L" or data[20] != _VP8L_SIGNATURE:
        return None
    (bits,) = struct.unpack_from("<I", data, 21)
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1


def decode(data: bytes, shape: Sequence[int]) -> np.ndarray:
    """The (C, H, W) uint8 image of WebP-lossless ``data``; IntegrityError if it is not one of that shape."""
    c, h, w = (int(s) for s in shape)
    if stated_size(data) != (w, h):
        raise IntegrityError(f"the payload is not a {w}x{h} lossless WebP image")
    try:
        if backend() == "imagecodecs":
            import imagecodecs

            rgb = np.asarray(imagecodecs.webp_decode(data))
        else:
            from PIL import Image

            with Image.open(io.BytesIO(data), formats=["WEBP"]) as img:
                rgb = np.asarray(img.convert("RGB"))
    except Exception as exc:  # each wrapper raises its own types for a corrupt bitstream
        raise IntegrityError(f"the payload does not decode as lossless WebP ({type(exc).__name__})") from None
    if rgb.shape != (h, w, 3):
        raise IntegrityError(f"the payload decodes to shape {rgb.shape}, not ({h}, {w}, 3)")
    out = rgb.transpose(2, 0, 1)
    if c == 1:
        if not (np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])):
            raise IntegrityError("a grey payload decodes to unequal colour channels")
        out = out[:1]
    return np.ascontiguousarray(out)
