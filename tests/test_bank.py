"""NAE banks (ric_ext.bank): a tiny bank for a tiny classifier, its file, the key's choice of
entry, and the bank a user's own classifier gets on first use, cached and then reused."""

import os

import numpy as np
import pytest
import torch
from torch import nn

from ric_ext import bank as bank_mod
from ric_ext.bank import BankSettings, NAEBank, adjacent_correlations, pass_rates, train_bank
from ric_ext.cipher import Cipher
from ric_ext.keys import Key
from ric_ext.models.classifiers import fingerprint

SHAPE = (3, 16, 16)
TINY = BankSettings(entries=2, steps=30, shares=2, validate_shares=16)


def _tiny_classifier() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(128, 3),
    )
    with torch.no_grad():  # logits on the scale of a trained classifier's, so that a margin of 1 means something
        net[-1].weight.mul_(30)
    return net.eval()


@pytest.fixture(scope="module")
def tiny():
    clf = _tiny_classifier()
    return clf, train_bank(clf, SHAPE, 64, TINY, progress=False)


def test_a_tiny_bank_passes_its_check(tiny):
    clf, b = tiny
    assert b.q.shape == (3, 2, *SHAPE) and b.q.dtype == torch.uint8 and int(b.q.max()) < 4
    assert (b.base, b.classifier) == (64, fingerprint(clf))
    rates = torch.tensor(b.meta["pass_rate"])
    assert rates.shape == (6,) and float(rates.min()) == 1.0  # every pattern, every fresh share
    # measured again on other shares: the same patterns hold
    again = pass_rates(clf, b.q.reshape(6, *SHAPE), torch.arange(3).repeat_interleave(2), 64, 32, 1.0, seed=9)
    assert float(again.min()) >= 0.9
    # the correlation penalty keeps the patterns as uncorrelated as noise
    assert float(adjacent_correlations(b.q.reshape(6, *SHAPE).float()).abs().max()) < 0.1


def test_file_round_trip_and_refusals(tiny, tmp_path):
    _, b = tiny
    path = tmp_path / "b.npz"
    b.save(path)
    back = NAEBank.load(path)
    assert torch.equal(back.q, b.q) and back.base == b.base and back.classifier == b.classifier
    assert back.meta["settings"]["entries"] == 2
    with pytest.raises(FileExistsError):
        b.save(path)
    (tmp_path / "bad.npz").write_bytes(b"not a bank")
    with pytest.raises(ValueError, match="not a ric_ext NAE bank"):
        NAEBank.load(tmp_path / "bad.npz")
    q = b.q.clone()
    q[0, 0, 0, 0, 0] = 4  # a digit the base does not have
    np.savez(tmp_path / "q.npz", q=q.numpy(), meta=np.array('{"format": "ric-ext-nae-bank", "version": 1, '
                                                            '"base": 64, "classifier": "x"}'))  # fmt: skip
    with pytest.raises(ValueError, match="out of range"):
        NAEBank.load(tmp_path / "q.npz")


def test_the_key_and_nonce_choose_the_entry(tiny):
    _, b = tiny
    nonces = torch.randint(0, 256, (200, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(200) % 3
    k1, k2 = Key.generate().bank_key, Key.generate().bank_key
    s1 = b.starts(labels, nonces, k1)
    assert torch.equal(s1, b.starts(labels, nonces, k1))
    picked = (s1[:, None] == b.q[labels]).flatten(2).all(-1).float().argmax(1)
    assert 0.3 < float(picked.float().mean()) < 0.7  # both entries, about equally
    assert not torch.equal(s1, b.starts(labels, nonces, k2))
    with pytest.raises(ValueError, match="labels must be in \\[0, 3\\)"):
        b.starts(torch.tensor([3]), nonces[:1], k1)


def test_a_users_classifier_gets_its_bank_on_first_use(tmp_path, monkeypatch, tiny):
    clf, _ = tiny
    monkeypatch.setenv("RIC_HOME", str(tmp_path / "home"))
    small = BankSettings(entries=2, steps=20, shares=1, validate_shares=8)
    real = bank_mod.train_bank
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **{**kwargs, "settings": small}) if len(args) < 4 else real(*args[:3], small)

    monkeypatch.setattr(bank_mod, "train_bank", counted)
    ramp = (torch.arange(16)[None, :] + torch.arange(16)[:, None]).float() / 30
    x = torch.stack([(ramp + 0.1 * k).clamp(0, 1).expand(*SHAPE) for k in range(4)])  # smooth: lossless
    c = Cipher(clf, Key.generate(), progress=False)
    ct = c.encrypt(x)
    assert calls == [1]
    cached = os.path.join(tmp_path, "home", "banks", bank_mod.file_name(fingerprint(clf), 64, SHAPE))
    assert os.path.isfile(cached)
    assert "refined" in NAEBank.load(cached).meta  # its failing patterns, if any, were trained further
    assert torch.equal(c.classify(ct), ct.labels) and bool(ct.lossless.all())
    assert torch.equal(c.decrypt_uint8(ct)[0], torch.round(x * 255).to(torch.uint8))
    # another cipher (another key, another process alike) loads the cached bank: no second training
    Cipher(clf, Key.generate()).encrypt(x)
    assert calls == [1]


def test_a_bank_for_something_else_is_refused(tiny, tmp_path):
    clf, b = tiny
    other = Cipher(clf, Key.generate(), base=51, bank=b)
    with pytest.raises(ValueError, match="base 64"):
        other.encrypt(torch.rand(1, *SHAPE))
    with pytest.raises(ValueError, match="images \\(3, 16, 16\\)"):
        Cipher(clf, Key.generate(), bank=b).encrypt(torch.rand(1, 3, 8, 8))
    path = tmp_path / "b.npz"
    b.save(path)
    ct = Cipher(clf, Key.generate(), bank=str(path)).encrypt(torch.rand(2, *SHAPE))
    assert int(ct.steps.max()) >= 0 and len(ct) == 2


def test_refine_trains_only_the_failing_patterns_further(tiny):
    clf, b = tiny
    # spoil pattern 3 (label 1, entry 1): the digits of another label's pattern fail for label 1
    q = b.q.clone()
    q[1, 1] = b.q[0, 0]
    rates = pass_rates(clf, q.reshape(6, *SHAPE), torch.arange(3).repeat_interleave(2), 64, 16, 1.0, seed=1)
    assert float(rates[3]) < 1.0 and float(rates[[0, 1, 2, 4, 5]].min()) == 1.0
    spoilt = NAEBank(q, b.base, b.classifier, dict(b.meta, pass_rate=rates.tolist()))
    fixed = bank_mod.refine_failing(spoilt, clf, TINY, rounds=3)
    assert fixed.meta["refined"][0]["patterns"] == [3]  # only the failing one was trained
    assert float(torch.tensor(fixed.meta["pass_rate"])[3]) > float(rates[3])
    for k in (0, 1, 2, 4, 5):  # the others are kept digit for digit
        assert torch.equal(fixed.q.reshape(6, *SHAPE)[k], q.reshape(6, *SHAPE)[k])
    # measured on other fresh shares, the refined pattern holds
    again = pass_rates(clf, fixed.q.reshape(6, *SHAPE)[3:4], torch.tensor([1]), 64, 32, 1.0, seed=7)
    assert float(again[0]) >= 0.9
