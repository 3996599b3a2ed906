"""Golden ciphertexts of formats 3 and 4 (tests/data/golden/make_golden.py, made before issue 37's
API change): today's code must encrypt the same images under the same key and nonces to the same
ciphertexts, and decrypt the files to the same bytes. (Formats 1 and 2: tests/test_cipher_replay.py.)

What is compared is the ciphertext itself: pixels, nonce, label, header, digest or step count and
the authentication tag, not the PNG container's compressed bytes, which belong to Pillow's zlib.
"""

import os
import shutil

import numpy as np
import pytest
import torch

from ric_ext import Cipher, Key
from ric_ext.demo import load_samples
from ric_ext.fileformat import MAC_CHUNK, encode_png, read_png
from ric_ext.models import load_classifier
from ric_ext.models.registry import ASSETS, load_ric

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "golden")
SCHEMES = ("f4", "f3pad", "f3paper")


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    key_path = tmp_path_factory.mktemp("golden") / "key.json"
    shutil.copy(os.path.join(GOLDEN, "key.json"), key_path)
    os.chmod(key_path, 0o600)  # git does not keep the mode the key loader insists on
    return Key.load(key_path), np.load(os.path.join(GOLDEN, "expected.npz"))


def _cipher(name: str, key: Key) -> Cipher:
    clf = load_classifier("svhn", ASSETS)
    if name == "f4":
        return Cipher(clf, key)
    if name == "f3pad":
        return Cipher.pad(clf, key)
    return Cipher.paper(load_ric("svhn"), clf, key)


def _tag(data: bytes) -> str:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.text[MAC_CHUNK]


@pytest.mark.parametrize("name", SCHEMES)
def test_golden_files_decrypt_to_the_same_bytes(golden, name):
    key, expected = golden
    files = [read_png(os.path.join(GOLDEN, f"{name}_c{i}.png"), key) for i in range(4)]
    assert {f.header["version"] for f in files} == {4 if name == "f4" else 3}
    cipher = Cipher.from_ciphertext(files[0], key) if name == "f4" else _cipher(name, key)
    got = torch.cat([cipher.decrypt_uint8(f)[0] for f in files])
    assert np.array_equal(got.numpy(), expected[name])
    if name == "f4":  # format 4 gives the images themselves back
        x, _ = load_samples()
        assert torch.equal(got, (x[8:12] * 255).round().to(torch.uint8))


@pytest.mark.parametrize("name", SCHEMES)
def test_the_same_images_encrypt_to_the_golden_ciphertexts(golden, name):
    key, expected = golden
    x, _ = load_samples()
    ct = _cipher(name, key).encrypt(x[8:12], torch.from_numpy(expected["nonces"]))
    for i in range(4):
        path = os.path.join(GOLDEN, f"{name}_c{i}.png")
        want = read_png(path, key)
        with open(path, "rb") as f:
            want_tag = _tag(f.read())
        assert torch.equal(ct.pixels[i : i + 1], want.pixels), f"{name} image {i}: other pixels"
        assert torch.equal(ct.nonces[i : i + 1], want.nonces) and int(ct.labels[i]) == int(want.labels[0])
        assert ct.header == want.header
        assert _tag(encode_png(ct[i], key)) == want_tag  # header, pixels and tag: the same ciphertext
