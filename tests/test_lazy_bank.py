"""Lazy NAE banks (issue 36, item 3): a classifier with many classes trains a label's bank entries
when the label first appears, and the same label's entries come out the same whoever trains them."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from ric_ext import Cipher, Key, bank_lazy
from ric_ext.bank import BankSettings, NAEBank, cache_dir

SHAPE = (3, 4, 4)
CLASSES = bank_lazy.LAZY_FROM + 50


@pytest.fixture
def many_classes(tmp_path, monkeypatch):
    monkeypatch.setenv("RIC_HOME", str(tmp_path))
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, CLASSES)).eval()


def _cached() -> NAEBank:
    (name,) = os.listdir(cache_dir())
    return NAEBank.load(os.path.join(cache_dir(), name))


def test_labels_are_trained_when_they_first_appear(many_classes):
    clf = many_classes
    x = torch.rand(6, *SHAPE, generator=torch.Generator().manual_seed(1))
    cipher = Cipher(clf, Key.generate(), progress=False)
    ct = cipher.encrypt(x)
    assert torch.equal(cipher.predict(ct.pixels), ct.labels)  # the check holds as for any bank
    first = _cached()
    assert first.meta["lazy"] and first.labels == sorted(set(ct.labels.tolist())) and first.num_labels == CLASSES
    assert len(first.labels) < CLASSES and first.q.shape[0] == len(first.labels)  # only what was asked for
    y = torch.rand(12, *SHAPE, generator=torch.Generator().manual_seed(2))
    ct2 = Cipher(clf, Key.generate(), progress=False).encrypt(y)  # a new cipher: loads the file, adds labels
    second = _cached()
    assert set(second.labels) == set(first.labels) | set(ct2.labels.tolist())
    for lab in first.labels:  # kept as they were
        assert torch.equal(second.q[second.labels.index(lab)], first.q[first.labels.index(lab)])
    with pytest.raises(ValueError, match="not trained in this"):
        missing = next(v for v in range(CLASSES) if v not in second.labels)
        second.starts(torch.tensor([missing]), torch.zeros(1, 12, dtype=torch.uint8), b"k" * 32)


def test_a_label_trains_the_same_alone_or_with_others(many_classes):
    fp = "ab" * 32
    empty = bank_lazy.empty(fp, 64, SHAPE, CLASSES, BankSettings(steps=5, validate_shares=4))
    together = bank_lazy.filled(empty, many_classes, [3, 7, 120])
    alone = bank_lazy.filled(empty, many_classes, [7])
    assert together.labels == [3, 7, 120] and alone.labels == [7]
    assert torch.equal(together.q[1], alone.q[0])
    merged = bank_lazy.filled(alone, many_classes, [], others=together)  # another process's copy of the file
    assert merged.labels == [3, 7, 120] and torch.equal(merged.q, together.q)
    with pytest.raises(ValueError, match="outside this bank's"):
        bank_lazy.filled(empty, many_classes, [CLASSES])
