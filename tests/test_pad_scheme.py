"""The "pad" scheme end to end: round trip, format 3 header, files, batch invariance, scheme checks."""

import warnings

import pytest
import torch

from ric_ext import metrics
from ric_ext.cipher import Cipher, Ciphertext
from ric_ext.errors import ModelMismatchError, TamperedError
from ric_ext.fileformat import read_png, write_png
from ric_ext.keys import Key
from ric_ext.nae import NAEConfig


@pytest.fixture(scope="module")
def padded(svhn_classifier, svhn_images):
    cipher = Cipher.pad(svhn_classifier, Key.generate())
    x, _ = svhn_images
    return cipher, x, cipher.encrypt(x)


def test_round_trip_quality_and_agreement(padded):
    cipher, x, ct = padded
    assert torch.equal(cipher.classify(ct), ct.labels)  # the cloud's labels agree (retries included)
    x_hat = cipher.decrypt(ct)
    # The recovery error is the 8-bit rounding of the ciphertext amplified by 1/((1 - lam) a):
    # uniform with half-width 0.5 / 0.196 grey levels, i.e. 44.8 dB; rounding x_hat to 8 bits
    # costs a little, so anything under 44 dB would mean a broken pad, not bad luck.
    assert float(metrics.psnr(x_hat, x).mean()) > 44.0
    # every pixel within the bound, for every image
    assert float((x_hat - x).abs().max()) <= 0.5 / 255 / (0.2 * 0.98) + 1e-6


def test_format3_header_names_the_scheme(padded):
    cipher, _, ct = padded
    h = ct.header
    assert (h["version"], h["scheme"], h["lam"], h["pad_a"], h["model"]) == (3, "pad", 0.8, 0.98, None)
    assert "pad" in repr(cipher) and cipher.key.pad_key not in repr(cipher).encode()


def test_png_files_and_batch_invariance(padded, tmp_path):
    cipher, x, ct = padded
    for i in range(3):
        write_png(tmp_path / f"c{i}.png", ct[i], cipher.key)
    back = Ciphertext.cat([read_png(tmp_path / f"c{i}.png", cipher.key) for i in range(3)])
    ref = cipher.decrypt(ct)
    assert torch.equal(cipher.decrypt(back), ref[:3])
    assert torch.equal(torch.cat([cipher.decrypt(ct[i]) for i in range(len(ct))]), ref)


def test_schemes_do_not_mix(padded, tiny_trained, svhn_classifier):
    cipher, x, ct = padded
    paper = Cipher.paper(tiny_trained, svhn_classifier, cipher.key, nae=NAEConfig(steps=3))
    with pytest.raises(ModelMismatchError, match="'pad' scheme; this cipher uses 'paper'"):
        paper.decrypt(ct)
    with pytest.raises(ModelMismatchError, match="'paper' scheme; this cipher uses 'pad'"):
        cipher.decrypt(paper.encrypt(x[:2]))
    other_a = Cipher.pad(svhn_classifier, cipher.key, a=0.9)
    with pytest.raises(ModelMismatchError, match="pad_a"):
        other_a.decrypt(ct)
    with pytest.raises(TypeError, match="must be a ric_ext RIC module"):
        Cipher.paper(None, svhn_classifier, cipher.key)
    assert Cipher(svhn_classifier, cipher.key).scheme.name == "digits"
    with warnings.catch_warnings():  # each scheme chosen by its own name: no warning
        warnings.simplefilter("error")
        assert Cipher.paper(tiny_trained, svhn_classifier, cipher.key).scheme.name == "paper"
        Cipher(svhn_classifier, cipher.key)
        Cipher.pad(svhn_classifier, cipher.key)
    with pytest.raises(ValueError, match="scheme must be one of"):
        Cipher.for_scheme("xor", svhn_classifier, cipher.key)
    with pytest.raises(ValueError, match="pad scheme needs"):
        Cipher.pad(svhn_classifier, cipher.key, a=0.999)


def test_tampered_scheme_field_is_detected(padded, tmp_path):
    import json

    from PIL import Image, PngImagePlugin

    cipher, _, ct = padded
    path = tmp_path / "c.png"
    write_png(path, ct[0], cipher.key)
    with Image.open(path) as im:
        header, mac = json.loads(im.text["ric-ext"]), im.text["ric-ext-mac"]
        img = im.copy()
    header["scheme"] = "paper"
    info = PngImagePlugin.PngInfo()
    info.add_text("ric-ext", json.dumps(header, sort_keys=True, separators=(",", ":")))
    info.add_text("ric-ext-mac", mac)
    img.save(path, pnginfo=info)
    with pytest.raises(TamperedError):
        read_png(path, cipher.key)


def test_another_key_decodes_noise(padded):
    cipher, x, ct = padded
    other = cipher.with_key(Key.generate())
    wrong = cipher.decode(ct, other.regenerate(ct), key=other.key)
    assert float(metrics.psnr(wrong, x).mean()) < 12  # noise: far below even a mean-image guess
