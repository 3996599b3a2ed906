"""The security report: report.md (tables with every number's settings),
report.json, an image grid of attacker reconstructions and PNG curves.
Every file is written atomically."""

from __future__ import annotations

import json
import math
import os
from typing import Optional

import torch

from ..data import save_image
from ..io_utils import atomic_write, atomic_write_bytes
from .plot import line_chart


def _f(v, nd=2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def _vs_class_mean(v: Optional[dict]) -> str:
    """The paired comparison as a table cell; "–" for older JSON that lacks it."""
    if not v or v.get("images", 0) == 0:
        return "–"
    return f"{v['dpsnr']:+.2f} ± {_f(v['dpsnr_se'])} dB, closer on {100 * v['share_closer']:.0f}%"


def _save_chart(path: str, img) -> None:
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def format_markdown(res: dict, context: dict) -> str:
    lines = ["# ric_ext security evaluation", ""]
    lines += ["## What was evaluated", ""] + [f"- {k}: {v}" for k, v in context.items()]
    lines += [
        f"- attacker pairs: {res['n_attack_pairs']} train + {res['n_val']} validation; "
        f"scored on {res['n_test']} unseen test images",
        f"- settings: `{json.dumps(res['settings'])}`",
        "",
    ]
    lines += [
        "## Reference guesses (know nothing about the image)",
        "",
        "| guess | PSNR dB | SSIM |",
        "| --- | ---: | ---: |",
    ]
    for k, v in res["references"].items():
        lines.append(f"| {k} | {_f(v['psnr'])} | {_f(v['ssim'], 4)} |")
    base = res["references"]["training-set mean image"]
    lines += [
        "",
        "## Attacks",
        "",
        f"Each row: the attacker's guess of the plaintext scored against it; Δ is against the training-set "
        f"mean image ({_f(base['psnr'])} dB / {_f(base['ssim'], 4)}). Target where one applies: beat that "
        "baseline by at most 1 dB and 0.05 SSIM (re-encryption: the class-mean image).",
        "",
        "Baselines column: PSNR of the training-set mean / own mean grey / class-mean image on the same "
        "images as the row (the re-encryption rows use a subset).",
        "",
        "Per image vs class mean: the label is public, so the mean of PSNR(guess) - PSNR(class-mean image) "
        "image by image, ± its standard error, and the share of images where the guess is the closer. "
        "A guess that knows only the label sits near 0 dB; one that knows each image sits above it.",
        "",
        "| section | attack | PSNR dB | SSIM | ΔPSNR | ΔSSIM | baselines PSNR dB | per image vs class mean "
        "| target | met | settings |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- |",
    ]
    for r in res["rows"]:
        b = r.get("baselines") or res["references"]
        if "baselines" not in r and "class_mean_psnr" in r:  # older JSON: re-encryption rows ran on a subset
            bl = f"– / – / {_f(r['class_mean_psnr'])}"
        else:
            bl = " / ".join(_f(b[k]["psnr"]) for k in ("training-set mean image", "own mean grey", "class-mean image"))
        met = {True: "yes", False: "**NO**"}.get(r.get("meets_target"), "–")
        settings = {k: v for k, v in r["settings"].items() if k not in ("network", "loss", "optimiser")}
        extra = f", best epoch {r['best_epoch']}" if "best_epoch" in r else ""
        lines.append(
            f"| {r['section']} | {r['attack']} | {_f(r['psnr'])} | {_f(r['ssim'], 4)} | "
            f"{r['dpsnr_vs_train_mean']:+.2f} | {r['dssim_vs_train_mean']:+.4f} | {bl} | "
            f"{_vs_class_mean(r.get('vs_class_mean'))} | {r.get('target', '–')} | "
            f"{met} | `{json.dumps(settings)}`{extra} |"
        )
    cur = res["curves"]
    if "statistics" in cur:
        s = cur["statistics"]
        lines += [
            "",
            "## Ciphertext statistics",
            "",
            f"- NPCR {s['npcr_percent']:.3f}% / UACI {s['uaci_percent']:.3f}% between ciphertexts of the same "
            f"images under two keys with the same nonces (ideal for independent uniform images: "
            f"{s['npcr_ideal']}% / {s['uaci_ideal']}%); target NPCR >= 99%: "
            f"{'met' if s['npcr_meets_target'] else '**NOT met**'}",
            f"- histogram chi-square (256 bins, uniform): ciphertexts {s['chi2_ciphertext_mean']:.1f} "
            f"(share below the 5% critical value {s['chi2_critical']}: {100 * s['chi2_ciphertext_pass_5pct']:.1f}%), "
            f"plaintexts {s['chi2_plaintext_mean']:.1f}",
            "",
            "| direction | plaintext r | ciphertext r | ciphertext mean abs r |",
            "| --- | ---: | ---: | ---: |",
        ]
        for d, v in s["correlation"].items():
            lines.append(f"| {d} | {v['plaintext']:.4f} | {v['ciphertext']:.4f} | {v['ciphertext_abs']:.4f} |")
        lines.append(f"\nTarget |r| <= 0.05: {'met' if s['correlation_meets_target'] else '**NOT met**'}")
    if "reencryption" in cur:
        lines += [
            "",
            "## Re-encryption (the same image under fresh nonces)",
            "",
            f"Class-mean image: {_f(cur['reencryption_class_mean_psnr'])} dB, training-set mean "
            f"{_f(cur['reencryption_train_mean_psnr'])} dB on these images.",
            "",
            "| N | " + " | ".join(cur["reencryption"]) + " |",
            "| ---: |" + " ---: |" * len(cur["reencryption"]),
        ]
        ns = [n for n, _ in next(iter(cur["reencryption"].values()))]
        for i, n in enumerate(ns):
            lines.append(f"| {n} | " + " | ".join(_f(v[i][1]) for v in cur["reencryption"].values()) + " |")
        lines += ["", "![re-encryption](reencryption.png)"]
    if "robustness" in cur:
        rob = cur["robustness"]
        lines += [
            "",
            "## Robustness of the ciphertext (in memory)",
            "",
            "The authenticated ciphertext file refuses modified pixels (TamperedError); these curves apply "
            "JPEG and noise to the in-memory ciphertext and decrypt it anyway.",
            "",
            f"Clean: agreement {100 * rob['clean']['agreement']:.1f}%, decryption {_f(rob['clean']['psnr'])} dB.",
        ]
        # the digits scheme's decryption checks each image: the share it refuses, and what the
        # unchecked decoding (the attacks' view) would have read
        refused = "refused" in rob["clean"] or any("refused" in r for r in rob["jpeg"] + rob["noise"])
        extra = (" | refused by decryption", " ---: |") if refused else ("", "")

        def row(first, r):
            tail = f" {100 * r['refused']:.0f}% |" if refused else ""
            return f"| {first} | {100 * r['agreement']:.1f}% | {_f(r['psnr'])} |" + tail

        psnr_name = "unchecked decoding PSNR dB" if refused else "decryption PSNR dB"
        lines += ["", f"| JPEG quality | agreement | {psnr_name}{extra[0]} |", "| ---: | ---: | ---: |" + extra[1]]
        lines += [row(r["quality"], r) for r in rob["jpeg"]]
        lines += [
            "",
            f"| noise sigma (grey levels) | agreement | {psnr_name}{extra[0]} |",
            "| ---: | ---: | ---: |" + extra[1],
        ]
        lines += [row(f"{r['sigma']:g}", r) for r in rob["noise"]]
        lines += ["", "![jpeg](robustness_jpeg.png) ![noise](robustness_noise.png)"]
    if "baselines" in cur:
        lines += [
            "",
            "## Baseline schemes",
            "",
            "| scheme | agreement | recovery PSNR / SSIM | ciphertext vs plaintext PSNR / SSIM | NPCR % | "
            "mean abs r (horizontal) | attacker | attacker PSNR / SSIM |",
            "| --- | ---: | --- | --- | ---: | ---: | --- | --- |",
        ]
        for b in cur["baselines"]:
            att = b["attacker"]
            lines.append(
                f"| {b['scheme']} | {100 * b['agreement']:.1f}% | {_f(b['recovery']['psnr'])} / "
                f"{_f(b['recovery']['ssim'], 4)} | {_f(b['cipher_vs_plain']['psnr'])} / "
                f"{_f(b['cipher_vs_plain']['ssim'], 4)} | {_f(b['npcr_percent'])} | {b['corr_h_abs']:.4f} | "
                f"{b['attacker_name']} | {(_f(att['psnr']) + ' / ' + _f(att['ssim'], 4)) if att else 'not run'} |"
            )
    if "linkage" in cur:
        lk = cur["linkage"]
        inv = next((r for r in res["rows"] if r["section"] == "public_model"), None)
        lines += [
            "",
            "## Public-model attacker and linkage (d, e)",
            "",
            "The attacker makes its own pairs with the shipped weights under keys of its own, never the "
            "victim's. The victims are encrypted under the victim's key: the scored images for (d); for "
            "(e) the scored images and then the distractors, each with its own nonce.",
        ]
        if inv is not None:
            lines += [""] + [
                f"- inverter {name}: validation PSNR {_f(v['val_psnr'])} dB (epoch {v['best_epoch']}), "
                f"{v['train_s']} s to train"
                for name, v in inv["inverters"].items()
            ]
            lines.append(f"- compute: {inv['compute_s']['pairs']} s making pairs, {inv['compute_s']['total']} s in all")
            rs = inv.get("resumed") or {}
            if rs.get("pairs") or any(v for k, v in rs.items() if k != "pairs"):
                done = [f"{k} after epoch {v}" for k, v in rs.items() if k != "pairs" and v]
                lines.append(
                    "- resumed an interrupted run: "
                    + ", ".join((["the same pairs"] if rs.get("pairs") else []) + done)
                    + " (compute counts every run)"
                )
        lines += [
            "",
            f"Linkage: pick the victim's plaintext among {lk['candidates']} candidates with its public label "
            f"({lk['victims']} victims; chance {100 * lk['chance']:.0f}%, target <= {100 * lk['target']:.0f}%).",
            "",
            "| linkage attack | accuracy | met |",
            "| --- | ---: | --- |",
        ]
        lines += [
            f"| {name} | {100 * acc:.1f}% | {'yes' if acc <= lk['target'] else '**NO**'} |"
            for name, acc in lk["accuracy"].items()
        ]
    lines += [
        "",
        "![attacker reconstructions](attacks_grid.png)",
        "",
        "Grid rows: test images. Columns: " + ", ".join(res.get("_grid_columns", [])) + ".",
    ]
    return "\n".join(lines) + "\n"


def write_report(res: dict, out_dir: str, context: Optional[dict] = None, n_grid: int = 8) -> None:
    """report.md, report.json, attacks_grid.png and the curves in ``out_dir`` (each written atomically)."""
    os.makedirs(out_dir, exist_ok=True)
    imgs = res.get("_images", {})
    order = [
        "plaintext",
        "ciphertext",
        "inversion_a",
        "inversion_b",
        "inversion_c",
        "public_model",
        "wrong_key",
        "lsb",
        "noise_cover",
    ]
    cols = [k for k in order if k in imgs]
    res["_grid_columns"] = cols
    k = min(n_grid, imgs["plaintext"].shape[0]) if "plaintext" in imgs else 0
    if k:
        rows = [torch.cat([imgs[c][i].float().clamp(0, 1) for c in cols], dim=-1) for i in range(k)]
        grid = torch.cat(rows, dim=-2)
        scale = max(1, 64 // imgs["plaintext"].shape[-2])  # small images (32x32): enlarged 2x, nearest neighbour
        grid = grid.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
        save_image(os.path.join(out_dir, "attacks_grid.png"), grid, overwrite=True)
    cur = res["curves"]
    if "reencryption" in cur:
        series = dict(cur["reencryption"])
        ns = [n for n, _ in next(iter(series.values()))]
        series["class-mean image"] = [(n, cur["reencryption_class_mean_psnr"]) for n in ns]
        series["training-set mean"] = [(n, cur["reencryption_train_mean_psnr"]) for n in ns]
        _save_chart(
            os.path.join(out_dir, "reencryption.png"),
            line_chart(series, "Mean of N encryptions vs the plaintext", "N", "PSNR dB"),
        )
    if "robustness" in cur:
        rob = cur["robustness"]
        for kind, key in (("jpeg", "quality"), ("noise", "sigma")):
            pts = rob[kind]
            series = {
                "decryption PSNR (dB)": [(r[key], r["psnr"]) for r in pts],
                "agreement x 50": [(r[key], 50 * r["agreement"]) for r in pts],
            }
            _save_chart(
                os.path.join(out_dir, f"robustness_{kind}.png"),
                line_chart(series, f"Ciphertext under {kind}", key, "dB | agreement x 50"),
            )
    md = format_markdown(res, context or {})
    atomic_write_bytes(os.path.join(out_dir, "report.md"), md.encode("utf-8"))
    clean = {k: v for k, v in res.items() if not k.startswith("_")}
    clean["context"] = context or {}
    atomic_write_bytes(os.path.join(out_dir, "report.json"), json.dumps(clean, indent=2, default=float).encode())
