"""Encrypt on one device, decrypt on another: how far do the replayed NAEs
differ, and what does that do to the decrypted image?

Encrypts N SVHN images with a Cipher on device A, then decrypts the same
ciphertexts with a Cipher on device B (or with the reference backend, or one
image at a time) and with the Cipher on A. Prints max/mean |z_A - z_B| of the
replayed NAEs, recovery PSNR both ways, and how many decrypted 8-bit pixels
differ.

    python python/checks/nae_cross_device.py --a cpu --b cuda           # encrypt on CPU, decrypt on GPU
    python python/checks/nae_cross_device.py --a cuda --b cpu           # and the reverse
    python python/checks/nae_cross_device.py --a cpu --b cpu --b-backend torch   # CPU-only proxy: reference kernels
    python python/checks/nae_cross_device.py --a cpu --b cpu --single            # batch vs one image at a time
    python python/checks/nae_cross_device.py --nae-stop fixed                    # the fixed-100-step path
"""

from __future__ import annotations

import argparse
import json

import torch

from ric_ext import Key, metrics
from ric_ext.batching import DEFAULT_MICRO_BATCH
from ric_ext.cipher import Cipher
from ric_ext.demo import load_samples
from ric_ext.models import bundled_model_path, load_classifier, load_ric
from ric_ext.nae import NAEConfig, NAEGenerator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", default="cpu", help="device that encrypts")
    p.add_argument("--b", default="cuda", help="device that decrypts")
    p.add_argument("--b-backend", default="native", choices=["native", "torch"])
    p.add_argument("--nae-stop", default="ciphertext", choices=["margin", "ciphertext", "fixed"])
    p.add_argument("--micro-batch", type=int, default=DEFAULT_MICRO_BATCH, help="0 = whole batches")
    p.add_argument("--model", default=None, help="RIC weights (default: bundled)")
    p.add_argument(
        "--models", default=None, help="classifier folder (default: RIC_MODELS, else bundled classifiers only)"
    )
    p.add_argument("--n", type=int, default=16, help="images (bundled samples, or SVHN paper split with --data)")
    p.add_argument("--data", default=None)
    p.add_argument("--single", action="store_true", help="decrypt on b one image at a time")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    if args.data:
        from ric_ext import data

        x, _ = data.stack(data.svhn("paper", args.data), list(range(args.n)))
    else:
        x, _ = load_samples()
        x = x[: args.n]
    key = Key.generate()
    cfg = NAEConfig(stop=args.nae_stop)
    mb = args.micro_batch or None
    model = load_ric(args.model or bundled_model_path())
    ca = Cipher.paper(
        load_ric(args.model or bundled_model_path()).to(args.a),
        load_classifier("svhn", args.models).to(args.a),
        key,
        nae=cfg,
        micro_batch=mb,
    )
    cb = Cipher.paper(model.to(args.b), load_classifier("svhn", args.models).to(args.b), key, nae=cfg, micro_batch=mb)
    if args.b_backend == "torch":
        cb.nae = NAEGenerator(cb.classifier, cfg, backend="torch", micro_batch=mb)
    ct = ca.encrypt(x)
    x_a = ca.decrypt(ct)
    z_a = ca.regenerate(ct).cpu()
    if args.single:
        x_b = torch.cat([cb.decrypt(ct[i]) for i in range(len(ct))])
        z_b = torch.cat([cb.regenerate(ct[i]).cpu() for i in range(len(ct))])
    else:
        x_b = cb.decrypt(ct)
        z_b = cb.regenerate(ct).cpu()
    d = (z_a - z_b).abs()
    q_a, q_b = (x_a * 255).round(), (x_b * 255).round()
    res = {
        "a": args.a,
        "b": args.b,
        "b_backend": args.b_backend,
        "single": args.single,
        "nae_stop": args.nae_stop,
        "micro_batch": mb,
        "n": int(x.shape[0]),
        "steps_mean": float(ct.steps.float().mean()),
        "max_abs_dz": float(d.max()),
        "mean_abs_dz": float(d.mean()),
        "psnr_decrypt_on_a": float(metrics.psnr(x_a, x).mean()),
        "psnr_decrypt_on_b": float(metrics.psnr(x_b, x).mean()),
        "pixels_differing": int((q_a != q_b).sum()),
        "pixels": int(q_a.numel()),
        "max_pixel_diff": float((q_a - q_b).abs().max()),
        "agreement_on_a": float((ca.classify(ct) == ct.labels).float().mean()),
        "agreement_on_b": float((cb.classify(ct) == ct.labels).float().mean()),
    }
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
