"""Made the version-1 ciphertext fixture (run once, at commit 1a9d0f9, before
format version 2 existed; kept for the record, not re-run by the tests).

    python tests/data/format_v1/make_fixture.py

Writes: tiny_ric.pt (RIC width 4, depth 2, seeded init), key.json, c0-c2.png
(version-1 ciphertexts of bundled SVHN samples 0-2 under the default NAE
settings of that version: c=10, kappa=5, 100 steps, per-sample early stop) and
expected.npz (what version-1 decryption produced, uint8).
"""

import os

import numpy as np
import torch

from ric_ext.cipher import Cipher
from ric_ext.demo import load_samples
from ric_ext.fileformat import read_png, write_png
from ric_ext.keys import Key
from ric_ext.models import RIC, load_classifier
from ric_ext.models.registry import ASSETS, load_ric, save_ric

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
save_ric(os.path.join(HERE, "tiny_ric.pt"), RIC(3, 4, 2), overwrite=False)
model = load_ric(os.path.join(HERE, "tiny_ric.pt"))
key = Key.generate()
key.save(os.path.join(HERE, "key.json"))
cipher = Cipher.paper(model, load_classifier("svhn", ASSETS), key)
x, _ = load_samples()
ct = cipher.encrypt(x[:3])
for i in range(3):
    write_png(os.path.join(HERE, f"c{i}.png"), ct[i], key)
back = [read_png(os.path.join(HERE, f"c{i}.png"), key) for i in range(3)]
x_hat = torch.cat([cipher.decrypt(b) for b in back])
np.savez(
    os.path.join(HERE, "expected.npz"),
    decrypted=(x_hat * 255).round().to(torch.uint8).numpy(),
    labels=ct.labels.numpy(),
)
print(ct.header["version"], ct.labels.tolist())
