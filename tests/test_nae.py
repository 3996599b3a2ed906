"""NAE generation: targets reached, determinism, key/nonce sensitivity, early stop."""

import pytest
import torch

from ric_ext.nae import NAEConfig, NAEGenerator

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (10, 12), dtype=torch.uint8, generator=g), torch.arange(10)


def test_targets_reached_and_noise_like(svhn_classifier, batch):
    nonces, labels = batch
    z = NAEGenerator(svhn_classifier, NAEConfig(stop="margin", steps=100))(KEY, nonces, labels, (3, 32, 32))
    assert z.shape == (10, 3, 32, 32) and z.min() >= 0 and z.max() <= 1
    with torch.no_grad():
        assert torch.equal(svhn_classifier(z).argmax(1), labels)
    # Noise-like: still close to uniform statistics.
    assert abs(z.mean().item() - 0.5) < 0.02 and abs(z.std().item() - 0.2887) < 0.02


def test_bit_identical_run_after_run(svhn_classifier, batch):
    nonces, labels = batch
    gen = NAEGenerator(svhn_classifier, NAEConfig(stop="margin", steps=30))
    assert torch.equal(gen(KEY, nonces, labels, (3, 32, 32)), gen(KEY, nonces, labels, (3, 32, 32)))


def test_key_and_nonce_sensitivity(svhn_classifier, batch):
    nonces, labels = batch
    gen = NAEGenerator(svhn_classifier, NAEConfig(stop="margin", steps=10))
    z = gen(KEY, nonces, labels, (3, 32, 32))
    other_key = gen(bytes(32), nonces, labels, (3, 32, 32))
    other_nonce = gen(KEY, nonces.flip(0), labels, (3, 32, 32))
    # Independent noise: mean absolute difference of two uniforms is 1/3.
    assert (z - other_key).abs().mean() > 0.25
    assert (z - other_nonce).abs().mean() > 0.25


def test_batch_composition_barely_matters(svhn_classifier, batch):
    # Decryption may regenerate an NAE in another batch than encryption did;
    # per-sample early stopping keeps the trajectories independent, and only
    # conv-algorithm rounding differs (measured max 1.2e-7 on this CPU).
    nonces, labels = batch
    gen = NAEGenerator(svhn_classifier, NAEConfig(stop="margin", steps=50))
    z = gen(KEY, nonces, labels, (3, 32, 32))
    single = torch.cat([gen(KEY, nonces[i : i + 1], labels[i : i + 1], (3, 32, 32)) for i in range(3)])
    torch.testing.assert_close(single, z[:3], rtol=0, atol=1e-5)


def test_zero_steps_is_the_keyed_noise(svhn_classifier, batch):
    from ric_ext import ops

    nonces, labels = batch
    z = NAEGenerator(svhn_classifier, NAEConfig(stop="margin", steps=0))(KEY, nonces, labels, (3, 32, 32))
    assert torch.equal(z, ops.keyed_uniform(KEY, nonces, (3, 32, 32)))


def test_fixed_rule_early_stop_freezes_samples():
    # A classifier whose cost can only rise: every sample is frozen at the first check.
    class Rising(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            logits = torch.zeros(x.shape[0], 3)
            return logits + torch.tensor([float(self.calls), 0.0, 0.0]) + 0 * x.sum()

    clf = Rising()
    nonces = torch.zeros(2, 12, dtype=torch.uint8)
    gen = NAEGenerator(clf, NAEConfig(steps=100, kappa=1e9, stop="fixed"))
    gen(KEY, nonces, torch.tensor([1, 2]), (1, 8, 8))
    # Checks happen every 10 steps; the first check records, the second sees the rise and stops.
    assert clf.calls == 20


def test_native_and_reference_backends_agree(svhn_classifier, batch):
    nonces, labels = batch
    a = NAEGenerator(svhn_classifier, NAEConfig(stop="margin", steps=20))(KEY, nonces[:4], labels[:4], (3, 32, 32))
    b = NAEGenerator(svhn_classifier, NAEConfig(stop="margin", steps=20), backend="torch")(
        KEY, nonces[:4], labels[:4], (3, 32, 32)
    )
    # Adam normalises the step, so few-ulp differences in tanh stay few-ulp in z.
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_bad_settings():
    with pytest.raises(ValueError, match="steps"):
        NAEConfig(steps=-1)
    with pytest.raises(ValueError, match="kappa"):
        NAEConfig(kappa=-1)
    with pytest.raises(TypeError, match="classifier"):
        NAEGenerator("not a module")
