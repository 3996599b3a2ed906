"""Portable NAE banks (issue 36, item 1): trained over an ensemble of classifiers and random cloud
transforms, so that a classifier held out of the ensemble labels the ciphertexts as intended."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import DATA, MODELS, needs_shared
from torch import nn

from ric_ext import Cipher, Key
from ric_ext.bank import BankSettings, file_name, train_bank
from ric_ext.cloud_eot import CloudTransforms, jpeg_bytes, transform

SHAPE = (3, 8, 8)


def _task(n: int, gen: torch.Generator) -> tuple:
    """A tiny task every reasonable model learns alike: the label is the channel lifted above the others."""
    y = torch.randint(0, 3, (n,), generator=gen)
    x = 0.6 * torch.rand(n, *SHAPE, generator=gen) + 0.4 * nn.functional.one_hot(y, 3).float()[:, :, None, None]
    return x, y


def _train(net: nn.Module, seed: int, relabel: int = 0) -> nn.Module:
    """``net`` trained on the task; ``relabel`` k: on labels (y + k) mod 3, a model that reads the task otherwise."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(300):
        x, y = _task(128, gen)
        loss = nn.functional.cross_entropy(net(x), (y + relabel) % 3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def three_classifiers():
    """Two ensemble members of different families (a CNN, an MLP) and a held-out third (pooled linear)."""
    cnn = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 3)
    )
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, 3))
    held_out = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    nets = [_train(net, seed) for net, seed in ((cnn, 1), (mlp, 2), (held_out, 3))]
    x, y = _task(500, torch.Generator().manual_seed(9))
    for net in nets:  # each has learnt the task (chance is 1/3)
        assert (net(x).argmax(1) == y).float().mean() > 0.95
    return nets


SMALL = BankSettings(entries=2, steps=40, shares=2, validate_shares=16, batch=256)


def test_a_portable_bank_carries_over_to_a_held_out_classifier(three_classifiers):
    """Issue 36's tiny test: above chance on a held-out classifier. This task is easy enough that a plain
    bank carries over too (measured: 100%), so this checks the mechanics end to end; the next test
    checks that the members are trained against, and docs/open-problems.md says what is left."""
    cnn, mlp, held_out = three_classifiers
    bank = train_bank(cnn, SHAPE, 64, SMALL, ensemble=[mlp], cloud=CloudTransforms(), progress=False)
    assert len(bank.meta["ensemble"]) == 1 and set(bank.meta["member_pass_rate"]) == set(bank.meta["ensemble"])
    x, _ = _task(90, torch.Generator().manual_seed(5))
    ct = Cipher(cnn, Key.generate(), bank=bank).encrypt(x)
    assert torch.equal(Cipher(cnn, Key.generate()).predict(ct.pixels), ct.labels)  # the crafting classifier: all
    assert ct.header["bank_ensemble"] == bank.meta["ensemble"]  # the header names what the patterns carry to
    assert "bank_ensemble" not in Cipher(cnn, Key.generate(), bank=None).encrypt(x[:2]).header
    with torch.no_grad():
        transfer = (held_out(ct.as_float()).argmax(1) == ct.labels).float().mean().item()
    # chance is 1/3; 0.6 leaves room for a share that fights the pattern, and fails a bank that does not carry over
    assert transfer >= 0.6, transfer


def test_refining_a_portable_bank_keeps_its_ensemble(three_classifiers):
    """refine_failing trains a portable bank's failing patterns over the same members and transforms,
    measures the members again, and refuses another ensemble (the file would misname its members)."""
    from ric_ext.bank import refine_failing

    cnn, mlp, held_out = three_classifiers
    short = BankSettings(entries=2, steps=3, shares=1, validate_shares=16, batch=256)  # few steps: patterns fail
    bank = train_bank(cnn, SHAPE, 64, short, ensemble=[mlp], cloud=CloudTransforms(), progress=False)
    assert min(bank.meta["pass_rate"]) < 1
    better = refine_failing(bank, cnn, ensemble=[mlp], cloud=CloudTransforms())
    assert better.meta["ensemble"] == bank.meta["ensemble"] and better.meta["refined"]
    assert sum(better.meta["pass_rate"]) > sum(bank.meta["pass_rate"])
    assert list(better.meta["member_pass_rate"]) == bank.meta["ensemble"]
    with pytest.raises(ValueError, match="ensemble it was trained with"):
        refine_failing(bank, cnn, ensemble=[held_out])


def test_the_ensemble_members_are_steered_too(three_classifiers):
    """A member that reads the task otherwise (labels shifted by one) labels a plain bank's patterns as
    the crafting classifier's plaintext label almost never; a bank trained over it, almost always."""
    from ric_ext.bank import pass_rates

    cnn = three_classifiers[0]
    odd = _train(nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, 3)), 2, relabel=1)
    labels = torch.arange(3).repeat_interleave(SMALL.entries)

    def odd_rate(bank) -> float:
        return pass_rates(odd, bank.q.reshape(-1, *SHAPE), labels, 64, 32, 1.0).mean().item()

    plain = train_bank(cnn, SHAPE, 64, SMALL, progress=False)
    steered = train_bank(cnn, SHAPE, 64, SMALL, ensemble=[odd], progress=False)
    # measured 0.0 and 1.0; the thresholds leave room for another torch's rounding
    assert odd_rate(plain) < 0.2 and odd_rate(steered) > 0.8, (odd_rate(plain), odd_rate(steered))


def test_ensemble_members_must_match_the_task(three_classifiers):
    cnn = three_classifiers[0]
    four = nn.Sequential(nn.Flatten(), nn.Linear(192, 4))
    with pytest.raises(ValueError, match=r"ensemble member 0 \(\w+\) has 4 classes; the crafting classifier has 3"):
        train_bank(cnn, SHAPE, 64, SMALL, ensemble=[four], progress=False)
    gray = nn.Sequential(nn.Conv2d(1, 3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match=r"ensemble member 1 .* does not take \(3, 8, 8\) images"):
        train_bank(cnn, SHAPE, 64, SMALL, ensemble=[three_classifiers[1], gray], progress=False)
    with pytest.raises(TypeError, match="ensemble member 0 must be a torch.nn.Module"):
        train_bank(cnn, SHAPE, 64, SMALL, ensemble=["resnet"], progress=False)


def test_portable_banks_have_their_own_file_names():
    plain = file_name("ab" * 32, 64, SHAPE)
    a, b = (
        file_name("ab" * 32, 64, SHAPE, ["cd" * 32, "ef" * 32]),
        file_name("ab" * 32, 64, SHAPE, ["ef" * 32, "cd" * 32]),
    )
    assert a == b != plain and a.startswith("abababababababab_p") and a.endswith("_b64_3x8x8.npz")


def test_cloud_transforms_keep_shape_range_and_gradient():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, *SHAPE, requires_grad=True)
    for _ in range(10):
        y, bf16 = transform(x, CloudTransforms(flip=True, jpeg_p=1.0), gen)
        assert y.shape == x.shape and isinstance(bf16, bool)
        (g,) = torch.autograd.grad(y.sum(), x)
        assert g.abs().sum() > 0  # straight-through JPEG: the gradient passes
    # the JPEG round trip is real: at quality 10 an 8x8 noise image changes
    assert (jpeg_bytes(x.detach(), 10) - x.detach()).abs().max() > 0.05
    with pytest.raises(ValueError, match="JPEG qualities"):
        CloudTransforms(jpeg_min=96, jpeg_max=95)


def test_encryption_checks_every_member_and_caches_the_portable_bank(three_classifiers, tmp_path, monkeypatch):
    import os
    import warnings

    from ric_ext.bank import cache_dir
    from ric_ext.models import fingerprint

    monkeypatch.setenv("RIC_HOME", str(tmp_path))
    cnn, mlp, _ = three_classifiers
    x, _ = _task(40, torch.Generator().manual_seed(6))
    key = Key.generate()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no image may stay mislabelled by any member
        ct = Cipher(cnn, key, bank="portable", ensemble=[mlp], progress=False).encrypt(x)
    assert ct.header["ensemble"] == [fingerprint(mlp)]
    for net in (cnn, mlp):
        with torch.no_grad():
            assert torch.equal(net(ct.as_float()).argmax(1), ct.labels)
    cached = os.listdir(cache_dir())
    assert len(cached) == 1 and "_p" in cached[0]  # trained on first use, cached under its ensemble's tag
    again = Cipher(cnn, key, bank="portable")  # no ensemble: any portable bank of the classifier
    assert torch.equal(again.bank_for(SHAPE).q, Cipher(cnn, key, bank="portable", ensemble=[mlp]).bank_for(SHAPE).q)
    assert os.listdir(cache_dir()) == cached  # loaded, not trained again
    # the header's ensemble does not stand in decryption's way: the key alone, as the owner's own cipher
    assert torch.equal(Cipher.from_ciphertext(ct, key).decrypt_uint8(ct)[0], again.decrypt_uint8(ct)[0])
    with pytest.raises(ValueError, match="no portable NAE bank"):
        Cipher(mlp, key, bank="portable").bank_for(SHAPE)


def test_a_member_that_still_disagrees_is_named(three_classifiers):
    from ric_ext import NAEConfig

    cnn = three_classifiers[0]
    odd = _train(nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, 3)), 2, relabel=1)
    x, _ = _task(8, torch.Generator().manual_seed(7))
    cipher = Cipher(cnn, Key.generate(), ensemble=[odd], bank=None, nae=NAEConfig(lr=0.2, steps=1))
    with pytest.warns(UserWarning, match=r"not labelled as their plaintexts.*(ensemble member 0|crafting)"):
        cipher.encrypt(x)
    with pytest.raises(ValueError, match="needs the crafting classifier"):
        Cipher(None, Key.generate(), ensemble=[odd])


@needs_shared
def test_the_shipped_portable_bank_of_cifar10_resnet20(tmp_path, monkeypatch):
    """The bundled portable bank is found without training (empty cache), records its ensemble, and its
    ciphertexts keep the promise: the crafting classifier agrees, the key alone decrypts bit for bit, and
    after JPEG at quality 75 the crafting classifier still gives the label (measured on 1,000 test images:
    docs/benchmarks.md#portable; 0.9 on 64 images leaves room for sampling, and fails a plain bank,
    which gave 80%)."""
    from ric_ext import bank as bank_mod
    from ric_ext import data
    from ric_ext.models import load_classifier
    from ric_ext.models.classifiers import fingerprint

    monkeypatch.setenv("RIC_HOME", str(tmp_path))  # nothing cached: the bank must come from the package
    clf = load_classifier("cifar10-resnet20", MODELS)
    fp = fingerprint(clf)
    path = bank_mod.find_portable(fp, 64, (3, 32, 32))
    assert path is not None and path.startswith(bank_mod.ASSET_DIR)
    fps = [fingerprint(load_classifier("cifar10-resnet56", MODELS))]
    bank = Cipher(clf, Key.generate(), bank="portable").bank_for((3, 32, 32))
    assert fps[0] in bank.meta["ensemble"] and len(bank.meta["ensemble"]) == 3
    assert min(bank.meta["pass_rate"]) == 1.0 and set(bank.meta["member_pass_rate"]) == set(bank.meta["ensemble"])
    assert not os.listdir(tmp_path) or not os.listdir(tmp_path / "banks")  # nothing was trained or cached
    x, _ = data.stack(data.cifar10(DATA), range(64))
    key = Key.generate()
    ct = Cipher(clf, key, bank="portable", progress=False).encrypt(x)
    assert torch.equal(Cipher(clf, Key.generate()).predict(ct.pixels), ct.labels)
    back, lossless = Cipher.from_ciphertext(ct, key).decrypt_uint8(ct)
    assert bool(lossless.all()) and torch.equal(back, torch.round(x * 255).to(torch.uint8))
    with torch.no_grad():
        after = (clf(jpeg_bytes(ct.as_float(), 75)).argmax(1) == ct.labels).float().mean().item()
    assert after >= 0.9, after
