#!/usr/bin/env python
"""Recipe study: train several recipes for the same compute budget and compare them by validation PSNR.

Each arm is ``python -m ric_ext train`` with the common settings below plus its
own flags, stopped by ``--budget-min`` (minutes of training-step compute, see
ric_ext/training/clock.py: pauses and validation are not charged). Validation:
SVHN test indices 0-199 (disjoint from the paper subset 1000-1499), evaluated
as ``evaluate`` does, every ``--val-every`` steps and at the end.

Arms run one after another (two torch jobs on a 2-core machine slow each
other 10-100x); a finished arm is skipped and an interrupted one resumes from
its checkpoint, so the study can be stopped and restarted.

    python python/recipes/recipe_study.py --root /tmp/study --budget-min 8            # run all arms
    python python/recipes/recipe_study.py --root /tmp/study --only base,cosine        # some arms
    python python/recipes/recipe_study.py --root /tmp/study --table                   # markdown table
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

COMMON = [
    "--dataset",
    "svhn",
    "--classifier",
    "svhn",
    "--depth",
    "4",
    "--steps",
    "1000000",
    "--val-split",
    "test",
    "--val-start",
    "0",
    "--val-n",
    "200",
    "--log-every",
    "25",
    "--ckpt-every",
    "100",
    "--grid-every",
    "1000000",
    "--seed",
    "0",
]

# name -> (flags, what it tests). Every arm after "base" changes one thing from "cosine".
_BEST = ["--width", "32", "--batch-size", "32", "--lr", "1e-3", "--schedule", "cosine", "--warmup", "100"]
ARMS = {
    "base": (
        ["--width", "32", "--batch-size", "32", "--lr", "3e-4"],
        "the bundled model's recipe (constant lr 3e-4), fresh NAEs",
    ),
    "cosine": (_BEST, "warm-up 100 + cosine, peak lr 1e-3"),
    "onecycle": (
        ["--width", "32", "--batch-size", "32", "--lr", "1e-3", "--schedule", "onecycle"],
        "one-cycle, peak lr 1e-3",
    ),
    "ema": (_BEST + ["--ema", "0.995"], "cosine + EMA 0.995"),
    "bf16": (_BEST + ["--amp", "bf16"], "cosine + bf16 autocast"),
    "batch64": (
        ["--width", "32", "--batch-size", "64", "--lr", "1e-3", "--schedule", "cosine", "--warmup", "100"],
        "cosine, batch 64",
    ),
    "w50": (
        ["--width", "50", "--batch-size", "32", "--lr", "1e-3", "--schedule", "cosine", "--warmup", "100"],
        "cosine, width 50",
    ),
    "pool": (_BEST + ["--nae-pool", "64"], "cosine, a pool of 64 NAEs per class"),
    "decoder_z": (_BEST + ["--decoder-z", "true"], "cosine, the decoder also sees z (beyond the paper)"),
    "round": (_BEST + ["--round-frac", "0.3"], "cosine, last 30% trained with exact rounding (beyond the paper)"),
}


def run_arm(root: str, name: str, budget: float, val_every: int, extra: list) -> None:
    out = os.path.join(root, name)
    if os.path.exists(os.path.join(out, "DONE")):
        print(f"[study] {name}: done, skipped", flush=True)
        return
    flags, _ = ARMS[name]
    cmd = [
        sys.executable,
        "-m",
        "ric_ext",
        "train",
        *COMMON,
        *flags,
        "--budget-min",
        str(budget),
        "--val-every",
        str(val_every),
        "--out",
        out,
        "--no-progress",
        *extra,
    ]
    print("[study]", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    open(os.path.join(out, "DONE"), "w").close()


def table(root: str) -> str:
    rows = [
        "| arm | what | steps | compute min | final val PSNR dB | best val PSNR dB (step) | val SSIM | agreement "
        "| ciphertext vs plaintext PSNR dB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, (_, what) in ARMS.items():
        path = os.path.join(root, name, "validation.jsonl")
        if not os.path.exists(path):
            continue
        recs = [json.loads(l) for l in open(path)]
        last, best = recs[-1], max(recs, key=lambda r: r["val_psnr"])
        rows.append(
            f"| {name} | {what} | {last['step']} | {last['compute_s'] / 60:.1f} | {last['val_psnr']:.2f} | "
            f"{best['val_psnr']:.2f} ({best['step']}) | {last['val_ssim']:.4f} | "
            f"{100 * last['val_agreement']:.1f}% | {last['val_cipher_psnr']:.2f} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="runs/study", help="one folder per arm under this (default: %(default)s)")
    ap.add_argument(
        "--budget-min", type=float, default=8.0, help="training compute per arm, minutes (default: %(default)s)"
    )
    ap.add_argument("--val-every", type=int, default=100, help="steps between validations (default: %(default)s)")
    ap.add_argument("--only", default="", help="comma-separated arm names (default: all, in order)")
    ap.add_argument("--table", action="store_true", help="print the results table and exit")
    ap.add_argument("extra", nargs="*", help="more flags for every arm (after --)")
    args = ap.parse_args()
    if args.table:
        print(table(args.root))
        return
    names = [n for n in args.only.split(",") if n] or list(ARMS)
    for n in names:
        if n not in ARMS:
            ap.error(f"unknown arm {n!r}; arms: {', '.join(ARMS)}")
    for n in names:
        run_arm(args.root, n, args.budget_min, args.val_every, args.extra)
    print(table(args.root))


if __name__ == "__main__":
    main()
