"""How far a bank's ciphertexts carry: the crafting classifier, held-out classifiers of the task,
and the crafting classifier after JPEG, for a plain bank and a portable one (issue 36).

For each bank, N CIFAR-10 test images (no classifier here trained on them) are encrypted for the
crafting classifier; each held-out classifier's labels on the ciphertexts are compared with the
crafting classifier's label of the plaintext (what the owner was promised), and its accuracy on
the ciphertexts with its accuracy on the plaintexts. The portable bank is trained over
--ensemble (may be empty) and the cloud transforms (ric_ext/cloud_eot.py), never over a
held-out classifier.

    python python/recipes/portable_transfer.py --data ../shared/data --models ../shared/models \
        --crafting cifar10-resnet20 --held-out cifar10-resnet56 --n 300
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from ric_ext import Cipher, Key, data
from ric_ext.bank import BankSettings, train_bank
from ric_ext.cloud_eot import CloudTransforms, jpeg_bytes
from ric_ext.models import load_classifier


@torch.no_grad()
def labels_of(net, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([net(x[i : i + 250]).argmax(1) for i in range(0, len(x), 250)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None)
    p.add_argument("--models", default=None)
    p.add_argument("--crafting", default="cifar10-resnet20")
    p.add_argument("--ensemble", default="", help="NAME,NAME,...: members of the portable bank's ensemble")
    p.add_argument("--held-out", default="cifar10-resnet56", help="NAME,NAME,...: never in the ensemble")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--jpeg", default="95,90,75")
    p.add_argument("--bank-steps", type=int, default=BankSettings().steps)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()
    names = lambda s: [n for n in s.split(",") if n]  # noqa: E731
    crafting = load_classifier(args.crafting, args.models)
    ensemble = [load_classifier(n, args.models) for n in names(args.ensemble)]
    held = {n: load_classifier(n, args.models) for n in names(args.held_out)}
    if set(held) & set(names(args.ensemble)) or args.crafting in held:
        raise SystemExit("a held-out classifier may be neither the crafting classifier nor an ensemble member")
    x, y = data.stack(data.cifar10(args.data), range(args.n))
    x = torch.round(x * 255) / 255
    shape = tuple(x.shape[1:])
    settings = BankSettings(steps=args.bank_steps)
    banks = {"plain (the classifier's own bank)": "auto"}
    t = time.perf_counter()
    banks["portable"] = train_bank(crafting, shape, 64, settings, ensemble=ensemble, cloud=CloudTransforms(),
                                   progress=False)  # fmt: skip
    portable_s = time.perf_counter() - t
    results = {"machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
               "args": vars(args), "portable_bank_seconds": round(portable_s, 1), "rows": {}}  # fmt: skip
    for bank_name, bank in banks.items():
        cipher = Cipher(crafting, Key.generate(), bank=bank, ensemble=ensemble, progress=False)
        t = time.perf_counter()
        ct = cipher.encrypt(x)
        enc_s = time.perf_counter() - t
        c = ct.as_float()
        row = {
            "encrypt_seconds": round(enc_s, 2),
            "crafting": (labels_of(crafting, c) == ct.labels).float().mean().item(),
        }
        for q in (int(v) for v in args.jpeg.split(",")):
            row[f"crafting after JPEG {q}"] = (labels_of(crafting, jpeg_bytes(c, q)) == ct.labels).float().mean().item()
        for n, net in held.items():
            row[f"{n}: as intended"] = (labels_of(net, c) == ct.labels).float().mean().item()
            row[f"{n}: accuracy cipher / plain"] = [
                (labels_of(net, c) == y).float().mean().item(),
                (labels_of(net, x) == y).float().mean().item(),
            ]
        results["rows"][bank_name] = row
        print(bank_name, json.dumps(row))
    print(f"portable bank trained in {portable_s:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
