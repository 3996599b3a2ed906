"""The digits scheme across devices: encrypt on one, decrypt on the other, byte for byte.

Encrypts N SVHN images (the paper subset with --data, else the bundled samples) plus 2
uniform-noise images (the lossy path) on device A, then decrypts them on A and, with the key
alone, on B. Prints whether the two decryptions are byte-identical, whether the lossless
images are the plaintexts, and the label agreement of the classifier on each device.

    python python/checks/digits_cross_device.py --a cpu --b cuda      # encrypt on CPU, decrypt on GPU
    python python/checks/digits_cross_device.py --a cuda --b cpu      # and the reverse
"""

from __future__ import annotations

import argparse
import json

import torch

from ric_ext import Key
from ric_ext.cipher import Cipher
from ric_ext.demo import load_samples
from ric_ext.models import load_classifier


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", default="cpu", help="device that encrypts")
    p.add_argument("--b", default="cuda", help="device that decrypts")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--data", default=None)
    p.add_argument("--models", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.data:
        from ric_ext import data

        x = data.svhn("paper", args.data).images[: args.n]
    else:
        x = (load_samples()[0][: args.n] * 255).round().to(torch.uint8)
    noise = torch.randint(0, 256, (2, *x.shape[1:]), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    x = torch.cat([x, noise])
    key = Key.generate()
    ca = Cipher(load_classifier("svhn", args.models).to(args.a), key)
    ct = ca.encrypt(x)
    back_a, ll = ca.decrypt_uint8(ct)
    cb = Cipher.from_ciphertext(ct, key, device=args.b)
    back_b, ll_b = cb.decrypt_uint8(ct)
    clf_b = load_classifier("svhn", args.models).to(args.b)
    with torch.no_grad():
        labels_b = clf_b(ct.pixels.to(args.b).float() / 255).argmax(1).cpu()
    res = {
        "a": args.a,
        "b": args.b,
        "n": int(len(x)),
        "lossless": int(ll.sum()),
        "byte_identical_a_b": bool(torch.equal(back_a, back_b) and torch.equal(ll, ll_b)),
        "lossless_are_plaintexts": bool(all(torch.equal(back_a[i], x[i]) for i in range(len(x)) if ll[i])),
        "agreement_on_a": float((ca.classify(ct) == ct.labels).float().mean()),
        "agreement_on_b": float((labels_b == ct.labels).float().mean()),
        "zero_step": float((ct.steps == 0).float().mean()),
    }
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
