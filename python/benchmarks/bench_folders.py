"""Folder jobs against the disk: does decryption keep up with reading and writing the files?

Writes --n SVHN test images as PNGs, encrypts the folder (the default digits scheme), then
times, each in its own pass over a cold output folder:
  - decrypt_folder (read + authenticate each ciphertext, decrypt in batches, write PNGs);
  - the I/O alone: the same reads and authentication, and the same PNG writes, with no decryption;
  - encrypt_folder, and its I/O alone (read and decode the images, write ciphertext PNGs);
  - reencrypt_folder of the ciphertexts under a new key (issue 39), as a ratio of encrypt_folder
    on the same images;
  - reencrypt_folder migrating --migrate-n format-3 (pad scheme) files to format 4, which
    replays each old file's attack to decrypt it (the format-3 files are made first, untimed).
A benchmark, not a test.

    python python/benchmarks/bench_folders.py --data ../shared/data --n 2000 --migrate-n 500
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time

import torch

from ric_ext import Key, data
from ric_ext.cipher import Cipher
from ric_ext.data import load_image, save_image
from ric_ext.fileformat import read_png, write_png
from ric_ext.folders import decrypt_folder, encrypt_folder, plan_outputs, reencrypt_folder
from ric_ext.models import load_classifier


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--migrate-n", type=int, default=500, help="format-3 files to migrate (0: skip)")
    p.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    work = args.dir or tempfile.mkdtemp(prefix="ric_bench_folders_")
    plain, ct = os.path.join(work, "plain"), os.path.join(work, "ct")
    os.makedirs(plain, exist_ok=True)
    x = data.svhn("test", args.data).images[: args.n]
    for i, im in enumerate(x):
        save_image(os.path.join(plain, f"{i:05d}.png"), im, overwrite=True)
    key = Key.generate()
    cipher = Cipher(load_classifier("svhn"), key)
    cipher.encrypt(x[:64])  # warm-up

    def fresh(name: str) -> str:
        path = os.path.join(work, name)
        shutil.rmtree(path, ignore_errors=True)
        return path

    out = {}
    out["encrypt_folder"] = timed(lambda: encrypt_folder(cipher, plain, fresh("ct"), progress=False))
    one = read_png(os.path.join(ct, "00000.png"), key)

    def encrypt_io() -> None:
        dst = fresh("ct_io")
        os.makedirs(dst)
        for f, o in plan_outputs(plain, dst):
            load_image(f)
            write_png(o, one, key)

    out["encrypt_io_only"] = timed(encrypt_io)
    out["decrypt_folder"] = timed(lambda: decrypt_folder(cipher, ct, fresh("back"), progress=False))

    def decrypt_io() -> None:
        dst = fresh("back_io")
        os.makedirs(dst)
        for f, o in plan_outputs(ct, dst):
            c = read_png(f, key)
            save_image(o, c.pixels[0])

    out["decrypt_io_only"] = timed(decrypt_io)
    rotated = cipher.with_key(Key.generate())
    out["reencrypt_folder"] = timed(lambda: reencrypt_folder(rotated, key, ct, fresh("ct2"), progress=False))
    rates = {k: args.n / v for k, v in out.items()}
    if args.migrate_n:
        few = os.path.join(work, "plain_few")
        os.makedirs(few, exist_ok=True)
        for f, _ in plan_outputs(plain, fresh("unused"))[: args.migrate_n]:
            shutil.copy(f, few)
        pad = Cipher.pad(cipher.classifier, key)
        encrypt_folder(pad, few, fresh("ct3"), progress=False)
        dt = timed(lambda: reencrypt_folder(cipher, key, os.path.join(work, "ct3"), fresh("ct3to4"), progress=False))
        dt_enc = timed(lambda: encrypt_folder(cipher, few, fresh("ct_few"), progress=False))
        rates["migrate_format3_folder"] = args.migrate_n / dt
        rates["encrypt_folder_same_images_as_migrate"] = args.migrate_n / dt_enc
    print(json.dumps({k: round(v, 1) for k, v in rates.items()}, indent=1))
    print(
        f"decrypt_folder runs at {rates['decrypt_folder'] / rates['decrypt_io_only']:.2f}x its I/O alone; "
        f"encrypt_folder at {rates['encrypt_folder'] / rates['encrypt_io_only']:.2f}x; "
        f"reencrypt_folder (new key) at {rates['reencrypt_folder'] / rates['encrypt_folder']:.2f}x encrypt_folder"
    )
    if args.migrate_n:
        ratio = rates["migrate_format3_folder"] / rates["encrypt_folder_same_images_as_migrate"]
        print(f"migrating format 3 -> 4 at {ratio:.2f}x encrypt_folder on the same images")
    if args.json:
        meta = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                "n": args.n, "date": time.strftime("%Y-%m-%d")}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "img_per_s": rates}, f, indent=2)
    if not args.dir:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
