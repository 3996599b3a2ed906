"""How far a bank's ciphertexts carry: the crafting classifier, held-out classifiers of the task,
and the crafting classifier after JPEG, for a plain bank and a portable one (issue 36).

For each bank, N CIFAR-10 test images (no classifier here trained on them) are encrypted for the
crafting classifier; each held-out classifier's labels on the ciphertexts are compared with the
crafting classifier's label of the plaintext (what the owner was promised), and its accuracy on
the ciphertexts with its accuracy on the plaintexts. The portable bank is trained over
--ensemble (may be empty) and the cloud transforms (ric_ext/cloud_eot.py), never over a
held-out classifier, or read from --portable-bank. Also reported: the ciphertexts' adjacent-pixel
correlations (mean over images, each direction), encryption time with the bank alone (what a
shipped bank costs) and with every ensemble member checked, against the crafting classifier's
inference on the same images, and that the key alone decrypts them (lossless fraction, bit for bit).

    python python/recipes/portable_transfer.py --data ../shared/data --models ../shared/models \
        --crafting cifar10-resnet20 --ensemble cifar10-resnet56,S/vgg_s0.pt2,S/mobile_s0.pt2 \
        --held-out S/vgg_s1.pt2,S/resnet_s0.pt2,S/mixer_s0.pt2 --n 300 --save-bank bank.npz
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from ric_ext import Cipher, Key, data
from ric_ext.bank import BankSettings, NAEBank, train_bank
from ric_ext.cloud_eot import CloudTransforms, jpeg_bytes
from ric_ext.models import load_classifier
from ric_ext.security import stats


@torch.no_grad()
def labels_of(net, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([net(x[i : i + 250]).argmax(1) for i in range(0, len(x), 250)])


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None)
    p.add_argument("--models", default=None)
    p.add_argument("--crafting", default="cifar10-resnet20")
    p.add_argument("--ensemble", default="", help="NAME,NAME,...: members of the portable bank's ensemble")
    p.add_argument("--held-out", default="cifar10-resnet56", help="NAME,NAME,...: never in the ensemble")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--offset", type=int, default=0, help="first CIFAR-10 test image")
    p.add_argument("--jpeg", default="95,90,75")
    p.add_argument("--base", type=int, default=64)
    p.add_argument("--portable-bank", default=None, help="read the portable bank from this file, do not train one")
    p.add_argument("--save-bank", default=None, help="write the trained portable bank here")
    p.add_argument("--no-plain", action="store_true", help="skip the plain bank's row")
    p.add_argument("--no-cloud", action="store_true", help="train without the cloud transforms")
    for name in ("steps", "shares", "kappa", "decorrelate", "lr", "entries", "scale"):
        default = getattr(BankSettings(), name)
        p.add_argument(f"--bank-{name}", type=type(default), default=default)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()
    names = lambda s: [n for n in s.split(",") if n]  # noqa: E731
    crafting = load_classifier(args.crafting, args.models)
    ensemble = [load_classifier(n, args.models) for n in names(args.ensemble)]
    held = {n: load_classifier(n, args.models) for n in names(args.held_out)}
    if set(held) & set(names(args.ensemble)) or args.crafting in held:
        raise SystemExit("a held-out classifier may be neither the crafting classifier nor an ensemble member")
    x, y = data.stack(data.cifar10(args.data), range(args.offset, args.offset + args.n))
    x = torch.round(x * 255) / 255
    shape = tuple(x.shape[1:])
    tuned = ("steps", "shares", "kappa", "decorrelate", "scale", "lr", "entries")
    settings = BankSettings(**{k: getattr(args, f"bank_{k}") for k in tuned})
    banks = {} if args.no_plain else {"plain (the classifier's own bank)": "auto"}
    portable_s = None
    if args.portable_bank:
        banks["portable"] = NAEBank.load(args.portable_bank)
    else:
        cloud = None if args.no_cloud else CloudTransforms()
        banks["portable"], portable_s = timed(
            lambda: train_bank(crafting, shape, args.base, settings, ensemble=ensemble, cloud=cloud, progress=False)
        )
        if args.save_bank:
            banks["portable"].save(args.save_bank)
    labels_of(crafting, x[:8])  # warm, as the ciphers are before they are timed
    infer_s = min(timed(lambda: labels_of(crafting, x))[1] for _ in range(3))
    results = {"machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
               "args": vars(args), "portable_bank_seconds": portable_s and round(portable_s, 1),
               "inference_seconds": round(infer_s, 3), "rows": {}}  # fmt: skip
    plain_labels = labels_of(crafting, x)
    for bank_name, bank in banks.items():
        key = Key.generate()
        cipher = Cipher(crafting, key, base=args.base, bank=bank, progress=False)
        cipher.encrypt(x[:8])  # the bank is loaded or trained outside the timing
        ct, enc_s = timed(lambda: cipher.encrypt(x))
        row = {"encrypt_seconds": round(enc_s, 2), "encrypt_vs_inference": round(infer_s / enc_s, 3)}
        if ensemble:
            checked = Cipher(crafting, key, base=args.base, bank=bank, ensemble=ensemble, progress=False)
            checked.encrypt(x[:8])
            ct_all, all_s = timed(lambda: checked.encrypt(x))
            row["encrypt_seconds, every member checked"] = round(all_s, 2)
            row["encrypt_vs_inference, every member checked"] = round(infer_s / all_s, 3)
        back, lossless = Cipher.from_ciphertext(ct, key).decrypt_uint8(ct)  # the key alone
        exact = (back == torch.round(x * 255).to(torch.uint8)).flatten(1).all(1)
        row["lossless"] = lossless.float().mean().item()
        row["every lossless image exact"] = bool(exact[lossless].all())
        c = ct.as_float()
        row["crafting"] = (labels_of(crafting, c) == ct.labels).float().mean().item()
        row["labels are the plaintext's"] = (ct.labels == plain_labels).float().mean().item()
        for q in (int(v) for v in args.jpeg.split(",")):
            row[f"crafting after JPEG {q}"] = (labels_of(crafting, jpeg_bytes(c, q)) == ct.labels).float().mean().item()
        for n, net in held.items():
            row[f"{n}: as intended"] = (labels_of(net, c) == ct.labels).float().mean().item()
            if ensemble:
                hits = labels_of(net, ct_all.as_float()) == ct_all.labels
                row[f"{n}: as intended, every member checked"] = hits.float().mean().item()
            row[f"{n}: accuracy cipher / plain"] = [
                (labels_of(net, c) == y).float().mean().item(),
                (labels_of(net, x) == y).float().mean().item(),
            ]
        for d in stats.DIRECTIONS:
            r = stats.adjacent_correlation(ct.pixels, d)
            row[f"adjacent correlation {d} (mean, mean |r|)"] = [round(float(r.nanmean()), 4),
                                                                  round(float(r.abs().nanmean()), 4)]  # fmt: skip
        if bank_name == "portable":
            rates = torch.tensor(bank.meta["pass_rate"])
            row["bank pass rate (crafting), min / mean"] = [float(rates.min()), float(rates.mean())]
        results["rows"][bank_name] = row
        print(bank_name, json.dumps(row), flush=True)
    if portable_s:
        print(f"portable bank trained in {portable_s:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
