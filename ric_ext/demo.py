"""``python -m ric_ext demo``: encrypt -> classify -> decrypt the bundled sample
images with the bundled weights, on CPU, in well under a minute."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch

from .evaluate import evaluate, format_table, write_report
from .keys import Key
from .models.registry import ASSETS, bundled_model_path, load_classifier, load_ric

NOTES = {
    "digits": "the digits scheme (docs/scheme.md#digits): the image travels losslessly compressed in each byte's "
    "low digit under a keyed pad and decrypts bit for bit with the key alone; `demo --scheme pad` / `--scheme "
    "paper` run the older schemes",
    "pad": "the format-3 pad scheme (no networks; docs/scheme.md#pad): recovery is the 8-bit rounding, ~44.8 dB",
    "paper": "the paper's scheme with the bundled model (RIC width 32 trained on CPU, about 25,000 steps; "
    "not paper-grade; docs/models.md)",
}


def load_samples() -> tuple:
    """The 16 bundled SVHN test images (indices 1000-1015) as (16, 3, 32, 32) float in [0, 1] and labels."""
    d = np.load(os.path.join(ASSETS, "svhn_samples.npz"))
    return torch.from_numpy(d["images"]).permute(0, 3, 1, 2).float() / 255.0, torch.from_numpy(d["labels"])


def load_face_samples() -> tuple:
    """The 4 bundled LFW test faces at 160x160 (the first test image of identities 0-3) as
    (4, 3, 160, 160) float in [0, 1] and their identity labels."""
    d = np.load(os.path.join(ASSETS, "lfw160_samples.npz"))
    return torch.from_numpy(d["images"]).permute(0, 3, 1, 2).float() / 255.0, torch.from_numpy(d["labels"])


DATASETS = ("svhn", "faces")


def run_demo(device: str = "cpu", out: Optional[str] = None, scheme: str = "digits", dataset: str = "svhn") -> dict:
    """Encrypt, classify and decrypt the bundled samples with ``scheme`` ("digits", "pad" or "paper"):
    ``dataset`` "svhn" (16 digits, 32x32, the `svhn` classifier) or "faces" (4 LFW faces at the
    paper's 160x160, the `lfw160` classifier; the paper's networks are not trained at that size)."""
    if scheme not in NOTES:
        raise ValueError(f"scheme must be one of {sorted(NOTES)}, got {scheme!r}")
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if dataset == "faces" and scheme == "paper":
        raise ValueError("the paper's networks are not trained at 160x160 (docs/open-problems.md): use --scheme digits")
    dev = torch.device(device)
    model = load_ric(bundled_model_path()).to(dev) if scheme == "paper" else None
    clf = load_classifier("svhn" if dataset == "svhn" else "lfw160", models=ASSETS).to(dev)
    x, y = load_samples() if dataset == "svhn" else load_face_samples()
    res = evaluate(model, clf, x, y, key=Key.generate(), scheme=scheme)
    if out:
        write_report(res, out)
    res["table"] = format_table(res)
    res["note"] = NOTES[scheme]
    return res
