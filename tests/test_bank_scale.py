"""NAE banks whose patterns live at reduced resolution (issue 36, item 3): trained at 1/scale of the
image's sides, stored that small, upsampled (nearest) when an image starts from them."""

import json

import numpy as np
import pytest
import torch
from test_bank import _tiny_classifier  # the same tiny classifier as the plain banks' tests

from ric_ext import bank_lazy
from ric_ext.bank import BankSettings, NAEBank, pass_rates, train_bank, upsample
from ric_ext.cipher import Cipher
from ric_ext.keys import Key

SHAPE = (3, 16, 16)
SCALED = BankSettings(entries=2, steps=30, shares=2, validate_shares=16, scale=4)


@pytest.fixture(scope="module")
def scaled():
    clf = _tiny_classifier()
    return clf, train_bank(clf, SHAPE, 64, SCALED, progress=False)


def test_patterns_are_stored_small_and_start_images_at_full_size(scaled):
    clf, b = scaled
    assert b.q.shape == (3, 2, 3, 4, 4) and b.shape == SHAPE and b.scale == 4
    starts = b.starts(torch.tensor([0, 1, 2]), torch.zeros(3, 12, dtype=torch.uint8), b"k" * 32)
    assert starts.shape == (3, *SHAPE)
    # blocky: every 4x4 block holds one digit
    assert torch.equal(starts, upsample(starts[..., ::4, ::4], 4))
    rates = torch.tensor(b.meta["pass_rate"])
    assert float(rates.min()) == 1.0  # the recorded pass rate is the upsampled patterns'
    again = pass_rates(clf, upsample(b.q.reshape(6, 3, 4, 4), 4), torch.arange(3).repeat_interleave(2), 64, 32, 1.0,
                       seed=9)  # fmt: skip
    assert float(again.min()) >= 0.9


def test_file_round_trip_is_version_2_and_a_version_1_reader_is_not_fooled(scaled, tmp_path):
    _, b = scaled
    b.save(tmp_path / "b.npz")
    with np.load(tmp_path / "b.npz") as d:
        meta = json.loads(str(d["meta"]))
        q = d["q"]
    assert meta["version"] == 2 and meta["scale"] == 4  # an older reader (version 1 only) refuses the file
    back = NAEBank.load(tmp_path / "b.npz")
    assert torch.equal(back.q, b.q) and back.shape == SHAPE
    for bad in ({**meta, "version": 1}, {**meta, "scale": 2}):  # scale without version 2; patterns that do not fit
        np.savez(tmp_path / "bad.npz", q=q, meta=np.array(json.dumps(bad)))
        with pytest.raises(ValueError, match="not a ric_ext NAE bank"):
            NAEBank.load(tmp_path / "bad.npz")


def test_a_scale_that_does_not_divide_the_image_is_refused():
    with pytest.raises(ValueError, match="bank scale 3"):
        train_bank(_tiny_classifier(), SHAPE, 64, BankSettings(entries=1, steps=1, scale=3), progress=False)
    with pytest.raises(ValueError, match="scale"):
        BankSettings(scale=0)


def test_encryption_from_a_scaled_bank_decrypts_bit_for_bit(scaled):
    clf, b = scaled
    # smooth images, which the share carries losslessly (noise would take the lossy fallback)
    x = upsample(torch.randint(0, 256, (6, 3, 4, 4), generator=torch.Generator().manual_seed(1)), 4).float() / 255
    key = Key.generate()
    ct = Cipher(clf, key, bank=b, progress=False).encrypt(x)
    assert torch.equal(Cipher(clf, Key.generate()).predict(ct.pixels), ct.labels)
    out = Cipher.from_ciphertext(ct, key).decrypt_uint8(ct)[0]
    assert torch.equal(out, torch.round(x * 255).to(torch.uint8))


def test_a_lazy_bank_at_reduced_resolution():
    clf = _tiny_classifier()
    s = BankSettings(entries=2, steps=5, shares=1, validate_shares=4, scale=2)
    b = bank_lazy.filled(bank_lazy.empty("00" * 32, 64, SHAPE, 3, s), clf, [2])
    assert b.q.shape == (1, 2, 3, 8, 8) and b.shape == SHAPE and b.labels == [2]
    assert b.starts(torch.tensor([2]), torch.zeros(1, 12, dtype=torch.uint8), b"k" * 32).shape == (1, *SHAPE)
