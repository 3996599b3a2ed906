"""Adaptive NAEs: stop rules, compaction bookkeeping, exact replay, the step
implementations (eager / compiled / CUDA graph) and the TF32 switch."""

import pytest
import torch
from conftest import needs_cuda

from ric_ext import nae as nae_mod
from ric_ext import ops
from ric_ext.nae import NAEConfig, NAEGenerator, StopRule
from ric_ext.nae_step import bucket_size

KEY = bytes(range(32))
SHAPE = (1, 8, 8)


class Linear(torch.nn.Module):
    """A tiny classifier with a known, smooth margin: logits = W vec(z) + b."""

    def __init__(self, k: int = 4, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(64, k, generator=g) * 0.5)
        self.b = torch.nn.Parameter(torch.randn(k, generator=g))

    def forward(self, z):
        return z.flatten(1) @ self.w + self.b


def _nonces(n, seed=0):
    return torch.randint(0, 256, (n, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _margin_after(gen, nonces, labels, steps):
    z = gen.replay(KEY, nonces, labels, SHAPE, steps)
    with torch.no_grad():
        return ops.margin(gen.classifier(z), labels)


@pytest.mark.parametrize("extra", [0.0, 1.5])
def test_margin_rule_stops_at_the_first_step_that_reaches_the_margin(extra):
    clf = Linear()
    cfg = NAEConfig(stop="margin", kappa=2.0, extra_margin=extra, steps=200, lr=0.05)
    gen = NAEGenerator(clf, cfg)
    assert cfg.stop == "margin"
    nonces, labels = _nonces(12), torch.arange(12) % 4
    res = gen.generate(KEY, nonces, labels, SHAPE)
    assert res.steps.dtype == torch.int64 and res.steps.shape == (12,)
    assert (res.steps > 0).any() and (res.steps < 200).all()
    # At its recorded step each sample has margin >= kappa + extra ...
    assert (_margin_after(gen, nonces, labels, res.steps) >= 2.0 + extra).all()
    # ... and one step earlier it had not (so it stopped at the first such step).
    before = res.steps - 1
    ok = before >= 0
    assert (_margin_after(gen, nonces[ok], labels[ok], before[ok]) < 2.0 + extra).all()


def test_step_bound_is_respected():
    # kappa far out of reach: every sample runs to the bound.
    gen = NAEGenerator(Linear(), NAEConfig(stop="margin", kappa=1e6, steps=7))
    res = gen.generate(KEY, _nonces(5), torch.zeros(5, dtype=torch.int64), SHAPE)
    assert res.steps.tolist() == [7] * 5


def test_ciphertext_rule_bookkeeping_under_compaction():
    # stop_fn sees global indices and the step: sample i says "done" at step 2 * i.
    # check_every=2, so each sample must stop exactly at step 2 * i, whatever left the batch before it.
    seen = []

    class Rule(StopRule):
        def check(self, z, idx, t):
            seen.append((t, idx.tolist()))
            assert z.shape[0] == idx.shape[0]
            return idx * 2 <= t, z * 0 + idx[:, None, None, None]  # made: each image's own index

    gen = NAEGenerator(Linear(), NAEConfig(stop="ciphertext", steps=50, check_every=2, check_margin=None))
    res = gen.generate(KEY, _nonces(6), torch.arange(6) % 4, SHAPE, rule=Rule())
    assert res.steps.tolist() == [0, 2, 4, 6, 8, 10]
    # what the passing check made comes back at each image's own row
    assert res.made_mask.all() and res.made[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert all(t % 2 == 0 for t, _ in seen)
    assert seen[1] == (2, [1, 2, 3, 4, 5])  # sample 0 left at step 0
    with pytest.raises(ValueError, match="StopRule"):
        gen.generate(KEY, _nonces(2), torch.arange(2), SHAPE)


def test_ciphertext_rule_gate_checks_once_the_nae_margin_is_reached():
    # A stop_fn that always passes: with the gate at kappa, each sample stops exactly where the
    # margin rule (extra 0) would, i.e. at its first step with NAE margin >= kappa.
    calls = []

    class Rule(StopRule):
        def check(self, z, idx, t):
            calls.append(idx.numel())
            return torch.ones(idx.numel(), dtype=torch.bool), None

    nonces, labels = _nonces(10, 4), torch.arange(10) % 4
    gated = NAEGenerator(
        Linear(), NAEConfig(stop="ciphertext", kappa=2.0, extra_margin=1.0, check_every=1, lr=0.05, steps=200)
    )
    res = gated.generate(KEY, nonces, labels, SHAPE, rule=Rule())
    ref = NAEGenerator(Linear(), NAEConfig(stop="margin", kappa=2.0, extra_margin=0.0, lr=0.05, steps=200))
    assert torch.equal(res.steps, ref.generate(KEY, nonces, labels, SHAPE).steps)
    assert sum(calls) == 10  # one (passing) check per sample, none before its gate opened


def test_replay_reproduces_generate():
    gen = NAEGenerator(Linear(), NAEConfig(stop="margin", kappa=2.0, steps=100, lr=0.05))
    nonces, labels = _nonces(9, 3), torch.arange(9) % 4
    res = gen.generate(KEY, nonces, labels, SHAPE)
    z = gen.replay(KEY, nonces, labels, SHAPE, res.steps)
    # Same per-sample arithmetic; only the batch composition of some steps differs (the matmul's
    # rounding could differ with it, well below 1e-6).
    torch.testing.assert_close(z, res.z, rtol=0, atol=1e-6)
    # Replay in pieces and in reverse order gives the same NAEs.
    parts = torch.cat(
        [gen.replay(KEY, nonces[i : i + 1], labels[i : i + 1], SHAPE, res.steps[i : i + 1]) for i in reversed(range(9))]
    ).flip(0)
    torch.testing.assert_close(parts, z, rtol=0, atol=1e-6)


def test_replay_zero_steps_is_the_noise_and_bad_steps_raise():
    gen = NAEGenerator(Linear(), NAEConfig(stop="margin", steps=10))
    nonces, labels = _nonces(3), torch.arange(3)
    z = gen.replay(KEY, nonces, labels, SHAPE, torch.zeros(3, dtype=torch.int64))
    assert torch.equal(z, ops.keyed_uniform(KEY, nonces, SHAPE))
    with pytest.raises(ValueError, match=r"steps must be in \[0, 10\]"):
        gen.replay(KEY, nonces, labels, SHAPE, torch.tensor([1, 2, 11]))
    with pytest.raises(ValueError, match=r"steps must be in"):
        gen.replay(KEY, nonces, labels, SHAPE, torch.tensor([1, -1, 1]))
    with pytest.raises(TypeError, match="steps"):
        gen.replay(KEY, nonces, labels, SHAPE, torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="shape"):
        gen.replay(KEY, nonces, labels, SHAPE, torch.tensor([1, 2]))


def test_config_round_trip_and_version1_dict():
    cfg = NAEConfig(stop="ciphertext", ct_margin=2.0, check_every=3, steps=40)
    assert NAEConfig.from_dict(cfg.to_dict()) == cfg
    v1 = {"c": 10.0, "kappa": 5.0, "steps": 100, "lr": 0.01, "early_stop": True}
    assert NAEConfig.from_dict(v1) == NAEConfig(stop="fixed")
    assert NAEConfig(extra_margin=1.0).attack_kappa == 6.0
    assert NAEConfig(stop="margin", extra_margin=2.0).attack_kappa == 7.0
    assert NAEConfig(stop="fixed", extra_margin=1.0).attack_kappa == 5.0
    assert NAEConfig().gate == 5.0 and NAEConfig(check_margin=None).gate is None
    assert NAEConfig(check_margin=2.5).gate == 2.5
    for cm in ("kappa", None, 3.0):
        c = NAEConfig(check_margin=cm)
        assert NAEConfig.from_dict(c.to_dict()) == c
    for bad in (
        dict(stop="sometimes"),
        dict(extra_margin=-1.0),
        dict(ct_margin=-0.5),
        dict(check_every=0),
        dict(check_margin="always"),
        dict(check_margin=6.5),
    ):
        with pytest.raises(ValueError):
            NAEConfig(**bad)


def test_bucket_sizes():
    assert [bucket_size(n) for n in (1, 2, 3, 4, 5, 17, 256, 257)] == [1, 2, 4, 4, 8, 32, 256, 512]


def test_compiled_step_equals_eager():
    clf = Linear()
    cfg = NAEConfig(stop="margin", kappa=2.0, steps=30, lr=0.05)
    nonces, labels = _nonces(5, 7), torch.arange(5) % 4
    eager = NAEGenerator(clf, cfg, step_impl="eager").generate(KEY, nonces, labels, SHAPE)
    comp = NAEGenerator(clf, cfg, step_impl="compile").generate(KEY, nonces, labels, SHAPE)
    # Inductor may reassociate the matmul's sums: equal to float32 rounding, same stop decisions.
    assert torch.equal(comp.steps, eager.steps)
    torch.testing.assert_close(comp.z, eager.z, rtol=0, atol=1e-5)


def test_cuda_graph_needs_cuda():
    with pytest.raises(ValueError, match="CUDA"):
        NAEGenerator(Linear(), NAEConfig(stop="margin"), step_impl="cuda_graph").generate(
            KEY, _nonces(1), torch.zeros(1, dtype=torch.int64), SHAPE
        )
    with pytest.raises(ValueError, match="step_impl"):
        NAEGenerator(Linear(), NAEConfig(stop="margin"), step_impl="fast").generate(
            KEY, _nonces(1), torch.zeros(1, dtype=torch.int64), SHAPE
        )


@needs_cuda
def test_cuda_graph_step_equals_eager(svhn_classifier):
    import copy

    clf = copy.deepcopy(svhn_classifier).cuda()
    nonces = _nonces(13, 5)
    labels = torch.arange(13) % 10
    cfg = NAEConfig(stop="margin", steps=60)
    eager = NAEGenerator(clf, cfg, step_impl="eager").generate(KEY, nonces, labels, (3, 32, 32))
    graph = NAEGenerator(clf, cfg, step_impl="cuda_graph").generate(KEY, nonces, labels, (3, 32, 32))
    # Same kernels, but the graph pads the batch to a bucket, which may change cuDNN's reduction order.
    torch.testing.assert_close(graph.z, eager.z, rtol=0, atol=1e-5)
    assert (graph.steps - eager.steps).abs().max() <= 1


def test_tf32_is_off_inside_the_attack_and_restored():
    before = nae_mod._set_fp32_precision(None)
    with nae_mod.deterministic_algorithms():
        inside = nae_mod._set_fp32_precision(None)
        assert inside == nae_mod._no_tf32()
    assert nae_mod._set_fp32_precision(None) == before


def test_margin_by_hand():
    logits = torch.tensor([[1.0, 3.0, 2.0], [5.0, -1.0, 5.0], [0.0, 0.0, 9.0]])
    labels = torch.tensor([1, 0, 0])
    # 3 - max(1, 2) = 1; a tie with another class gives 0; 0 - 9 = -9.
    assert ops.margin(logits, labels).tolist() == [1.0, 0.0, -9.0]
    # The clamped C&W term and the margin agree: cw = max(-margin, -kappa).
    cw = ops.cw_margin(logits, labels, 0.5)
    assert torch.equal(cw, torch.maximum(-ops.margin(logits, labels), torch.tensor(-0.5)))
    with pytest.raises(ValueError):
        ops.margin(logits, labels[:2])


def test_decorrelate_rows_known_answer():
    from ric_ext.nae import decorrelate_rows

    g = torch.tensor([[[[1.0, 2.0, 4.0], [0.0, 8.0, 0.0]]]])
    # each pixel minus beta times the mean of its left and right neighbours (0 past the edges)
    want = torch.tensor([[[[1 - 0.5 * 1.0, 2 - 0.5 * 2.5, 4 - 0.5 * 1.0], [0 - 0.5 * 4, 8.0, 0 - 0.5 * 4]]]])
    assert torch.equal(decorrelate_rows(g, 0.5), want)


def test_decorrelated_nae_replays_exactly_and_is_recorded(svhn_classifier, svhn_images):
    from ric_ext import Cipher, Key

    cfg = NAEConfig(decorrelate=0.5, check_margin=2.0)
    assert NAEConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["decorrelate"] == 0.5
    assert "decorrelate" not in NAEConfig().to_dict()  # headers without it mean 0: old files unchanged
    with pytest.raises(ValueError, match="decorrelate"):
        NAEConfig(decorrelate=1.5)
    x, _ = svhn_images
    cipher = Cipher.pad(svhn_classifier, Key.generate(), nae=cfg, batch_size=8)
    ct = cipher.encrypt(x[:6])
    assert ct.header["nae"]["decorrelate"] == 0.5
    assert torch.equal(cipher.classify(ct), ct.labels)
    z = cipher.regenerate(ct)
    # another batch composition replays the same NAEs bit for bit
    assert torch.equal(torch.cat([cipher.regenerate(ct[i]) for i in range(6)]), z)
    plain = Cipher.pad(svhn_classifier, cipher.key, nae=NAEConfig(check_margin=2.0), batch_size=8)
    ct0 = ct[:]
    ct0.header = dict(ct.header, nae=plain.nae_config.to_dict())
    assert not torch.equal(plain.regenerate(ct0), z)  # the filter changes the attack
