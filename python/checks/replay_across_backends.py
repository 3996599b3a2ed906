"""Does a ciphertext decrypt to the same image under another CPU backend? Format 3 (replayed
NAE) against format 4 (the digits scheme).

Encrypts --n images in this process, decrypts them here, then decrypts the same ciphertext
files in fresh processes with oneDNN's convolutions off, with ATEN_CPU_CAPABILITY=default and
on one thread. For each scheme and variant: how many images decrypt to other bytes than here,
the worst PSNR against this process's decryption, and how many subpixels differ by more than
10 grey levels in the worst image.

    python python/checks/replay_across_backends.py --dataset lfw --n 48 --data ../shared/data
    python python/checks/replay_across_backends.py --dataset svhn --n 64 --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

from ric_ext import Key, data
from ric_ext.cipher import Cipher
from ric_ext.fileformat import write_png
from ric_ext.models import load_classifier

VARIANTS = {
    "oneDNN off": ({}, "torch.backends.mkldnn.enabled = False"),
    "ATEN_CPU_CAPABILITY=default": ({"ATEN_CPU_CAPABILITY": "default"}, ""),
    "one thread": ({"OMP_NUM_THREADS": "1"}, "torch.set_num_threads(1)"),
}

CHILD = """
import sys, numpy as np, torch
{pre}
from ric_ext import Key
from ric_ext.cipher import Cipher, Ciphertext
from ric_ext.fileformat import read_png
key = Key.load(sys.argv[1]); files = sys.argv[3:]
ct = Ciphertext.cat([read_png(f, key) for f in files])
cipher = Cipher.from_ciphertext(ct, key)
np.save(sys.argv[2], cipher.decrypt_uint8(ct)[0].numpy())
"""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="lfw", choices=("lfw", "svhn"))
    p.add_argument("--n", type=int, default=48)
    p.add_argument("--data", default=None)
    p.add_argument("--schemes", default="pad,digits")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.dataset == "lfw":
        x, clf = data.lfw("test", args.data, size=64).images[: args.n], load_classifier("lfw")
    else:
        x, clf = data.svhn("test", args.data).images[: args.n], load_classifier("svhn")
    out = {"dataset": args.dataset, "n": int(len(x)), "schemes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        key = Key.generate()
        key.save(os.path.join(tmp, "k.json"))
        for scheme in args.schemes.split(","):
            cipher = Cipher.for_scheme(scheme, clf, key)
            ct = cipher.encrypt(x)
            files = []
            for i in range(len(ct)):
                files.append(os.path.join(tmp, f"{scheme}_{i:04d}.png"))
                write_png(files[-1], ct[i], key)
            here = cipher.decrypt_uint8(ct)[0].numpy()
            rows = {"here_psnr_to_plaintext": psnr(here, x.numpy())}
            for name, (env, pre) in VARIANTS.items():
                dst = os.path.join(tmp, f"{scheme}_{len(rows)}.npy")
                code = CHILD.format(pre=pre)
                r = subprocess.run(
                    [sys.executable, "-c", code, os.path.join(tmp, "k.json"), dst, *files],
                    env={**os.environ, **env},
                    capture_output=True,
                    text=True,
                )
                if r.returncode != 0:
                    rows[name] = {"error": r.stderr.strip().splitlines()[-1]}
                    continue
                there = np.load(dst)
                per = [psnr(there[i], here[i]) for i in range(len(x))]
                worst = int(np.argmin(per))
                rows[name] = {
                    "images_differing": int(sum(p != math.inf for p in per)),
                    "worst_psnr_db": per[worst],
                    "worst_subpixels_off_by_more_than_10": int(
                        (np.abs(there[worst].astype(int) - here[worst].astype(int)) > 10).sum()
                    ),
                    "subpixels": int(there[worst].size),
                }
            out["schemes"][scheme] = rows
            print(scheme, json.dumps(rows), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
