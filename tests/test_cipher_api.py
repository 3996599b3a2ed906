"""The public constructors: Cipher(classifier, key), Cipher.pad, Cipher.paper, Cipher.for_scheme, and the
deprecated positional Cipher(model, classifier, key, ...), which must make the same ciphers."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

from ric_ext import Cipher, Key, NAEConfig
from ric_ext.engines import DigitsEngine, ReplayedEngine
from ric_ext.errors import PaperSchemeWarning

NONCES = torch.arange(4 * 12, dtype=torch.uint8).reshape(4, 12)


def _same(a: Cipher, b: Cipher, x: torch.Tensor) -> None:
    """Both ciphers make the same ciphertexts (pixels, header, steps) under fixed nonces."""
    ca, cb = a.encrypt(x, NONCES[: len(x)]), b.encrypt(x, NONCES[: len(x)])
    assert torch.equal(ca.pixels, cb.pixels) and ca.header == cb.header
    assert torch.equal(ca.steps, cb.steps)


def test_new_form_signature_and_engines(svhn_classifier, tiny_trained):
    params = list(inspect.signature(Cipher).parameters)
    assert params[:2] == ["classifier", "key"] and "scheme" not in params and "micro_batch" not in params
    key = Key.generate()
    assert isinstance(Cipher(svhn_classifier, key).engine, DigitsEngine)
    assert isinstance(Cipher.pad(svhn_classifier, key).engine, ReplayedEngine)
    assert isinstance(Cipher.paper(tiny_trained, svhn_classifier, key).engine, ReplayedEngine)
    c = Cipher(svhn_classifier, key)
    assert c.with_key(Key.generate()).engine is c.engine  # banks and compiled steps are shared across keys


def test_new_form_refuses_what_it_does_not_take(svhn_classifier):
    key = Key.generate()
    with pytest.raises(TypeError, match=r"Cipher\(classifier.*Cipher\.pad\(classifier, key"):
        Cipher(svhn_classifier, key, scheme="pad")  # a replayed scheme's option: its own constructor
    with pytest.raises(TypeError, match="micro_batch"):
        Cipher(svhn_classifier, key, micro_batch=8)
    with pytest.raises(TypeError, match="key"):
        Cipher(svhn_classifier)
    with pytest.raises(TypeError, match="key must be a ric_ext.keys.Key"):
        Cipher(svhn_classifier, b"0" * 32)
    with pytest.raises(TypeError, match="nae must be a ric_ext.NAEConfig"):
        Cipher(svhn_classifier, key, nae={"lr": 0.2})
    with pytest.raises(ValueError, match="scheme must be one of"):
        Cipher.for_scheme("xor", svhn_classifier, key)


def test_old_positional_form_warns_and_makes_the_same_cipher(svhn_classifier, svhn_images):
    x = svhn_images[0][:3]
    key = Key.generate()
    with pytest.warns(DeprecationWarning, match=r"use Cipher\(classifier, key"):
        old = Cipher(None, svhn_classifier, key)
    _same(old, Cipher(svhn_classifier, key), x)
    with pytest.warns(DeprecationWarning, match=r"use Cipher\(classifier, key"):
        old = Cipher(None, svhn_classifier, key=key, bank=None)  # the key by name, and a digits option
    _same(old, Cipher(svhn_classifier, key, bank=None), x)
    cfg = NAEConfig(steps=3, stop="fixed")
    with pytest.warns(DeprecationWarning, match=r"use Cipher\.pad\(classifier, key"):
        old = Cipher(None, svhn_classifier, key, cfg, 8, 2, scheme="pad", pad_a=0.9)
    new = Cipher.pad(svhn_classifier, key, nae=cfg, batch_size=8, micro_batch=2, a=0.9)
    assert (old.scheme.a, old.engine.micro_batch, old.nae_config, old.batch_size) == (0.9, 2, cfg, 8)
    _same(old, new, x)


def test_old_form_paper_scheme_warns_as_before(tiny_trained, svhn_classifier, svhn_images):
    key = Key.generate()
    cfg = NAEConfig(steps=2, stop="fixed")
    with pytest.warns(DeprecationWarning, match=r"Cipher\.paper\(model, classifier, key") as got:
        old = Cipher(tiny_trained, svhn_classifier, key, cfg)  # a model and no scheme: the paper's, with its warning
    assert any(issubclass(w.category, PaperSchemeWarning) for w in got)
    _same(old, Cipher.paper(tiny_trained, svhn_classifier, key, nae=cfg), svhn_images[0][:2])
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        Cipher(tiny_trained, svhn_classifier, key, scheme="paper")  # chosen by name: no leak warning
    assert [w.category for w in got] == [DeprecationWarning]
    with pytest.raises(ValueError, match="scheme must be one of"):
        Cipher(None, svhn_classifier, key, scheme="xor")
    with pytest.raises(TypeError, match="model must be a ric_ext RIC module or None"):
        Cipher(torch.nn.Linear(2, 2), svhn_classifier, key)
