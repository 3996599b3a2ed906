"""Made the golden ciphertexts of formats 3 and 4 (run once, at the commit that added this file,
before issue 37's API change; kept for the record, not re-run by the tests).

    python tests/data/golden/make_golden.py

Writes key.json and, for bundled SVHN samples 8-11 under fixed nonces, the ciphertext files of
the digits scheme (format 4, bundled svhn classifier and bank), the pad scheme (format 3) and the
paper's scheme (format 3, bundled svhn RIC v4): f4_c*.png, f3pad_c*.png, f3paper_c*.png, and
expected.npz (the nonces, and what each decrypts to, uint8). tests/test_golden.py checks that the
code of today encrypts the same images to the same ciphertexts and decrypts the files to the
same bytes.
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
key = Key(bytes(range(7, 39)))  # a fixed, public test key
key.save(os.path.join(HERE, "key.json"), overwrite=True)
nonces = torch.arange(48, dtype=torch.uint8).reshape(4, 12) * 5 + 1
x, _ = load_samples()
x = x[8:12]
clf = load_classifier("svhn", ASSETS)
ciphers = {
    "f4": Cipher(clf, key),
    "f3pad": Cipher.pad(clf, key),
    "f3paper": Cipher.paper(load_ric("svhn"), clf, key),
}
expected = {"nonces": nonces.numpy()}
for name, cipher in ciphers.items():
    ct = cipher.encrypt(x, nonces)
    for i in range(len(ct)):
        write_png(os.path.join(HERE, f"{name}_c{i}.png"), ct[i], key, overwrite=True)
    back = [read_png(os.path.join(HERE, f"{name}_c{i}.png"), key) for i in range(len(ct))]
    expected[name] = torch.cat([cipher.decrypt_uint8(b)[0] for b in back]).numpy()
np.savez(os.path.join(HERE, "expected.npz"), **expected)
