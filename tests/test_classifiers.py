"""Published classifiers load with strict=True and reproduce the README's accuracies."""

import os

import numpy as np
import pytest
import torch
from conftest import DATA, MODELS, needs_shared

from ric_ext.models import fingerprint, load_cifar_resnet, load_classifier


def _acc(model, images, labels, bs=500):
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), bs):
            x = torch.from_numpy(images[i : i + bs]).permute(0, 3, 1, 2).float() / 255
            correct += (model(x).argmax(1).numpy() == labels[i : i + bs]).sum()
    return correct / len(images)


@needs_shared
def test_svhn_accuracy_on_paper_subset():
    d = np.load(os.path.join(DATA, "svhn_test10k.npz"))
    acc = _acc(load_classifier("svhn", MODELS), d["images"][1000:1500], d["labels"][1000:1500])
    assert acc == pytest.approx(0.930, abs=1e-9)  # docs/data.md: 93.0% on 1000-1499


@needs_shared
def test_cifar_resnet20_accuracy():
    d = np.load(os.path.join(DATA, "cifar10_jpeg_test.npz"))
    acc = _acc(load_classifier("cifar10-resnet20", MODELS), d["images"], d["labels"])
    assert acc == pytest.approx(0.810, abs=0.0006)  # README: 81.0% on all 10,000


@needs_shared
def test_cifar_resnet56_loads_strictly():
    m = load_classifier("cifar10-resnet56", MODELS)
    assert sum(p.numel() for p in m.parameters()) == 853_018  # ResNet-56: 0.85 M parameters


def test_bundled_classifier_equals_published(tmp_path):
    from ric_ext.models.registry import ASSETS

    bundled = load_classifier("svhn", ASSETS)
    if os.path.isfile(os.path.join(MODELS, "svhn_ccexam.pth")):
        assert fingerprint(bundled) == fingerprint(load_classifier("svhn", MODELS))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_cifar_resnet(tmp_path / "missing.th")
    bad = tmp_path / "bad.th"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read"):
        load_cifar_resnet(bad)
    with pytest.raises(ValueError, match="classifier must be one of"):
        load_classifier("imagenet")
