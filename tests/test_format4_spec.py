"""docs/scheme.md's "Format 4, byte by byte" is enough to decrypt a file: an independent decoder
written from that text alone (hashlib, hmac, a plain-Python ChaCha20 and Pillow; no ric_ext
decryption code) gets back the same image as Cipher.decrypt, lossless and lossy."""

import hashlib
import hmac
import io
import json
import struct

import numpy as np
import torch
from PIL import Image

from ric_ext.cipher import Cipher
from ric_ext.fileformat import write_png
from ric_ext.keys import Key


def hkdf(ikm: bytes, info: bytes, n: int = 32) -> bytes:
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < n:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out, i = out + block, i + 1
    return out[:n]


def chacha20_words(key: bytes, nonce: bytes, count: int):
    def rotl(v, c):
        return ((v << c) | (v >> (32 - c))) & 0xFFFFFFFF

    k = struct.unpack("<8I", key)
    n = struct.unpack("<3I", nonce)
    words = []
    for counter in range(-(-count // 16)):
        s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *k, counter, *n]
        x = list(s)
        for _ in range(10):
            for a, b, c, d in ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
                               (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)):  # fmt: skip
                x[a] = (x[a] + x[b]) & 0xFFFFFFFF
                x[d] = rotl(x[d] ^ x[a], 16)
                x[c] = (x[c] + x[d]) & 0xFFFFFFFF
                x[b] = rotl(x[b] ^ x[c], 12)
                x[a] = (x[a] + x[b]) & 0xFFFFFFFF
                x[d] = rotl(x[d] ^ x[a], 8)
                x[c] = (x[c] + x[d]) & 0xFFFFFFFF
                x[b] = rotl(x[b] ^ x[c], 7)
        words += [(x[i] + s[i]) & 0xFFFFFFFF for i in range(16)]
    return words[:count]


def decrypt_from_the_spec(path, secret: bytes) -> np.ndarray:
    with Image.open(path) as im:
        header = json.loads(im.text["ric-ext"])
        pix = np.asarray(im)
    pix = pix[None] if pix.ndim == 2 else pix.transpose(2, 0, 1)
    C, H, W = pix.shape
    L, nonce = header["base"], bytes.fromhex(header["nonce"])
    assert (header["version"], header["scheme"], header["codec"]) == (4, "digits", "webp-lossless")
    n = C * H * W
    k = chacha20_words(hkdf(secret, b"ric-ext v4 digit pad"), nonce, n)
    d = [((int(c) % L) - (w * L >> 32)) % L for c, w in zip(pix.reshape(-1), k)]
    if d[0] == L - 1:  # lossless
        bb, bd = 3, 4  # L = 64: 3 bytes are exactly 4 digits
        max_bytes = (n // bd) * bb
        h, reach = 1, L
        while reach < max_bytes + 1:
            h, reach = h + 1, reach * L
        length = sum(d[1 + j] * L**j for j in range(h))
        data = b""
        pos = 1 + h
        while len(data) < length:
            v = sum(d[pos + j] * L**j for j in range(bd))
            data += v.to_bytes(bb, "big")
            pos += bd
        assert not any(d[pos:]) and not any(data[length:])
        with Image.open(io.BytesIO(data[:length])) as im:
            rgb = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
        img = rgb[:1] if C == 1 else rgb
        mode = 1
    else:

        def middle(level, levels):
            values = [v for v in range(256) if v * levels // 256 == level]
            return (values[0] + values[-1]) // 2

        flat = [middle(d[0], L - 1)] + [middle(v, L) for v in d[1:]]
        img = np.array(flat, dtype=np.uint8).reshape(C, H, W)
        mode = 0
    msg = b"ric-ext v4 digest\0" + nonce + struct.pack(">3I", C, H, W) + bytes([mode])
    msg += img.astype(np.uint8).tobytes() + pix.astype(np.uint8).tobytes()
    assert (
        hmac.new(hkdf(secret, b"ric-ext v4 plaintext digest"), msg, hashlib.sha256).digest()[:16].hex()
        == header["digest"]
    )
    return img


def test_the_written_spec_decrypts_format_4(tmp_path, svhn_classifier, svhn_images):
    x, _ = svhn_images
    noise = torch.randint(0, 256, (1, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    images = torch.cat([torch.round(x[:2] * 255).to(torch.uint8), noise])
    secret = bytes(range(32))
    key = Key(secret)
    cipher = Cipher(svhn_classifier, key)
    ct = cipher.encrypt(images)
    assert ct.lossless.tolist() == [True, True, False]
    ours, _ = cipher.decrypt_uint8(ct)
    for i in range(3):
        write_png(tmp_path / f"{i}.png", ct[i], key)
        assert np.array_equal(decrypt_from_the_spec(tmp_path / f"{i}.png", secret), ours[i].numpy())
