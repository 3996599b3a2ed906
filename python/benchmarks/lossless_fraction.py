"""How often the digits scheme carries the image losslessly, and what the base costs.

For each data set (SVHN test 0-999 with the svhn classifier, LFW at 64 px (test, then train)
with lfw, CIFAR-10 test 0-999 (classes interleaved) with cifar10-resnet20; with --sets lfw160,
every LFW test image at 160 px with lfw160):

- at the default base: encrypt every image with the default Cipher (bank start), and report the
  lossless fraction, label agreement (the classifier on the ciphertexts), that every image
  decrypts to its 8-bit self (lossless) or within the lossy bound, and the time; then
  --noise-images images of uniform noise of the set's shape through the same cipher (they never
  compress, so they take the lossy mode): their label agreement and least PSNR;
- at every --bases value: the fraction whose compressed form fits the share (the codec alone).

Then for every base: the lossy fallback's PSNR on uniform noise, and the NAE's steps from the
keyed noise (no bank) on --steps-images SVHN images (what an image costs when its bank start fails).

    python python/benchmarks/lossless_fraction.py --data ../shared/data --models ../shared/models --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

import numpy as np
import torch

from ric_ext import Key, data, payload
from ric_ext.cipher import Cipher
from ric_ext.models import load_classifier

SETS = {
    "svhn": ("svhn", lambda d, n: data.svhn("test", d).images[:n]),
    "lfw64": ("lfw", lambda d, n: torch.cat([data.lfw(s, d, size=64).images for s in ("test", "train")])[:n]),
    "cifar10": ("cifar10-resnet20", lambda d, n: data.cifar10(d).images[:n]),
    # the paper's face size: every LFW test image (631) with --n 1000
    "lfw160": ("lfw160", lambda d, n: data.lfw("test", d, size=160).images[:n]),
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def fits(images: torch.Tensor, base: int) -> float:
    lay = payload.layout(base, tuple(images.shape[1:]))
    return float(np.mean([payload.compress(im, lay) is not None for im in images.numpy()]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="data folder (default: RIC_DATA)")
    p.add_argument("--models", default=None, help="classifier folder (default: RIC_MODELS)")
    p.add_argument("--n", type=int, default=1000, help="images per data set (default: %(default)s)")
    p.add_argument("--bases", default="51,64,85,128")
    p.add_argument("--steps-images", type=int, default=128)
    p.add_argument("--noise-images", type=int, default=16, help="uniform-noise images per set (0: none)")
    p.add_argument("--skip-bases", action="store_true", help="only the data sets, not the per-base rows")
    p.add_argument("--sets", default=",".join(SETS))
    p.add_argument("--json", default=None)
    args = p.parse_args()
    bases = [int(b) for b in args.bases.split(",")]
    out = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
           "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "sets": {}, "bases": {}}  # fmt: skip
    for name in args.sets.split(","):
        clf_name, load = SETS[name]
        x = load(args.data, args.n)
        clf = load_classifier(clf_name, args.models)
        cipher = Cipher(clf, Key.generate())
        cipher.encrypt(x[:2])  # the bank (trained and cached on first use for classifiers without one)
        t0 = time.perf_counter()
        ct = cipher.encrypt(x)
        t1 = time.perf_counter()
        back, lossless = cipher.decrypt_uint8(ct)
        agree = float((cipher.classify(ct) == ct.labels).float().mean())
        exact = [bool(torch.equal(back[i], x[i])) for i in range(len(x))]
        lossy_psnr = [psnr(back[i].numpy(), x[i].numpy()) for i in range(len(x)) if not lossless[i]]
        row = {
            "classifier": clf_name,
            "images": int(len(x)),
            "shape": list(x.shape[1:]),
            "lossless": float(lossless.float().mean()),
            "lossless_images_exact": all(e for e, ll in zip(exact, lossless.tolist()) if ll),
            "lossy_min_psnr": min(lossy_psnr) if lossy_psnr else None,
            "agreement": agree,
            "zero_step": float((ct.steps == 0).float().mean()),
            "encrypt_s": round(t1 - t0, 2),
            "fits_by_base": {b: fits(x, b) for b in bases},
        }
        if args.noise_images:
            g = torch.Generator().manual_seed(1)
            noise = torch.randint(0, 256, (args.noise_images, *x.shape[1:]), generator=g, dtype=torch.uint8)
            nct = cipher.encrypt(noise)
            nback, nll = cipher.decrypt_uint8(nct)
            row["noise_lossy"] = float((~nll).float().mean())
            row["noise_min_psnr"] = min(psnr(nback[i].numpy(), noise[i].numpy()) for i in range(len(noise)))
            row["noise_agreement"] = float((cipher.classify(nct) == nct.labels).float().mean())
        out["sets"][name] = row
        print(name, json.dumps(row), flush=True)
    if args.skip_bases:
        bases = []
    noise = torch.randint(0, 256, (64, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    svhn = data.svhn("test", args.data).images[: args.steps_images]
    clf = load_classifier("svhn", args.models)
    for b in bases:
        lay = payload.layout(b, (3, 32, 32))
        digits, _ = payload.pack(noise.numpy(), lay, [None] * len(noise))
        rec = payload.lossy_image(digits, b).reshape(noise.shape)
        ct = Cipher(clf, Key.generate(), base=b, bank=None).encrypt(svhn)
        out["bases"][b] = {
            "nae_levels": 256 // b,
            "share_bits": round(math.log2(b), 3),
            "noise_psnr": round(psnr(rec, noise.numpy()), 2),
            "steps_from_noise_mean": float(ct.steps.float().mean()),
            "steps_from_noise_max": int(ct.steps.max()),
        }
        print(b, json.dumps(out["bases"][b]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
