"""NAE banks trained a label at a time, when the label first appears (issue 36, item 3).

A classifier with many classes (ImageNet's 1,000) would pay for every label's patterns before its
first image, and keep them all. A *lazy* bank starts empty and trains a label's entries the first
time an image of that label is encrypted, then keeps them in the cached file. Each label is
trained on its own, from its own public seed, so the same label's entries come out the same
whichever images, processes or order asked for it first: two processes that fill one cache agree.
"""

from __future__ import annotations

import hashlib
import time
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from . import ops
from .bank import BankSettings, NAEBank, _device_of, _eot, pass_rates, pattern_shape, upsample
from .nae_digits import quantise

#: Classifiers with more classes than this get a lazy bank on first use; the others train every label at once.
LAZY_FROM = 100


def _label_seed(seed: int, label: int) -> int:
    return int.from_bytes(hashlib.sha256(f"ric-ext lazy bank {seed} {label}".encode()).digest()[:8], "big") >> 1


def empty(classifier_fp: str, base: int, shape: Sequence[int], num_classes: int, settings: BankSettings) -> NAEBank:
    """A lazy bank with no label trained yet."""
    q = torch.zeros(0, settings.entries, *pattern_shape(shape, settings.scale), dtype=torch.uint8)
    meta = {"lazy": True, "labels": [], "num_classes": int(num_classes), "settings": settings.__dict__.copy(),
            "shape": list(shape), "pass_rate": [], "label_seconds": {}}  # fmt: skip
    if settings.scale > 1:
        meta["scale"] = settings.scale
    return NAEBank(q, base, classifier_fp, meta)


def train_label(classifier: nn.Module, bank: NAEBank, label: int, settings: BankSettings) -> tuple:
    """(q (entries, C, h, w) uint8, pass rates (entries,)) of ``label``: EOT as :func:`ric_ext.bank.train_bank`,
    from the label's own public seed."""
    from .keys import hkdf_sha256

    s, shape, dev = settings, bank.shape, _device_of(classifier)
    rows = [label * s.entries + e for e in range(s.entries)]  # the rows a full bank would give these entries
    seed_key = hkdf_sha256(s.seed.to_bytes(8, "big"), b"ric-ext nae bank start")
    nonces = torch.zeros(len(rows), 12, dtype=torch.uint8)
    nonces[:, :8] = torch.tensor([list(r.to_bytes(8, "big")) for r in rows], dtype=torch.uint8)
    w = ops.keyed_uniform(seed_key, nonces.to(dev), pattern_shape(shape, s.scale), tanh_space=True).contiguous()
    labels = torch.full((len(rows),), label, dtype=torch.int64, device=dev)
    gen = torch.Generator(device="cpu").manual_seed(_label_seed(s.seed, label))
    z = _eot(classifier, w, labels, bank.base, s, s.steps, gen, progress=False)
    q = quantise(z, 256 // bank.base).cpu()
    rates = pass_rates(classifier, upsample(q, s.scale), labels.cpu(), bank.base, s.validate_shares, s.ct_margin,
                       s.batch, seed=_label_seed(s.seed + 1, label))  # fmt: skip
    return q, rates


def filled(
    bank: NAEBank,
    classifier: nn.Module,
    labels: Sequence[int],
    *,
    log: Callable[[str], None] = lambda s: None,
    others: Optional[NAEBank] = None,
) -> NAEBank:
    """``bank`` with every label of ``labels`` trained (those it lacks), and the labels ``others`` (another
    copy of the same lazy bank, e.g. the cache file as another process left it) has and it lacks."""
    s = BankSettings(**bank.meta["settings"])
    have = dict(zip(bank.labels, bank.q))
    rates = dict(zip(bank.labels, torch.tensor(bank.meta["pass_rate"]).reshape(-1, s.entries)))
    seconds = dict(bank.meta.get("label_seconds", {}))
    if others is not None:
        for lab, q, r in zip(others.labels, others.q, torch.tensor(others.meta["pass_rate"]).reshape(-1, s.entries)):
            have.setdefault(lab, q)
            rates.setdefault(lab, r)
        seconds = {**others.meta.get("label_seconds", {}), **seconds}
    for lab in sorted(set(int(v) for v in labels) - set(have)):
        if not 0 <= lab < bank.num_labels:
            raise ValueError(f"label {lab} is outside this bank's {bank.num_labels} classes")
        t = time.perf_counter()
        have[lab], rates[lab] = train_label(classifier.eval(), bank, lab, s)
        seconds[str(lab)] = round(time.perf_counter() - t, 2)
        log(
            f"bank: label {lab} trained in {seconds[str(lab)]} s, pass rates {[round(float(r), 3) for r in rates[lab]]}"
        )  # noqa: E501
    order = sorted(have)
    q = torch.stack([have[lab] for lab in order]) if order else bank.q
    meta = dict(bank.meta, labels=order, label_seconds=seconds,
                pass_rate=[round(float(r), 4) for lab in order for r in rates[lab]])  # fmt: skip
    return NAEBank(q, bank.base, bank.classifier, meta)
