"""The default "digits" scheme (format 4) end to end: exact recovery, agreement, files, the key alone,
and every way decryption refuses instead of returning another image."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from ric_ext import ops
from ric_ext.bank import NAEBank
from ric_ext.cipher import Cipher
from ric_ext.errors import (
    CiphertextFormatError,
    IntegrityError,
    ModelMismatchError,
    ReencodedError,
    TamperedError,
    WrongKeyError,
)
from ric_ext.fileformat import read_png, write_png
from ric_ext.keys import Key
from ric_ext.nae_digits import levels_of


@pytest.fixture(scope="module")
def digits(svhn_classifier, svhn_images):
    cipher = Cipher(svhn_classifier, Key.generate())
    x, _ = svhn_images
    return cipher, x, cipher.encrypt(x)


def test_default_round_trip_is_exact_and_labels_agree(digits):
    cipher, x, ct = digits
    assert cipher.scheme.name == "digits"
    assert torch.equal(cipher.classify(ct), ct.labels)  # the cloud's labels agree
    assert bool(ct.lossless.all())  # every SVHN sample compresses into the share
    x8, lossless = cipher.decrypt_uint8(ct)
    assert torch.equal(x8, torch.round(x * 255).to(torch.uint8))  # bit for bit
    assert torch.equal(lossless, ct.lossless)
    assert torch.equal(cipher.decrypt(ct), x8.float() / 255)
    # the bank starts pass the check at once: one classifier forward per image (docs/benchmarks.md)
    assert int(ct.steps.max()) == 0


def test_format4_header_and_bytes(digits):
    cipher, _, ct = digits
    h = ct.header
    assert (h["version"], h["scheme"], h["base"], h["codec"], h["classifier_name"]) == (
        4,
        "digits",
        64,
        "webp-lossless",
        "svhn",
    )
    assert "micro_batch" not in h and "lam" not in h
    assert ct.digests.shape == (len(ct), 16) and ct.digests.dtype == torch.uint8
    # each byte is 64 q + m: the NAE digit q takes 4 values, the share m 64
    assert levels_of(64) == 4 and int(ct.pixels.max()) <= 255
    assert "digits" in repr(cipher) and cipher.key.digit_key.hex() not in repr(cipher)


def test_the_key_alone_decrypts(digits):
    cipher, x, ct = digits
    alone = Cipher.from_ciphertext(ct, cipher.key)
    assert alone.classifier is None and alone.model is None
    assert torch.equal(alone.decrypt_uint8(ct)[0], torch.round(x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="no classifier"):
        alone.encrypt(x[:1])
    with pytest.raises(WrongKeyError):
        Cipher.from_ciphertext(ct, Key.generate())


def test_a_changed_byte_never_gives_another_image(digits):
    cipher, x, ct = digits
    x8 = torch.round(x * 255).to(torch.uint8)
    # inside the payload, past it (the zeros that fill the share), the flag, and the last subpixel
    for i, (c, y, xx) in enumerate([(0, 5, 7), (2, 31, 0), (1, 0, 31), (0, 0, 0), (2, 31, 31)]):
        bad = ct[i : i + 1]
        pix = bad.pixels.clone()
        old = int(pix[0, c, y, xx])
        pix[0, c, y, xx] = (old & 0xC0) | ((old + 1) & 0x3F)  # the share digit, +1 mod 64
        bad.pixels = pix
        with pytest.raises(IntegrityError):
            cipher.decrypt_uint8(bad)
        # only the NAE digit changed: the share (and so the image) is intact, but the digest covers
        # the ciphertext too, so a changed byte is an error in memory as it is in a file
        pix = ct[i : i + 1].pixels.clone()
        pix[0, c, y, xx] = (old + 64) % 256
        other = ct[i : i + 1]
        other.pixels = pix
        assert torch.equal(cipher.decode(other, cipher.regenerate(other)), x8[i : i + 1].float() / 255)
        with pytest.raises(IntegrityError):
            cipher.decrypt_uint8(other)
    tampered = ct[3:4]
    tampered.digests = tampered.digests.clone()
    tampered.digests[0, 0] ^= 1
    with pytest.raises(IntegrityError, match="digest"):
        cipher.decrypt_uint8(tampered)
    swapped = ct[4:5]
    swapped.nonces = ct.nonces[5:6]
    with pytest.raises(IntegrityError):
        cipher.decrypt_uint8(swapped)


def test_files_round_trip_and_tampering(digits, tmp_path):
    cipher, x, ct = digits
    key = cipher.key
    write_png(tmp_path / "c.png", ct[0], key)
    back = read_png(tmp_path / "c.png", key)
    assert torch.equal(back.pixels, ct.pixels[:1]) and torch.equal(back.digests, ct.digests[:1])
    assert back.steps is None and back.lossless is None  # neither is written
    with Image.open(tmp_path / "c.png") as im:
        text = dict(im.text)
    written = json.loads(text["ric-ext"])
    assert "steps" not in written and '"lossless"' not in text["ric-ext"] and written["codec"] == "webp-lossless"
    assert torch.equal(cipher.decrypt_uint8(back)[0], torch.round(x[:1] * 255).to(torch.uint8))
    # a changed pixel and a changed header each fail the file's tag
    with Image.open(tmp_path / "c.png") as im:
        arr = np.array(im)
    arr[3, 4, 1] ^= 1
    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    Image.fromarray(arr).save(tmp_path / "px.png", pnginfo=info)
    with pytest.raises(TamperedError):
        read_png(tmp_path / "px.png", key)
    h = json.loads(text["ric-ext"])
    h["digest"] = "00" * 16
    info = PngImagePlugin.PngInfo()
    info.add_text("ric-ext", json.dumps(h))
    info.add_text("ric-ext-mac", text["ric-ext-mac"])
    with Image.open(tmp_path / "c.png") as im:
        im.save(tmp_path / "hd.png", pnginfo=info)
    with pytest.raises(TamperedError):
        read_png(tmp_path / "hd.png", key)


def test_a_reencoded_ciphertext_says_so(digits, tmp_path):
    cipher, _, ct = digits
    write_png(tmp_path / "c.png", ct[0], cipher.key)
    with Image.open(tmp_path / "c.png") as im:
        im.convert("RGB").save(tmp_path / "c.jpg", quality=95)
        im.convert("RGB").save(tmp_path / "c_as_png.jpg.png")  # re-saved without the header
    with pytest.raises(ReencodedError, match="JPEG image.*re-encoded"):
        read_png(tmp_path / "c.jpg", cipher.key)
    with pytest.raises(CiphertextFormatError, match="drops PNG text chunks"):
        read_png(tmp_path / "c_as_png.jpg.png", cipher.key)


def test_noise_takes_the_lossy_digits_and_says_so(svhn_classifier):
    cipher = Cipher(svhn_classifier, Key.generate())
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (4, 3, 32, 32), generator=g, dtype=torch.uint8)
    ct = cipher.encrypt(noise)
    assert not bool(ct.lossless.any())
    x8, lossless = cipher.decrypt_uint8(ct)
    assert not bool(lossless.any())
    mse = ((x8.double() - noise.double()) ** 2).mean()
    assert 10 * torch.log10(255**2 / mse) > 46.3  # base 64: MSE 1.5 (tests/test_payload.py)
    assert torch.equal(cipher.classify(ct), ct.labels)


def test_the_share_is_uniform_whatever_the_image(svhn_classifier):
    # Given the label, nothing in the ciphertext depends on the image: the share digits (byte mod 64)
    # of a black and a white image are equally flat (chi-square over 64 bins, 0.1% critical value
    # 103.4 for 63 degrees of freedom, 16 images of 3072 subpixels).
    cipher = Cipher(svhn_classifier, Key.generate())
    for v in (0, 255):
        ct = cipher.encrypt(torch.full((16, 3, 32, 32), v, dtype=torch.uint8))
        m = (ct.pixels % 64).flatten().to(torch.int64)
        counts = torch.bincount(m, minlength=64).double()
        exp = m.numel() / 64
        assert float(((counts - exp) ** 2 / exp).sum()) < 103.4


def test_the_nae_digit_does_not_see_the_image(svhn_classifier, svhn_images):
    # Two different images with the same label, under one key and one nonce (a reuse the API refuses
    # within a call; here in two calls, only to look): their high digits are the same bank pattern,
    # whatever the images are; only the padded share differs.
    x, _ = svhn_images
    cipher = Cipher(svhn_classifier, Key.generate())
    labels = cipher.predict(x)
    i, j = next((i, j) for i in range(len(x)) for j in range(i + 1, len(x)) if labels[i] == labels[j])
    nonce = torch.randint(0, 256, (1, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    a, b = cipher.encrypt(x[i : i + 1], nonces=nonce), cipher.encrypt(x[j : j + 1], nonces=nonce)
    assert int(a.steps) == int(b.steps) == 0
    assert torch.equal(a.pixels // 64, b.pixels // 64)
    assert not torch.equal(a.pixels % 64, b.pixels % 64)


def test_noise_start_and_bank_start_both_pass_the_check(svhn_classifier, svhn_images):
    x, _ = svhn_images
    noise = Cipher(svhn_classifier, Key.generate(), bank=None)
    ct = noise.encrypt(x[:8])
    assert torch.equal(noise.classify(ct), ct.labels)
    assert float(ct.steps.float().mean()) > 0  # from noise it takes attack steps
    assert torch.equal(noise.decrypt_uint8(ct)[0], torch.round(x[:8] * 255).to(torch.uint8))


def test_bank_entries_are_chosen_by_key_and_nonce(digits):
    cipher, _, _ = digits
    bank = cipher.bank_for((3, 32, 32))
    assert isinstance(bank, NAEBank) and bank.entries >= 2
    n = torch.randint(0, 256, (400, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    labels = torch.zeros(400, dtype=torch.int64)
    a = bank.starts(labels, n, cipher.key.bank_key)
    b = bank.starts(labels, n, Key.generate().bank_key)
    assert torch.equal(a, bank.starts(labels, n, cipher.key.bank_key))  # deterministic
    used = {int((bank.q[0] == s).all(-1).all(-1).all(-1).nonzero()[0]) for s in a}
    assert used == set(range(bank.entries))  # every entry is used
    assert not torch.equal(a, b)  # another key chooses otherwise


def test_nonce_reuse_is_refused(digits):
    cipher, x, ct = digits
    nonces = ct.nonces[:3].clone()
    nonces[2] = nonces[0]
    with pytest.raises(ValueError, match="nonces repeat"):
        cipher.encrypt(x[:3], nonces=nonces)
    again = cipher.encrypt(x[:3], nonces=ct.nonces[:3])
    assert torch.equal(again.pixels, ct.pixels[:3])  # reproducible from its nonces


def test_other_formats_and_ciphers_do_not_mix(digits, svhn_classifier):
    cipher, x, ct = digits
    pad = Cipher.pad(svhn_classifier, cipher.key)
    with pytest.raises(ModelMismatchError, match="'digits' scheme"):
        pad.decrypt(ct)
    with pytest.raises(ModelMismatchError, match="'pad' scheme"):
        cipher.decrypt(pad.encrypt(x[:1]))
    other_base = Cipher(svhn_classifier, cipher.key, base=51)
    with pytest.raises(ModelMismatchError, match="base"):
        other_base.decrypt(ct)
    with pytest.raises(ValueError, match="base must be an int in \\[3, 128\\]"):
        Cipher(svhn_classifier, cipher.key, base=200)


def test_grey_images_round_trip(svhn_classifier, svhn_images):
    class Gray(torch.nn.Module):  # a 1-channel classifier built from the RGB one
        def __init__(self, clf):
            super().__init__()
            self.clf = clf

        def forward(self, x):
            return self.clf(x.expand(-1, 3, -1, -1))

    rgb, _ = svhn_images
    x = rgb[:2].mean(1, keepdim=True)  # grey photos
    c = Cipher(Gray(svhn_classifier), Key.generate(), bank=None)
    ct = c.encrypt(x)
    assert bool(ct.lossless.all())
    assert torch.equal(c.decrypt_uint8(ct)[0], torch.round(x * 255).to(torch.uint8))


def test_the_wrong_key_reads_noise(digits):
    cipher, x, ct = digits
    other = Key.generate()
    guess = cipher.decode(ct, cipher.regenerate(ct, key=other), key=other)
    assert (guess - x).abs().mean() > 0.2
    assert torch.equal(cipher.decode(ct, cipher.regenerate(ct)), torch.round(x * 255) / 255)
    # the pad under another key is unrelated: its digits disagree with the right ones almost everywhere
    right = ops.keyed_digit_pad(ct.pixels, cipher.key.digit_key, ct.nonces, 64, inverse=True)
    wrong = ops.keyed_digit_pad(ct.pixels, other.digit_key, ct.nonces, 64, inverse=True)
    assert (right != wrong).float().mean() > 0.95


def test_png_is_an_ordinary_image(digits, tmp_path):
    cipher, _, ct = digits
    write_png(tmp_path / "c.png", ct[0], cipher.key)
    data = (tmp_path / "c.png").read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (32, 32))
