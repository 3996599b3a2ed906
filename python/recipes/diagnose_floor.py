"""Where does a model lose its recovery quality: the 8-bit rounding, or the networks?

On test images 0..n-1 (SVHN's, or LFW's at 64x64 with our LFW classifier and NAE
lr 0.05 for a faces model: the validation images of training), with fresh
adaptive NAEs for the classifier's labels, prints the 8-bit PSNR of

- the deployed path: rounded ciphertext, so the decoder sees r = E + 5q;
- the same without rounding (quantize='none'): the decoder sees r = E exactly.

If the two are close, the 8-bit error is not what limits the model (the
encoder/decoder pair is); ideas that attack the rounding floor (the decoder
also seeing z, training through the exact rounding) can only pay once they
differ. Also prints the encoder output's range and spread, the share of
ciphertext pixels the clamp cuts, and corr(E, x).

    python python/recipes/diagnose_floor.py [--model svhn] [--n 200]
    python python/recipes/diagnose_floor.py --model faces --dataset lfw --n 100
"""

import argparse

import torch

from ric_ext import data as data_mod
from ric_ext import ops
from ric_ext.metrics import mean_psnr, psnr
from ric_ext.models import load_ric
from ric_ext.models.registry import load_classifier
from ric_ext.nae import NAEConfig, NAEGenerator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="svhn", help="bundled name or model/checkpoint file (default: %(default)s)")
    ap.add_argument("--n", type=int, default=200, help="test images 0..n-1 (default: %(default)s)")
    ap.add_argument(
        "--dataset",
        choices=("svhn", "lfw"),
        default="svhn",
        help="svhn (32x32, SVHN classifier) or lfw (64x64, LFW classifier) (default: %(default)s)",
    )
    args = ap.parse_args()
    m = load_ric(args.model)
    faces = args.dataset == "lfw"
    clf = load_classifier(args.dataset).eval().requires_grad_(False)
    ds = data_mod.dataset(args.dataset, "test", None, 64 if faces else None)
    x, _ = data_mod.stack(ds, list(range(min(args.n, len(ds)))))
    with torch.no_grad():
        y = clf(x).argmax(1)
    nonces = torch.randint(0, 256, (len(x), 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    # faces use NAE lr 0.05 (docs/decisions.md, "Faces NAEs use lr 0.05"); SVHN the paper's default
    cfg = NAEConfig(stop="margin", lr=0.05) if faces else NAEConfig(stop="margin")
    z = NAEGenerator(clf, cfg).generate(bytes(32), nonces, y, tuple(x.shape[1:])).z
    with torch.no_grad():
        e = m.encoder(m.features(x), z)  # once; both ciphertexts below mask it as RIC.encrypt does
        for q, what in (("eval", "rounded ciphertext (deployed)"), ("none", "unrounded ciphertext")):
            c = ops.mask(e, z, m.lam, quantize=q)
            print(f"{what:>30}: PSNR {mean_psnr(psnr(m.decrypt(c, z), x)):.2f} dB")
        c = (1 - m.lam) * e + m.lam * z  # before the clamp, to count what it cuts
        clipped = ((c < -0.5 / 255) | (c > 1 + 0.5 / 255)).float().mean().item()
        corr = torch.corrcoef(torch.stack([e.flatten(), x.flatten()]))[0, 1].item()
        print(
            f"encoder output E: range {e.min():.3f}..{e.max():.3f}, std {e.std():.3f}, corr(E, x) {corr:.3f}; "
            f"ciphertext pixels clamped: {100 * clipped:.2f}%"
        )


if __name__ == "__main__":
    main()
