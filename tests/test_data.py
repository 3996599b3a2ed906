"""Datasets: fixed splits of the shared files and users' image folders."""

import numpy as np
import pytest
import torch
from conftest import DATA, needs_shared
from PIL import Image

from ric_ext import data


@needs_shared
def test_svhn_splits():
    assert [len(data.svhn(s, DATA)) for s in ("train", "test", "paper")] == [8000, 2000, 500]
    x, y = data.svhn("paper", DATA)[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match="split"):
        data.svhn("val", DATA)


@needs_shared
def test_lfw_split_rule():
    train, test = data.lfw("train", DATA), data.lfw("test", DATA)
    assert len(train) + len(test) == 3023  # docs/data.md: 3,023 JPEGs
    assert int(train.labels.max()) == int(test.labels.max()) == 61  # 62 identities
    # First 80% (rounded down) of each identity's sorted files are train.
    counts_train = torch.bincount(train.labels, minlength=62)
    counts_test = torch.bincount(test.labels, minlength=62)
    assert torch.equal(counts_train, ((counts_train + counts_test) * 4) // 5)
    assert train[0][0].shape == (3, 160, 160)


def test_image_folder_and_missing_files(tmp_path):
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    ds = data.ImageFolder(tmp_path, size=16)
    assert len(ds) == 4 and [ds[i][1] for i in range(4)] == [0, 0, 1, 1]
    assert ds[0][0].shape == (3, 16, 16)
    with pytest.raises(FileNotFoundError, match="no images"):
        data.ImageFolder(_empty(tmp_path))
    with pytest.raises(FileNotFoundError, match="dataset file not found"):
        data.svhn("train", tmp_path)
    with pytest.raises(ValueError, match="dataset must be"):
        data.dataset("imagenet")


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_save_image_is_atomic_and_never_overwrites(tmp_path):
    p = tmp_path / "x.png"
    data.save_image(p, torch.rand(3, 8, 8))
    before = p.read_bytes()
    with pytest.raises(FileExistsError):
        data.save_image(p, torch.rand(3, 8, 8))
    assert p.read_bytes() == before
    assert data.load_image(p).shape == (3, 8, 8)


def test_class_interleaved_deals_classes_in_turn():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])  # sorted by class, unequal classes
    order = data.class_interleaved(labels)
    assert sorted(order.tolist()) == list(range(9))
    assert labels[order].tolist() == [0, 1, 2, 0, 1, 2, 0, 2, 2]
    # Within a class the file's order is kept (the first airplane stays first).
    assert order[:3].tolist() == [0, 3, 5]


@needs_shared
def test_cifar10_index_ranges_hold_every_class():
    # The file is sorted by class (0-999 airplanes, ...); evaluate and the security protocol
    # take index ranges, so every range they use must hold all ten classes equally.
    ds = data.cifar10(DATA)
    assert len(ds) == 10000
    assert torch.equal(torch.bincount(ds.labels[:500], minlength=10), torch.full((10,), 50))
    assert torch.equal(torch.bincount(ds.labels[500:600], minlength=10), torch.full((10,), 10))
    assert torch.equal(ds.labels[:20], torch.arange(20) % 10)
    raw = np.load(f"{DATA}/cifar10_jpeg_test.npz")
    assert torch.equal(ds.images[1], torch.from_numpy(raw["images"][1000]).permute(2, 0, 1))  # first automobile
