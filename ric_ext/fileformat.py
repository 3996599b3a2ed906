"""Ciphertext files: ordinary 8-bit PNGs with an authenticated header.

Any image tool opens the file (and a cloud classifier can classify it); the
``tEXt`` chunk ``ric-ext`` holds a JSON header (format version, scheme and its
settings, nonce, label, the classifier's fingerprint and name, the key id; format 4:
the plaintext's keyed digest; formats 2-3: the NAE's step count, lam and the RIC
weights' fingerprint) and ``ric-ext-mac`` holds HMAC-SHA256(mac subkey, header || 0 ||
shape || pixels). Reading checks, in order: a PNG (ReencodedError for a JPEG or other
re-encoding) that is complete and has a header (CiphertextFormatError), same key
(WrongKeyError), tag (TamperedError). Decryption then checks the rest (the digest,
or the fingerprints of older formats).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
from typing import Optional, Union

import numpy as np
import torch

from .checks import check_int
from .ciphertext import READABLE_VERSIONS, Ciphertext
from .errors import CiphertextFormatError, ReencodedError, TamperedError, WrongKeyError
from .io_utils import atomic_write_bytes
from .keys import Key

PathLike = Union[str, "os.PathLike[str]"]
HEADER_CHUNK, MAC_CHUNK = "ric-ext", "ric-ext-mac"
#: The header fields that belong to one file (the rest is the batch's common header).
PER_FILE = ("nonce", "label", "shape", "steps", "digest")


def _canonical(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _tag(mac_key: bytes, header_bytes: bytes, pixels: np.ndarray) -> str:
    msg = header_bytes + b"\0" + json.dumps(list(pixels.shape)).encode() + b"\0" + pixels.tobytes()
    return hmac.new(mac_key, msg, hashlib.sha256).hexdigest()


def write_png(path: PathLike, ct: Ciphertext, key: Key, *, overwrite: bool = False) -> None:
    """Write one ciphertext (len(ct) == 1) to ``path`` atomically; never overwrites unless asked."""
    data = encode_png(ct, key)
    atomic_write_bytes(path, data, overwrite=overwrite)


def encode_png(ct: Ciphertext, key: Key) -> bytes:
    """The bytes :func:`write_png` writes for one ciphertext (len(ct) == 1): checkable in memory
    (:func:`decode_png`) before anything reaches the disk."""
    from PIL import Image, PngImagePlugin

    if len(ct) != 1:
        raise ValueError(f"write_png writes one image per file, got a batch of {len(ct)}")
    pix = ct.pixels[0].cpu().numpy()  # (C, H, W)
    header = dict(ct.header)
    header.update(nonce=bytes(ct.nonces[0].tolist()).hex(), label=int(ct.labels[0]), shape=list(pix.shape))
    version = header.get("version")
    if version == 4:  # no step count: nothing replays it, and it need not travel
        if ct.digests is None:
            raise ValueError("a format-4 ciphertext needs its plaintext digest (ct.digests)")
        header["digest"] = bytes(ct.digests[0].tolist()).hex()
    elif ct.steps is not None:
        header["steps"] = int(ct.steps[0])
    elif version != 1:
        raise ValueError("a format-2/3 ciphertext needs its per-image step count (ct.steps)")
    hbytes = _canonical(header)
    info = PngImagePlugin.PngInfo()
    info.add_text(HEADER_CHUNK, hbytes.decode("utf-8"))
    info.add_text(MAC_CHUNK, _tag(key.mac_key, hbytes, pix))
    img = Image.fromarray(
        pix[0] if pix.shape[0] == 1 else np.ascontiguousarray(pix.transpose(1, 2, 0)),
        mode="L" if pix.shape[0] == 1 else "RGB",
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


NO_HEADER_HINT = (
    "(a PNG without it was saved by a program that drops PNG text chunks, or was never a ciphertext: "
    "decrypt the original file)"
)


def _not_png(path: PathLike, fmt: Optional[str]) -> ReencodedError:
    return ReencodedError(
        f"{path} is a {fmt or 'non-PNG'} image, not a ric_ext ciphertext PNG: the ciphertext was re-encoded, "
        "which changes its bytes and drops its header, so it cannot be decrypted; decrypt the original PNG"
    )


def peek_header(path: PathLike) -> dict:
    """The header of a ciphertext file, *unauthenticated*: only to choose settings (e.g. the scheme)
    before :func:`read_png` checks the file. Raises CiphertextFormatError for non-ciphertexts
    (ReencodedError for an image in another format)."""
    from PIL import Image

    try:
        with Image.open(os.fspath(path)) as img:
            fmt = img.format
            text = dict(getattr(img, "text", {}) or {})
    except Exception as exc:
        raise CiphertextFormatError(f"{path} is not a readable image: {exc}") from None
    if fmt != "PNG":
        raise _not_png(path, fmt)
    if HEADER_CHUNK not in text:
        raise CiphertextFormatError(f"{path} is not a ric_ext ciphertext: it has no ric_ext header {NO_HEADER_HINT}")
    try:
        return dict(json.loads(text[HEADER_CHUNK]))
    except (ValueError, TypeError) as exc:
        raise CiphertextFormatError(f"{path} has a malformed ric_ext header: {exc}") from None


def read_png(path: PathLike, key: Key) -> Ciphertext:
    """Read and authenticate one ciphertext file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CiphertextFormatError(f"ciphertext file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    return decode_png(data, key, name=path)


def decode_png(data: bytes, key: Key, *, name: str = "<bytes>") -> Ciphertext:
    """Authenticate and read one ciphertext from a PNG file's bytes (``name`` goes into errors)."""
    from PIL import Image

    path = name
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            if fmt == "PNG":
                img.load()
            text = dict(getattr(img, "text", {}) or {})
            arr = np.asarray(img) if fmt == "PNG" else None
            mode = img.mode
    except Exception as exc:  # PIL raises several types for truncated/corrupt files
        raise CiphertextFormatError(f"{path} is not a readable PNG (truncated or corrupt): {exc}") from None
    if fmt != "PNG":
        raise _not_png(path, fmt)
    if HEADER_CHUNK not in text or MAC_CHUNK not in text:
        raise CiphertextFormatError(f"{path} has no ric_ext header: not a ric_ext ciphertext {NO_HEADER_HINT}")
    try:
        header = json.loads(text[HEADER_CHUNK])
        if header.get("format") != "ric-ext-ciphertext":
            raise ValueError("wrong format field")
        if header.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"unsupported format version {header.get('version')}")
        steps = digest = None
        if header["version"] == 4:
            digest = bytes.fromhex(header["digest"])
            if len(digest) != 16:
                raise ValueError("digest is not 16 bytes")
        elif header["version"] >= 2:
            steps = header["steps"]
            check_int("steps", steps, 0)
        nonce = bytes.fromhex(header["nonce"])
        label = int(header["label"])
        shape = [int(s) for s in header["shape"]]
        if len(nonce) != 12:
            raise ValueError("nonce is not 12 bytes")
    except (ValueError, KeyError, TypeError) as exc:
        raise CiphertextFormatError(f"{path} has a malformed ric_ext header: {exc}") from None
    if header.get("key_id") != key.key_id:
        raise WrongKeyError(f"{path} was made under another key (or its key id was altered)")
    pix = arr[None] if mode == "L" else arr.transpose(2, 0, 1) if mode == "RGB" else None
    if pix is None or list(pix.shape) != shape:
        raise TamperedError(f"{path}: image mode/shape does not match its authenticated header")
    pix = np.array(pix, dtype=np.uint8, order="C", copy=True)
    expected = _tag(key.mac_key, _canonical(header), pix)
    if not hmac.compare_digest(expected, text[MAC_CHUNK]):
        raise TamperedError(f"{path}: authentication failed: pixels or header were modified")
    common = {k: v for k, v in header.items() if k not in PER_FILE}
    return Ciphertext(
        torch.from_numpy(pix).unsqueeze(0),
        torch.tensor([list(nonce)], dtype=torch.uint8),
        torch.tensor([label], dtype=torch.int64),
        common,
        None if steps is None else torch.tensor([steps], dtype=torch.int64),
        None if digest is None else torch.tensor([list(digest)], dtype=torch.uint8),
    )
