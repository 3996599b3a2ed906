"""Format-2 ciphertexts: per-image step counts are replayed, authenticated and
independent of how images are batched; format-1 files still decrypt; the
bundled model keeps 100% label agreement with the adaptive attack."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import DATA, needs_shared
from PIL import Image, PngImagePlugin

from ric_ext import data as data_mod
from ric_ext.cipher import Cipher
from ric_ext.errors import CiphertextFormatError, TamperedError
from ric_ext.fileformat import read_png, write_png
from ric_ext.keys import Key
from ric_ext.models import bundled_model_path, load_classifier, load_ric
from ric_ext.models.registry import ASSETS
from ric_ext.nae import NAEConfig

FIXTURE_V1 = os.path.join(os.path.dirname(__file__), "data", "format_v1")
FIXTURE_V2 = os.path.join(os.path.dirname(__file__), "data", "format_v2")


def _to8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def bundled():
    return load_ric(bundled_model_path()), load_classifier("svhn", ASSETS)


@pytest.fixture(scope="module")
def encrypted(bundled, svhn_images):
    model, clf = bundled
    cipher = Cipher.paper(model, clf, Key.generate(), batch_size=16)
    x, _ = svhn_images
    return cipher, x, cipher.encrypt(x)


def test_bundled_model_agreement_and_steps(encrypted):
    cipher, x, ct = encrypted
    assert (ct.header["version"], ct.header["scheme"]) == (3, "paper") and ct.header["nae"]["stop"] == "ciphertext"
    assert torch.equal(cipher.classify(ct), ct.labels)  # 100% agreement on the 16 samples
    assert ct.steps.dtype == torch.int64 and (ct.steps >= 0).all() and (ct.steps <= 100).all()
    assert ct.steps.float().mean() < 50  # adaptive: far fewer than the bound


@pytest.mark.parametrize("split", ["one_at_a_time", "reversed", "batches_of_3", "batches_of_5"])
def test_decryption_independent_of_batching(encrypted, split):
    cipher, x, ct = encrypted
    ref = _to8(cipher.decrypt(ct))
    n = len(ct)
    if split == "one_at_a_time":
        got = torch.cat([cipher.decrypt(ct[i]) for i in range(n)])
    elif split == "reversed":
        rev = torch.arange(n - 1, -1, -1)
        sub = ct.__class__(ct.pixels[rev], ct.nonces[rev], ct.labels[rev], dict(ct.header), ct.steps[rev])
        got = cipher.decrypt(sub).flip(0)
    else:
        size = int(split.rsplit("_", 1)[1])
        other = Cipher.paper(cipher.model, cipher.classifier, cipher.key, nae=cipher.nae_config, batch_size=size)
        got = other.decrypt(ct)
    # The decrypted 8-bit images are identical, byte for byte.
    assert torch.equal(_to8(got), ref)


def test_step_counts_are_authenticated(encrypted, tmp_path):
    cipher, x, ct = encrypted
    path = tmp_path / "c.png"
    write_png(path, ct[0], cipher.key)
    back = read_png(path, cipher.key)
    assert torch.equal(back.steps, ct.steps[:1])
    # Change only the step count in the header, keep the old tag.
    with Image.open(path) as im:
        im.load()
        text, arr = dict(im.text), np.asarray(im).copy()
    header = json.loads(text["ric-ext"])
    header["steps"] += 1
    info = PngImagePlugin.PngInfo()
    info.add_text("ric-ext", json.dumps(header, sort_keys=True, separators=(",", ":")))
    info.add_text("ric-ext-mac", text["ric-ext-mac"])
    bad = tmp_path / "bad.png"
    Image.fromarray(arr).save(bad, pnginfo=info)
    with pytest.raises(TamperedError):
        read_png(bad, cipher.key)
    # A missing or malformed step count is a format error, not a crash.
    for value in (None, -3, "7", 2.5):
        h = dict(header)
        if value is None:
            del h["steps"]
        else:
            h["steps"] = value
        info = PngImagePlugin.PngInfo()
        info.add_text("ric-ext", json.dumps(h, sort_keys=True, separators=(",", ":")))
        info.add_text("ric-ext-mac", text["ric-ext-mac"])
        p = tmp_path / f"bad_{value}.png"
        Image.fromarray(arr).save(p, pnginfo=info)
        with pytest.raises(CiphertextFormatError):
            read_png(p, cipher.key)


def test_in_memory_step_counts_are_checked(encrypted):
    cipher, x, ct = encrypted
    too_many = ct[:2]
    too_many.steps = torch.tensor([1, 101])
    with pytest.raises(ValueError, match="step bound"):
        cipher.decrypt(too_many)
    missing = ct[:2]
    missing.steps = None
    with pytest.raises(CiphertextFormatError, match="step counts"):
        cipher.decrypt(missing)


def test_version1_files_still_decrypt(tmp_path):
    # Files written by format version 1 (fixed 100 steps, authors' early stop), kept from before format 2.
    key = _fixture_key(FIXTURE_V1, tmp_path)
    model = load_ric(os.path.join(FIXTURE_V1, "tiny_ric.pt"))
    cipher = Cipher.paper(model, load_classifier("svhn", ASSETS), key)  # default (format 2) settings
    expected = np.load(os.path.join(FIXTURE_V1, "expected.npz"))
    cts = [read_png(os.path.join(FIXTURE_V1, f"c{i}.png"), key) for i in range(3)]
    assert all(c.header["version"] == 1 and c.steps is None for c in cts)
    assert [int(c.labels[0]) for c in cts] == expected["labels"].tolist()
    got = torch.cat([cipher.decrypt(c) for c in cts])
    assert np.array_equal(_to8(got).numpy(), expected["decrypted"])
    # A batch of version-1 ciphertexts decrypts the same way.
    from ric_ext.cipher import Ciphertext

    assert np.array_equal(_to8(cipher.decrypt(Ciphertext.cat(cts))).numpy(), expected["decrypted"])


def _fixture_key(folder: str, tmp_path) -> Key:
    key_path = tmp_path / "key.json"
    shutil.copy(os.path.join(folder, "key.json"), key_path)
    os.chmod(key_path, 0o600)  # git does not keep the 0600 mode the key loader insists on
    return Key.load(key_path)


def test_format2_fixture_made_before_the_refactor_decrypts_byte_for_byte(tmp_path):
    # Made with commit 3f579bf (tests/data/format_v2/make_fixture.py), before the op table, the
    # stop-rule object and the batching changes of 2026-12-03: they must not change one byte.
    key = _fixture_key(FIXTURE_V2, tmp_path)
    cipher = Cipher.paper(load_ric("svhn"), load_classifier("svhn", ASSETS), key)
    expected = np.load(os.path.join(FIXTURE_V2, "expected.npz"))
    cts = [read_png(os.path.join(FIXTURE_V2, f"c{i}.png"), key) for i in range(4)]
    assert all(c.header["version"] == 2 and c.header["nae"]["stop"] == "ciphertext" for c in cts)
    assert [int(c.steps[0]) for c in cts] == expected["steps"].tolist()
    got = torch.cat([cipher.decrypt(c) for c in cts])
    assert np.array_equal(_to8(got).numpy(), expected["decrypted"])
    from ric_ext.cipher import Ciphertext

    assert np.array_equal(_to8(cipher.decrypt(Ciphertext.cat(cts))).numpy(), expected["decrypted"])


def test_ciphertext_rule_round_trip(bundled, svhn_images):
    model, clf = bundled
    cfg = NAEConfig(stop="ciphertext", ct_margin=1.0, check_every=2)
    cipher = Cipher.paper(model, clf, Key.generate(), nae=cfg, batch_size=8)
    x, _ = svhn_images
    ct = cipher.encrypt(x[:8])
    # Agreement by construction: each ciphertext passed the classifier with margin >= 1 when it was made.
    assert torch.equal(cipher.classify(ct), ct.labels)
    assert (ct.steps % 2 == 0).all() | (ct.steps == 100).all()
    ref = _to8(cipher.decrypt(ct))
    assert torch.equal(_to8(torch.cat([cipher.decrypt(ct[i]) for i in range(8)])), ref)
    # Recovery is as good as the margin rule's (same model, same images).
    from ric_ext import metrics

    assert float(metrics.psnr(ref.float() / 255, x[:8]).mean()) > 30


@needs_shared
def test_bundled_model_agreement_on_paper_subset(bundled):
    model, clf = bundled
    x, _ = data_mod.stack(data_mod.svhn("paper", DATA), list(range(64)))
    cipher = Cipher.paper(model, clf, Key.generate(), batch_size=64)
    ct = cipher.encrypt(x)
    assert torch.equal(cipher.classify(ct), ct.labels)
