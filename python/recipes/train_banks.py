"""Train the NAE banks that ship with the bundled classifiers (ric_ext/assets/banks/).

    python python/recipes/train_banks.py --classifier svhn --out ric_ext/assets/banks
    python python/recipes/train_banks.py --classifier lfw --out ric_ext/assets/banks
    python python/recipes/train_banks.py --classifier lfw160 --out ric_ext/assets/banks --refine BANK.npz
    python python/recipes/train_banks.py --classifier cifar10-resnet20 --models MODELS --out ric_ext/assets/banks \
        --ensemble cifar10-resnet56,S/vgg_s0.pt2,S/mobile_s0.pt2 --bank-kappa 30      # a portable bank (issue 36)

``--ensemble`` trains a *portable* bank: over those classifiers of the task too and over the cloud
transforms (ric_ext/cloud_eot.py), refined over the same, and named after the members'
fingerprints, which its file records (the members need not ship: the bank suffices to encrypt).

Patterns that fail some fresh shares (pass rate < 1) are trained further afterwards, from where they
are, with fresh shares (``--refine-rounds``, ``ric_ext.bank.refine_failing``); ``--refine FILE`` does
only that to an existing bank file (the refined bank is written to --out under its usual name).

A bank depends only on the classifier's weights, the digit base and the image shape
(ric_ext/bank.py); this recipe records its settings, time and pass rates in the file and
prints them for ric_ext/assets/PROVENANCE.md. A user's own classifier gets its bank the
same way on first use (Cipher, bank="auto"), cached in $RIC_HOME/banks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time

import torch

from ric_ext.bank import BankSettings, NAEBank, file_name, refine_failing, train_bank
from ric_ext.cloud_eot import CloudTransforms
from ric_ext.models import load_classifier
from ric_ext.options import add_options, from_options
from ric_ext.schemes import DIGITS_BASE


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classifier", required=True, help="a classifier name or file (as --classifier elsewhere)")
    p.add_argument("--models", default=None, help="classifier folder (default: RIC_MODELS)")
    p.add_argument("--base", type=int, default=DIGITS_BASE, help="the digit base (default: %(default)s)")
    p.add_argument("--size", type=int, default=None, help="image size (default: the classifier's input size)")
    p.add_argument("--out", required=True, help="folder for the bank file")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--refine-rounds", type=int, default=3, help="rounds for failing patterns (default: %(default)s)")
    p.add_argument("--refine", default=None, help="only refine the failing patterns of this bank file")
    p.add_argument("--ensemble", default="", help="NAME,NAME,...: train a portable bank over these classifiers too")
    add_options(p, BankSettings, prefix="bank")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clf = load_classifier(args.classifier, args.models)
    size = args.size or getattr(clf, "input_size", None)
    if size is None:
        raise SystemExit("--size is needed: the classifier states no input size")
    shape = (getattr(clf, "channels", 3), size, size)
    settings = from_options(BankSettings, args, prefix="bank")
    names = [n for n in args.ensemble.split(",") if n]
    ensemble = [load_classifier(n, args.models) for n in names]
    cloud = CloudTransforms() if ensemble else None
    if args.refine:
        bank = NAEBank.load(args.refine)
        settings = BankSettings(**bank.meta["settings"])
    else:
        bank = train_bank(clf, shape, args.base, settings, ensemble=ensemble, cloud=cloud, log=print)
        bank.meta["machine"] = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
        bank.meta["torch"] = torch.__version__
        bank.meta["classifier_name"] = args.classifier
        if names:
            bank.meta["ensemble_names"] = [os.path.basename(n) for n in names]
    if args.refine_rounds:
        t0 = time.perf_counter()
        bank = refine_failing(bank, clf, settings, rounds=args.refine_rounds, ensemble=ensemble, cloud=cloud, log=print)
        bank.meta["refine_seconds"] = round(time.perf_counter() - t0, 1)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, file_name(bank.classifier, args.base, shape, bank.meta.get("ensemble", ())))
    bank.save(path)
    summary = {k: v for k, v in bank.meta.items() if k not in ("pass_rate", "refined")}
    rates = torch.tensor(bank.meta["pass_rate"])
    summary["pass_rate_min"], summary["pass_rate_mean"] = float(rates.min()), float(rates.mean())
    print(json.dumps({"file": path, "bytes": os.path.getsize(path), **summary}, indent=1, default=str))
    assert dataclasses.asdict(settings) == bank.meta["settings"]


if __name__ == "__main__":
    main()
