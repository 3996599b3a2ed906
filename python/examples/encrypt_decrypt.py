"""The Python API from end to end, on the 16 SVHN images bundled with the package (no data, no GPU).

The owner makes a key, encrypts images for a classifier, and keeps the ciphertexts as PNG files;
the cloud classifies the ciphertexts as it would the images; later, anywhere, the key alone
decrypts the files bit for bit.

    python python/examples/encrypt_decrypt.py [--out FOLDER]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch

from ric_ext import Cipher, Key
from ric_ext.demo import load_samples
from ric_ext.fileformat import read_png, write_png
from ric_ext.models import load_classifier


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="where the key and ciphertexts go (default: a temporary folder)")
    out = p.parse_args().out or tempfile.mkdtemp(prefix="ric_example_")
    images, _ = load_samples()  # (16, 3, 32, 32) float in [0, 1]

    # the owner: a key (kept secret), a cipher for the cloud's classifier, ciphertexts as files
    key = Key.generate()
    key.save(os.path.join(out, "key.json"))
    classifier = load_classifier("svhn")
    cipher = Cipher(classifier, key)
    ct = cipher.encrypt(images)
    for i in range(len(ct)):
        write_png(os.path.join(out, f"{i:02d}.png"), ct[i], key)

    # the cloud: the unmodified classifier labels the noise-like ciphertexts as the images
    agree = (cipher.classify(ct) == ct.labels).float().mean().item()
    print(f"{len(ct)} ciphertexts in {out}; the classifier labels {100 * agree:.0f}% of them as their images")

    # later, anywhere: the key file and the ciphertext files suffice (no classifier, no model)
    key = Key.load(os.path.join(out, "key.json"))
    files = [read_png(os.path.join(out, f"{i:02d}.png"), key) for i in range(len(ct))]
    back = torch.cat([Cipher.from_ciphertext(c, key).decrypt_uint8(c)[0] for c in files])
    exact = torch.equal(back, torch.round(images * 255).to(torch.uint8))
    print(f"decrypted with the key alone: {'bit for bit' if exact else 'NOT exact'}")
    if not exact:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
