"""Made the format-2 ciphertext fixture (run once, at commit 3f579bf, before the
2026-12-03 refactor of the op table, the stop rule and the CLI; kept for the record,
not re-run by the tests).

    PYTHONPATH=<that commit's installed package> python tests/data/format_v2/make_fixture.py

Writes key.json, c0-c3.png (format-2 ciphertexts of bundled SVHN samples 4-7 under
the bundled SVHN model "svhn" (v4) and the default NAE settings: the ciphertext stop
rule, micro-batch 32) and expected.npz (what that version's decryption produced,
uint8, and the labels and step counts).
"""

import os

import numpy as np
import torch

from ric_ext.cipher import Cipher
from ric_ext.demo import load_samples
from ric_ext.fileformat import read_png, write_png
from ric_ext.keys import Key
from ric_ext.models import load_classifier
from ric_ext.models.registry import ASSETS, load_ric

HERE = os.path.dirname(os.path.abspath(__file__))
key = Key.generate()
key.save(os.path.join(HERE, "key.json"))
cipher = Cipher.paper(load_ric("svhn"), load_classifier("svhn", ASSETS), key)
x, _ = load_samples()
ct = cipher.encrypt(x[4:8])
for i in range(len(ct)):
    write_png(os.path.join(HERE, f"c{i}.png"), ct[i], key)
back = [read_png(os.path.join(HERE, f"c{i}.png"), key) for i in range(len(ct))]
x_hat = torch.cat([cipher.decrypt(b) for b in back])
np.savez(
    os.path.join(HERE, "expected.npz"),
    decrypted=(x_hat * 255).round().to(torch.uint8).numpy(),
    labels=ct.labels.numpy(),
    steps=ct.steps.numpy(),
)
print(ct.header["version"], ct.labels.tolist(), ct.steps.tolist())
