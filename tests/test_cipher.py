"""Cipher API and ciphertext files: round trip on real images, and every failure
(wrong key, tampered pixel/header, truncated file, other weights) raises its
own exception."""

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from ric_ext.cipher import Cipher
from ric_ext.errors import CiphertextFormatError, ModelMismatchError, TamperedError, WrongKeyError
from ric_ext.fileformat import read_png, write_png
from ric_ext.keys import Key
from ric_ext.nae import NAEConfig

FAST = NAEConfig(steps=5)


@pytest.fixture(scope="module")
def setup(tiny_trained, svhn_classifier, svhn_images):
    key = Key.generate()
    cipher = Cipher.paper(tiny_trained, svhn_classifier, key, nae=FAST)
    x, _ = svhn_images
    ct = cipher.encrypt(x[:4])
    return cipher, key, x[:4], ct


def test_round_trip_mechanics(setup):
    cipher, key, x, ct = setup
    assert ct.pixels.dtype == torch.uint8 and ct.pixels.shape == x.shape
    assert ct.nonces.shape == (4, 12) and len({bytes(n.tolist()) for n in ct.nonces}) == 4
    assert torch.equal(ct.labels, cipher.predict(x))
    x_hat = cipher.decrypt(ct)
    assert x_hat.shape == x.shape and x_hat.min() >= 0 and x_hat.max() <= 1
    # Decryption is the decoder applied with the replayed NAEs.
    z = cipher.regenerate(ct)
    assert torch.equal(x_hat, cipher.model.decrypt(ct.pixels, z))
    assert ct.steps.shape == (4,) and (ct.header["version"], ct.header["scheme"]) == (3, "paper")
    # And it is deterministic.
    assert torch.equal(cipher.decrypt(ct), x_hat)


def test_classify_and_repr(setup):
    cipher, key, x, ct = setup
    assert cipher.classify(ct).shape == (4,)
    assert key.mac_key.hex() not in repr(cipher) and key.noise_key.hex() not in repr(cipher)


def test_wrong_key_and_wrong_weights_raise(setup, tiny_trained, svhn_classifier):
    cipher, key, x, ct = setup
    with pytest.raises(WrongKeyError):
        Cipher.paper(tiny_trained, svhn_classifier, Key.generate(), nae=FAST).decrypt(ct)
    other = copy.deepcopy(tiny_trained)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    with pytest.raises(ModelMismatchError, match="RIC weights"):
        Cipher.paper(other, svhn_classifier, key, nae=FAST).decrypt(ct)
    clf2 = copy.deepcopy(svhn_classifier)
    with torch.no_grad():
        next(clf2.parameters()).mul_(1.01)
    with pytest.raises(ModelMismatchError, match="classifier"):
        Cipher.paper(tiny_trained, clf2, key, nae=FAST).decrypt(ct)


def test_png_file_round_trip(setup, tmp_path):
    cipher, key, x, ct = setup
    path = tmp_path / "c0.png"
    write_png(path, ct[0], key)
    # An ordinary 8-bit PNG whose pixels are the ciphertext.
    with Image.open(path) as im:
        assert im.mode == "RGB"
        assert np.array_equal(np.asarray(im).transpose(2, 0, 1), ct.pixels[0].numpy())
    back = read_png(path, key)
    assert torch.equal(back.pixels, ct.pixels[:1]) and torch.equal(back.nonces, ct.nonces[:1])
    assert torch.equal(cipher.decrypt(back), cipher.decrypt(ct[0]))
    with pytest.raises(FileExistsError):
        write_png(path, ct[1], key)  # never overwrites


def _rewrite(src, dst, pixels=None, header_edit=None):
    with Image.open(src) as im:
        text = dict(im.text)
        arr = np.asarray(im).copy()
    if pixels is not None:
        arr = pixels(arr)
    if header_edit is not None:
        h = json.loads(text["ric-ext"])
        header_edit(h)
        text["ric-ext"] = json.dumps(h)
    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    Image.fromarray(arr).save(dst, pnginfo=info)


def test_tampering_is_detected(setup, tmp_path):
    cipher, key, x, ct = setup
    src = tmp_path / "c.png"
    write_png(src, ct[0], key)

    def flip(a):
        a[3, 5, 1] ^= 1
        return a

    _rewrite(src, tmp_path / "pix.png", pixels=flip)
    with pytest.raises(TamperedError, match="authentication failed"):
        read_png(tmp_path / "pix.png", key)
    _rewrite(src, tmp_path / "label.png", header_edit=lambda h: h.update(label=(h["label"] + 1) % 10))
    with pytest.raises(TamperedError):
        read_png(tmp_path / "label.png", key)
    _rewrite(src, tmp_path / "steps.png", header_edit=lambda h: h["nae"].update(steps=99))
    with pytest.raises(TamperedError):
        read_png(tmp_path / "steps.png", key)
    with pytest.raises(WrongKeyError):
        read_png(src, Key.generate())


def test_truncated_and_foreign_files(setup, tmp_path):
    cipher, key, x, ct = setup
    src = tmp_path / "c.png"
    write_png(src, ct[0], key)
    data = src.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CiphertextFormatError, match="truncated or corrupt"):
        read_png(tmp_path / "trunc.png", key)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "plain.png")
    with pytest.raises(CiphertextFormatError, match="not a ric_ext ciphertext"):
        read_png(tmp_path / "plain.png", key)
    with pytest.raises(CiphertextFormatError, match="not found"):
        read_png(tmp_path / "missing.png", key)


def test_grayscale_round_trip(tmp_path, svhn_classifier):
    from ric_ext.models import RIC

    class Gray(torch.nn.Module):  # a 1-channel classifier built from the RGB one
        def __init__(self, clf):
            super().__init__()
            self.clf = clf

        def forward(self, x):
            return self.clf(x.expand(-1, 3, -1, -1))

    key = Key.generate()
    c = Cipher.paper(RIC(1, width=4, depth=2), Gray(svhn_classifier), key, nae=FAST)
    ct = c.encrypt(torch.rand(2, 1, 32, 32))
    write_png(tmp_path / "g.png", ct[1], key)
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "L"
    assert torch.equal(c.decrypt(read_png(tmp_path / "g.png", key)), c.decrypt(ct[1]))


def test_bad_images(setup):
    cipher, *_ = setup
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cipher.encrypt(torch.full((1, 3, 32, 32), 2.0))
    with pytest.raises(ValueError, match="shape"):
        cipher.encrypt(torch.rand(3, 32, 32))
    with pytest.raises(TypeError, match="key"):
        Cipher.paper(cipher.model, cipher.classifier, b"0" * 32)


def test_duplicate_nonces_in_a_batch_are_refused(setup):
    cipher, key, x, ct = setup
    nonces = ct.nonces.clone()
    nonces[2] = nonces[0]  # images 0 and 2 would share their mask
    with pytest.raises(ValueError, match="nonces repeat within the batch"):
        cipher.encrypt(x, nonces=nonces)
    # distinct given nonces are fine, and reproduce the same ciphertexts
    again = cipher.encrypt(x, nonces=ct.nonces)
    assert torch.equal(again.pixels, ct.pixels)
    # the security evaluation's nonce-reuse attack opts in explicitly
    reused = cipher.encrypt(x[:2], nonces=ct.nonces[:1].expand(2, 12).contiguous(), allow_nonce_reuse=True)
    assert torch.equal(reused.nonces[0], reused.nonces[1])
