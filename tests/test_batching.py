"""Fixed-size micro-batches make each row's result independent of its batch."""

import pytest
import torch

from ric_ext.batching import pad_rows, run_chunked
from ric_ext.models import load_classifier, load_ric
from ric_ext.models.registry import ASSETS


def test_pad_rows_and_chunking_mechanics():
    t = torch.arange(10.0).reshape(5, 2)
    assert torch.equal(pad_rows(t, 7)[5:], t[-1:].expand(2, 2))
    calls = []

    def fn(a, b):
        calls.append(a.shape[0])
        return a + b, a * b

    s, p = run_chunked(fn, (t, t), 2)
    assert calls == [2, 2, 2] and torch.equal(s, 2 * t) and torch.equal(p, t * t)
    assert torch.equal(run_chunked(lambda a: a, (t,), None), t)
    assert run_chunked(lambda a: a, (t[:0],), 4).shape == (0, 2)
    with pytest.raises(ValueError, match="micro_batch"):
        run_chunked(lambda a: a, (t,), 0)


@pytest.mark.parametrize("micro_batch", [4, 8, 16])
@pytest.mark.parametrize("pair", [("svhn", "svhn", 32), ("faces", "lfw", 64)])
def test_bundled_networks_are_row_independent_in_fixed_chunks(micro_batch, pair):
    # What decryption relies on: with the chunk shape fixed, a row's output is the same bits whatever
    # its companions and position. (Without chunking, batches of 1 and 3 round differently on this CPU.)
    model, clf = load_ric(pair[0]), load_classifier(pair[1], ASSETS)
    size = pair[2]
    g = torch.Generator().manual_seed(0)
    z = torch.rand(21, 3, size, size, generator=g)
    c8 = torch.randint(0, 256, (21, 3, size, size), dtype=torch.uint8, generator=g)

    def both(zz, cc):
        zz = zz.clone().requires_grad_(True)
        logits = clf(zz)
        (grad,) = torch.autograd.grad(logits[:, 0].sum(), zz)
        with torch.no_grad():
            return logits.detach(), grad, model.decrypt(cc, zz.detach())

    ref = run_chunked(both, (z, c8), micro_batch)
    for sel in (torch.tensor([3]), torch.tensor([20, 0, 7]), torch.randperm(21, generator=g)[:11]):
        got = run_chunked(both, (z[sel], c8[sel]), micro_batch)
        for r, o in zip(ref, got):
            assert torch.equal(r[sel], o)
