"""How far do NAEs made on two devices (or with two backends) differ, and what
does that do to decryption?

Encrypts N SVHN test images on the first device, regenerates each NAE on the
second device (or with the reference backend), and decrypts the same
ciphertext with both NAEs. Prints max/mean |z_a - z_b| and the recovery PSNR
with each.

    python python/nae_cross_device.py --a cpu --b cuda            # on a GPU machine
    python python/nae_cross_device.py --a cpu --b cpu --b-backend torch   # CPU-only proxy
    python python/nae_cross_device.py --a cpu --b cpu --single            # batch vs one image at a time
"""
from __future__ import annotations

import argparse
import json

import torch

from ric_ext import Key, metrics
from ric_ext.cipher import Cipher
from ric_ext.demo import load_samples
from ric_ext.models import bundled_model_path, load_classifier, load_ric
from ric_ext.nae import NAEConfig, NAEGenerator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", default="cpu")
    p.add_argument("--b", default="cuda")
    p.add_argument("--b-backend", default="native", choices=["native", "torch"])
    p.add_argument("--model", default=None, help="RIC weights (default: bundled)")
    p.add_argument("--models", default=None, help="classifier folder (default: RIC_MODELS, ../shared/models, bundled)")
    p.add_argument("--n", type=int, default=16, help="images (bundled samples, or SVHN paper split with --data)")
    p.add_argument("--data", default=None)
    p.add_argument("--single", action="store_true", help="regenerate the b NAEs one image at a time")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    if args.data:
        from ric_ext import data

        x, _ = data.stack(data.svhn("paper", args.data), list(range(args.n)))
    else:
        x, _ = load_samples()
        x = x[: args.n]
    model = load_ric(args.model or bundled_model_path())
    clf = load_classifier("svhn", args.models)
    key = Key.generate()
    cfg = NAEConfig()
    ca = Cipher(model.to(args.a), clf.to(args.a), key, cfg)
    ct = ca.encrypt(x)
    x_a = ca.decrypt(ct)
    z_a = ca.nae(key.noise_key, ct.nonces, ct.labels, x.shape[1:]).cpu()

    gen_b = NAEGenerator(load_classifier("svhn", args.models).to(args.b), cfg, backend=args.b_backend)
    if args.single:
        z_b = torch.cat([gen_b(key.noise_key, ct.nonces[i:i + 1], ct.labels[i:i + 1], x.shape[1:]).cpu()
                         for i in range(len(ct))])
    else:
        z_b = gen_b(key.noise_key, ct.nonces, ct.labels, x.shape[1:]).cpu()
    model_a = ca.model
    with torch.no_grad():
        x_b = model_a.decrypt(ct.pixels.to(args.a), z_b.to(args.a)).cpu()
    d = (z_a - z_b).abs()
    res = {"a": args.a, "b": args.b, "b_backend": args.b_backend, "single": args.single, "n": int(x.shape[0]),
           "max_abs_dz": float(d.max()), "mean_abs_dz": float(d.mean()),
           "psnr_with_a": float(metrics.psnr(x_a, x).mean()), "psnr_with_b": float(metrics.psnr(x_b, x).mean()),
           "psnr_a_vs_b": float(metrics.psnr(x_a, x_b).clamp(max=200).mean())}
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
