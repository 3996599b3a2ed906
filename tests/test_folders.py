"""Folder encryption/decryption: batching by image size, mirrored names, no overwrites."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from ric_ext.cipher import Cipher
from ric_ext.folders import decrypt_folder, encrypt_folder
from ric_ext.keys import Key
from ric_ext.models import RIC
from ric_ext.nae import NAEConfig


class AnySizeClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1).flatten(1))


def test_mixed_sizes_round_trip(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sizes = {"a.png": (32, 32), "b.jpg": (20, 28), "sub/c.png": (32, 32), "sub/d.png": (20, 28)}
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / name)
    key = Key.generate()
    cipher = Cipher.paper(RIC(3, width=4, depth=2), AnySizeClassifier(), key, nae=NAEConfig(steps=2), batch_size=3)
    assert encrypt_folder(cipher, src, tmp_path / "enc", progress=False) == 4
    assert sorted(
        os.path.relpath(os.path.join(d, f), tmp_path / "enc") for d, _, fs in os.walk(tmp_path / "enc") for f in fs
    ) == ["a.png", "b.png", "sub/c.png", "sub/d.png"]
    assert decrypt_folder(cipher, tmp_path / "enc", tmp_path / "dec", progress=False) == 4
    for name, (h, w) in sizes.items():
        out = tmp_path / "dec" / (os.path.splitext(name)[0] + ".png")
        with Image.open(out) as im:
            assert im.size == (w, h)
    # A batch decrypt equals decrypting each file alone (per-sample NAEs).
    from ric_ext.fileformat import read_png

    one = cipher.decrypt(read_png(tmp_path / "enc" / "sub" / "c.png", key))[0]
    with Image.open(tmp_path / "dec" / "sub" / "c.png") as im:
        alone = torch.from_numpy(np.array(im)).permute(2, 0, 1)
    assert torch.equal(torch.clamp(torch.round(one * 255), 0, 255).to(torch.uint8), alone)
    with pytest.raises(FileExistsError):
        encrypt_folder(cipher, src, tmp_path / "enc", progress=False)
