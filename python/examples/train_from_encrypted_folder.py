"""Train a classifier from a folder of ciphertexts: the data owner's archive as a training set.

1. The owner encrypts --n SVHN training images into class folders with the
   ``ric_ext.transforms.Encrypt`` transform and ``write_png`` (only ciphertexts reach the disk).
2. ``ric_ext.data.EncryptedImageFolder`` decrypts them on the fly in ``DataLoader`` workers, with
   the key file alone, and a small CNN trains on them for --epochs; its accuracy is measured on
   SVHN test images.
3. What decrypting costs: the loader's time per batch over the ciphertexts and over the same
   images as plain PNGs (``ric_ext.data.ImageFolder``), both in one process, against the time of
   one training step (forward, backward, optimiser) on a batch.

    python python/examples/train_from_encrypted_folder.py --data ../shared/data --n 2000 --epochs 8
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ric_ext import Cipher, Key, data
from ric_ext.data import EncryptedImageFolder, ImageFolder
from ric_ext.fileformat import write_png
from ric_ext.models import load_classifier
from ric_ext.models.classifiers import LFWNet
from ric_ext.transforms import Encrypt


def loader_seconds_per_batch(ds, batch_size: int, batches: int) -> float:
    it = iter(DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0))
    next(it)  # warm-up: first file, first cipher
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return (time.perf_counter() - t) / batches


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="data folder (default: RIC_DATA)")
    p.add_argument("--n", type=int, default=2000, help="training images to encrypt (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=8, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (default: %(default)s)")
    p.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="ric_encrypted_folder_")
    train = data.svhn("train", args.data)

    # 1. the owner's side: encrypt into class folders, key in a file
    key_path = os.path.join(work, "key.json")
    Key.generate().save(key_path)
    encrypt = Encrypt(Cipher(load_classifier("svhn"), Key.load(key_path)))
    ct_dir, plain_dir = os.path.join(work, "ct"), os.path.join(work, "plain")
    t = time.perf_counter()
    for i in range(args.n):
        image, label = train[i]
        write_png(os.path.join(ct_dir, str(label), f"{i:05d}.png"), encrypt(image), encrypt.cipher.key)
        data.save_image(os.path.join(plain_dir, str(label), f"{i:05d}.png"), image)  # for the comparison only
    print(f"encrypted {args.n} images into {ct_dir} in {time.perf_counter() - t:.1f} s")

    # 2. training from the ciphertexts, decrypted in the loader's workers with the key file alone
    ds = EncryptedImageFolder(ct_dir, key_path)
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
    torch.manual_seed(0)
    net = LFWNet(10)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    steps, step_time = 0, 0.0
    for epoch in range(args.epochs):
        net.train()
        for x, y in loader:
            t = time.perf_counter()
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step_time += time.perf_counter() - t
            steps += 1
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}")
    xt, yt = data.svhn("test", args.data).tensors()
    net.eval()
    with torch.no_grad():
        acc = float((net(xt[:1000]).argmax(1) == yt[:1000]).float().mean())
    print(f"test accuracy after {args.epochs} epochs on {args.n} decrypted-on-the-fly images: {acc:.3f}")

    # 3. the loader's cost, one process, against a training step
    batches = max(1, min(20, args.n // args.batch_size - 1))
    enc = loader_seconds_per_batch(ds, args.batch_size, batches)
    plain = loader_seconds_per_batch(ImageFolder(plain_dir), args.batch_size, batches)
    step = step_time / steps
    print(
        f"per batch of {args.batch_size} ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads): training step {step * 1e3:.1f} ms; loading ciphertexts "
        f"{enc * 1e3:.1f} ms, the same images as plain PNGs {plain * 1e3:.1f} ms; decryption adds "
        f"{(enc - plain) * 1e3:.1f} ms = {(enc - plain) / step:.1%} of a training step"
    )


if __name__ == "__main__":
    main()
