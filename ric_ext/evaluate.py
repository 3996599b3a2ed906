"""Evaluation protocol of docs/scheme.md: accuracy in both domains, recovery quality,
dissimilarity of the ciphertext, and key sensitivity (decryption with another
key). ``evaluate`` returns a dict; ``write_report`` writes JSON, Markdown and an
image grid (plaintext | ciphertext | recovered | wrong key).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import torch
from torch import nn

from . import data as data_mod
from . import metrics
from .batching import DEFAULT_MICRO_BATCH, batch_slices
from .cipher import Cipher
from .io_utils import atomic_write_bytes
from .keys import Key
from .models.networks import RIC
from .nae import NAEConfig
from .ops.pad import DEFAULT_A
from .schemes import DIGITS_BASE, default_scheme


@torch.no_grad()
def evaluate(
    model: Optional[RIC],
    classifier: nn.Module,
    images: torch.Tensor,
    labels: Optional[torch.Tensor] = None,
    key: Optional[Key] = None,
    nae: Optional[NAEConfig] = None,
    batch_size: int = 256,
    micro_batch: Optional[int] = DEFAULT_MICRO_BATCH,
    wrong_key: bool = True,
    metric_mode: str = "ours",
    nonces: Optional[torch.Tensor] = None,
    scheme: Optional[str] = None,
    pad_a: float = DEFAULT_A,
    base: int = DIGITS_BASE,
    bank="auto",
) -> dict:
    """Run encrypt -> classify -> decrypt on (B, C, H, W) images in [0, 1]; returns metrics and tensors.

    ``nonces`` ((B, 12) uint8; default: fresh random ones) fixes the NAEs, so repeated
    evaluations of a changing model see the same ciphertext noise (validation in training).
    ``wrong_key=False`` skips the decryption under another key (validation inside training).
    ``metric_mode="paper"`` adds the authors' metrics (see :mod:`ric_ext.metrics`): PSNR of the
    unrounded reconstruction, SSIM with their uniform 11x11 window and with scikit-image's default 7x7.
    Mean PSNRs count an exact recovery (+inf) as ``metrics.PSNR_CAP`` dB; ``psnr_exact`` says how many.
    ``base`` and ``bank`` are the digits scheme's (:class:`~ric_ext.cipher.Cipher`); its report also
    says how many images travelled losslessly.
    """
    if metric_mode not in ("ours", "paper"):
        raise ValueError(f"metric_mode must be 'ours' or 'paper', got {metric_mode!r}")
    key = key or Key.generate()
    scheme = scheme or default_scheme(model)  # measuring the paper's scheme needs no warning
    cipher = Cipher.for_scheme(
        scheme,
        classifier,
        key,
        model=model,
        nae=nae,
        batch_size=batch_size,
        micro_batch=micro_batch,
        pad_a=pad_a,
        base=base,
        bank=bank,
    )
    ct = cipher.encrypt(images, nonces=nonces)
    x_hat = cipher.decrypt(ct)
    pred_plain, pred_cipher = ct.labels, cipher.classify(ct)
    # Key sensitivity: what a holder of another key gets (same public nonces, labels and step counts).
    wrong = []
    for sl in batch_slices(len(ct), batch_size) if wrong_key else ():
        part = ct[sl]
        other = Key.generate()
        wrong.append(cipher.decode(part, cipher.regenerate(part, key=other), key=other))
    x_wrong = torch.cat(wrong) if wrong else torch.full_like(images, float("nan"))
    c = ct.as_float()
    per_image = metrics.psnr(x_hat, images)
    res = {
        "n": int(images.shape[0]),
        "agreement": metrics.agreement(pred_plain, pred_cipher),
        "psnr": metrics.mean_psnr(per_image),
        "psnr_exact": int(torch.isinf(per_image).sum()),
        "ssim": float(metrics.ssim(x_hat, images).mean()) if min(images.shape[-2:]) >= 11 else float("nan"),
        "mae": float(metrics.mae(x_hat, images).mean()),
        "cipher_psnr": float(metrics.psnr(c, images).mean()),
        "cipher_ssim": float(metrics.ssim(c, images).mean()) if min(images.shape[-2:]) >= 11 else float("nan"),
        "wrong_key_psnr": float(metrics.psnr(x_wrong, images).mean()) if wrong else float("nan"),
        "scheme": cipher.scheme.name,
        "nae": cipher.nae_config.to_dict(),
        "nae_steps_mean": float(ct.steps.float().mean()) if len(ct) else float("nan"),
        "nae_steps_max": int(ct.steps.max()) if len(ct) else 0,
    }
    if ct.lossless is not None:
        res["lossless"] = int(ct.lossless.sum())
    if metric_mode == "paper":
        big = min(images.shape[-2:])
        res["metric_mode"] = "paper"
        res["psnr_paper"] = metrics.mean_psnr(metrics.psnr_float(x_hat, images))
        res["ssim_paper"] = float(metrics.ssim_uniform(x_hat, images, 11).mean()) if big >= 11 else float("nan")
        res["ssim_skimage_default"] = float(metrics.ssim_uniform(x_hat, images, 7).mean()) if big >= 7 else float("nan")
    if labels is not None:
        res["acc_plain"] = metrics.agreement(pred_plain, labels)
        res["acc_cipher"] = metrics.agreement(pred_cipher, labels)
    res["_tensors"] = {"plain": images, "cipher": c, "recovered": x_hat, "wrong_key": x_wrong}
    return res


def format_table(res: dict) -> str:
    rows = [("images", f"{res['n']}")]
    if "acc_plain" in res:
        rows += [
            ("accuracy on plaintext", f"{100 * res['acc_plain']:.2f}%"),
            ("accuracy on ciphertext", f"{100 * res['acc_cipher']:.2f}%"),
        ]
    rows.append(("label agreement (cipher vs plain)", f"{100 * res['agreement']:.2f}%"))
    if "lossless" in res:
        rows.append(
            (
                "recovery",
                f"lossless, bit for bit: {res['lossless']} of {res['n']} images"
                + ("" if res["lossless"] == res["n"] else " (the rest: lossy digits)"),
            )
        )
    rows += [
        (
            "recovery PSNR",
            f"{res['psnr']:.2f} dB"
            + (f" ({res['psnr_exact']} exact, counted as {metrics.PSNR_CAP:.0f} dB)" if res.get("psnr_exact") else ""),
        ),
        ("recovery SSIM", f"{res['ssim']:.4f}"),
        ("recovery MAE (0-255)", f"{res['mae']:.3f}"),
        ("ciphertext vs plaintext PSNR", f"{res['cipher_psnr']:.2f} dB"),
        ("ciphertext vs plaintext SSIM", f"{res['cipher_ssim']:.4f}"),
        ("wrong-key decryption PSNR", f"{res['wrong_key_psnr']:.2f} dB"),
    ]
    if res.get("metric_mode") == "paper":
        rows += [
            ("authors' PSNR (unrounded float x_hat)", f"{res['psnr_paper']:.2f} dB"),
            ("authors' SSIM (uniform 11x11, their call)", f"{res['ssim_paper']:.4f}"),
            ("SSIM, scikit-image default (uniform 7x7)", f"{res['ssim_skimage_default']:.4f}"),
        ]
    if "nae_steps_mean" in res:
        rows.append(("NAE steps per image (mean / max)", f"{res['nae_steps_mean']:.1f} / {res['nae_steps_max']}"))
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)


def write_report(res: dict, out_dir: str, n_grid: int = 8) -> None:
    """report.json, report.md and grid.png (rows: plaintext | ciphertext | recovered | wrong key) in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    clean = {k: v for k, v in res.items() if not k.startswith("_")}
    atomic_write_bytes(os.path.join(out_dir, "report.json"), json.dumps(clean, indent=2).encode())
    md = "# ric_ext evaluation\n\n```\n" + format_table(res) + "\n```\n\n![grid](grid.png)\n"
    atomic_write_bytes(os.path.join(out_dir, "report.md"), md.encode())
    t = res["_tensors"]
    k = min(n_grid, t["plain"].shape[0])
    if k:
        rows = [
            torch.cat([t["plain"][i], t["cipher"][i], t["recovered"][i], t["wrong_key"][i]], dim=-1) for i in range(k)
        ]
        data_mod.save_image(os.path.join(out_dir, "grid.png"), torch.cat(rows, dim=-2), overwrite=True)
