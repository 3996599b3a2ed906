"""The security evaluation behind ``python -m ric_ext evaluate --attacks``.

Runs the paper's threat models against one model / classifier / key and
returns a JSON-able dict of rows; :mod:`.report` turns it into markdown and
figures. Every score is PSNR/SSIM (8-bit, as :mod:`ric_ext.metrics`) of a
guess of the plaintext against the plaintext, next to what guesses that know
nothing about the image score (:mod:`.references`).

Sections (``AttackConfig.attacks``):
  inversion        U-Net on known (ciphertext, plaintext) pairs; variants
                   (a) fresh nonce per image, (b) images share NAEs (one nonce
                   for all, so the NAE depends on the label only), (c) the
                   attacker also gets each ciphertext's public nonce and label.
  keys             decryption with another key, a key one bit away, a wrong
                   label or nonce; NPCR/UACI, histogram chi-square, adjacent-pixel
                   correlation.
  ciphertext_only  the ciphertext, its low/high-pass parts, the residual under a
                   guessed key; re-encryption: the mean of N ciphertexts of one image.
  robustness       JPEG and Gaussian noise on the ciphertext (in memory: the
                   authenticated file refuses modified pixels).
  baselines        the LSB scheme and a plain-noise cover, scored like RIC.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F

from .. import metrics, ops
from ..cipher import Cipher, Ciphertext
from ..keys import Key
from . import stats
from .inversion import InversionSettings, train_inversion
from .references import reference_guesses
from .schemes import lsb_decrypt, lsb_encrypt

SECTIONS = ("inversion", "keys", "ciphertext_only", "robustness", "baselines")
#: Targets of the issue: an attack may beat the training-set mean image by at most this much.
TARGET_DPSNR, TARGET_DSSIM = 1.0, 0.05


@dataclass(frozen=True)
class AttackConfig:
    attacks: Sequence[str] = SECTIONS
    inversion: InversionSettings = field(default_factory=InversionSettings)
    reencrypt_images: int = 10
    reencrypt_n: Sequence[int] = (1, 2, 8, 32)
    jpeg_qualities: Sequence[int] = (95, 90, 75, 50, 25)
    noise_sigmas: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0)   # grey levels (0-255 scale)
    lsb_bits: int = 4

    def __post_init__(self) -> None:
        bad = [a for a in self.attacks if a not in SECTIONS]
        if bad:
            raise ValueError(f"unknown attack section(s) {bad}; choose from {list(SECTIONS)}")
        if self.reencrypt_images < 1 or not self.reencrypt_n or min(self.reencrypt_n) < 1:
            raise ValueError("reencrypt_images and every reencrypt_n must be >= 1")
        if any(not 1 <= q <= 100 for q in self.jpeg_qualities):
            raise ValueError("JPEG qualities must be in [1, 100]")
        if any(s < 0 for s in self.noise_sigmas):
            raise ValueError("noise sigmas must be >= 0")

    def to_dict(self) -> dict:
        return {"attacks": list(self.attacks), "inversion": self.inversion.to_dict(),
                "reencrypt_images": self.reencrypt_images, "reencrypt_n": list(self.reencrypt_n),
                "jpeg_qualities": list(self.jpeg_qualities), "noise_sigmas": list(self.noise_sigmas),
                "lsb_bits": self.lsb_bits}


def score(guess: torch.Tensor, x: torch.Tensor) -> dict:
    """Mean PSNR (dB, capped at 100 per image) and SSIM of guesses against plaintexts."""
    guess = guess.detach().float().cpu().clamp(0, 1)
    out = {"psnr": float(metrics.psnr(guess, x).clamp(max=100).mean())}
    out["ssim"] = float(metrics.ssim(guess, x).mean()) if min(x.shape[-2:]) >= 11 else float("nan")
    return out


class _Scorer:
    """Scores rows and compares them with the training-set mean image's score."""

    def __init__(self, x: torch.Tensor, refs: Dict[str, torch.Tensor]):
        self.x = x
        self.refs = {k: score(v, x) for k, v in refs.items()}
        self.base = self.refs["training-set mean image"]

    def row(self, section: str, name: str, guess: torch.Tensor, settings: dict, target: bool = False,
            against: Optional[dict] = None, extra: Optional[dict] = None) -> dict:
        s = score(guess, self.x)
        base = against or self.base
        r = {"section": section, "attack": name, **s, "dpsnr_vs_train_mean": s["psnr"] - self.base["psnr"],
             "dssim_vs_train_mean": s["ssim"] - self.base["ssim"], "settings": settings,
             "baselines": self.refs}
        if target:
            r["target"] = f"PSNR <= {base['psnr'] + TARGET_DPSNR:.2f} dB and SSIM <= {base['ssim'] + TARGET_DSSIM:.3f}"
            r["meets_target"] = bool(s["psnr"] <= base["psnr"] + TARGET_DPSNR and
                                     not s["ssim"] > base["ssim"] + TARGET_DSSIM)
        if extra:
            r.update(extra)
        return r


def _blur(c: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :]) / 16
    w = k.expand(c.shape[1], 1, 3, 3).contiguous()
    return F.conv2d(F.pad(c, (1, 1, 1, 1), mode="replicate"), w, groups=c.shape[1])


def _jpeg(pixels: torch.Tensor, quality: int) -> torch.Tensor:
    from PIL import Image
    import numpy as np

    out = []
    for p in pixels:
        arr = p.numpy()
        img = Image.fromarray(arr[0], "L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), "RGB")
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(quality))
        back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(img.mode))
        out.append(torch.from_numpy(back[None] if back.ndim == 2 else back.transpose(2, 0, 1).copy()))
    return torch.stack(out) if out else pixels.clone()


def _with(ct: Ciphertext, **kw) -> Ciphertext:
    d = dict(pixels=ct.pixels, nonces=ct.nonces, labels=ct.labels, header=dict(ct.header), steps=ct.steps)
    d.update(kw)
    return Ciphertext(**d)


def _decode(cipher: Cipher, ct: Ciphertext, pixels: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Decode ``pixels`` (``ct``'s, or modified ones) with NAEs ``z``, as the cipher decodes ``ct``."""
    return cipher.decode(_with(ct, pixels=pixels), z)


def _side_info(ct: Ciphertext, num_classes: int) -> torch.Tensor:
    """Ciphertext + one-hot label planes + nonce-byte planes: what attacker (c) sees."""
    B, _, H, W = ct.pixels.shape
    lab = F.one_hot(ct.labels, num_classes).float()[:, :, None, None].expand(B, num_classes, H, W)
    non = (ct.nonces.float() / 255)[:, :, None, None].expand(B, 12, H, W)
    return torch.cat([ct.as_float(), lab, non], 1)


def run_attacks(cipher: Cipher, attack_x: torch.Tensor, test_x: torch.Tensor, train_x: torch.Tensor,
                train_labels: torch.Tensor, config: AttackConfig = AttackConfig(), n_val: int = 50,
                log: Callable[[str], None] = lambda s: None) -> dict:
    """Run the configured attack sections.

    Args:
        cipher: the owner's Cipher (model, classifier, key) under attack.
        attack_x: (N, C, H, W) plaintexts whose ciphertexts the attacker knows
            (the last ``n_val`` are the attacker's validation pairs).
        test_x: (M, C, H, W) unseen plaintexts every attack is scored on.
        train_x, train_labels: images for the reference guesses (training-set and class means).
    Returns:
        {"rows": [...], "references": {...}, "curves": {...}, "settings": {...}, "_images": {...}}
    """
    cfg = config
    if attack_x.shape[0] <= n_val:
        raise ValueError(f"attack_x must hold more than n_val={n_val} images")
    log("encrypting the attacker's pairs and the test images")
    ct_pool, ct_test = cipher.encrypt(attack_x), cipher.encrypt(test_x)
    refs = reference_guesses(test_x, ct_test.labels, train_x, train_labels)
    sc = _Scorer(test_x, refs)
    z_test = cipher.regenerate(ct_test).cpu()
    x_hat_test = _decode(cipher, ct_test, ct_test.pixels, z_test)
    # NAEs an attacker with a guessed (wrong) key regenerates, from the public nonces, labels and steps.
    z_wrong = cipher.regenerate(ct_test, key=Key.generate()).cpu()
    with torch.no_grad():
        num_classes = int(cipher.classifier(test_x[:1].to(cipher.device)).shape[1])
    rows, curves, images = [], {}, {"plaintext": test_x, "ciphertext": ct_test.as_float()}
    tr, va = slice(0, attack_x.shape[0] - n_val), slice(attack_x.shape[0] - n_val, None)
    inv_settings = cfg.inversion.to_dict()

    def invert(name: str, pool_in: torch.Tensor, test_in: torch.Tensor, key: str, target: bool) -> dict:
        log(f"inversion attack {name}")
        rec, info = train_inversion(pool_in[tr], attack_x[tr], pool_in[va], attack_x[va], test_in, cfg.inversion)
        images[key] = rec
        r = sc.row("inversion", name, rec, dict(inv_settings, pairs=attack_x.shape[0] - n_val, val=n_val,
                                                input_channels=int(pool_in.shape[1])), target=target,
                   extra={"best_epoch": info["best_epoch"], "val_psnr_best": info["best_val_psnr"]})
        rows.append(r)
        return r

    inv_a = None
    if "inversion" in cfg.attacks:
        inv_a = invert("(a) known pairs, fresh nonce per image", ct_pool.as_float(), ct_test.as_float(),
                       "inversion_a", True)
        same = torch.zeros(1, 12, dtype=torch.uint8)
        sp = cipher.encrypt(attack_x, nonces=same.expand(attack_x.shape[0], 12).contiguous())
        st = cipher.encrypt(test_x, nonces=same.expand(test_x.shape[0], 12).contiguous())
        invert("(b) images share NAEs (one nonce for all: the NAE depends on the label only)", sp.as_float(),
               st.as_float(), "inversion_b", False)
        invert("(c) known pairs + public nonce and label as input", _side_info(ct_pool, num_classes),
               _side_info(ct_test, num_classes), "inversion_c", True)

    npcr = None
    if "keys" in cfg.attacks:
        log("key sensitivity and ciphertext statistics")
        variants = {
            "decrypt with another key": z_wrong,
            "decrypt with the key one bit away": cipher.regenerate(ct_test, key=cipher.key.with_flipped_bit(0)),
            "right key, wrong label": cipher.regenerate(_with(ct_test, labels=(ct_test.labels + 1) % num_classes)),
            "right key, wrong nonce": cipher.regenerate(
                _with(ct_test, nonces=torch.randint(0, 256, ct_test.nonces.shape, dtype=torch.uint8))),
        }
        for name, z in variants.items():
            rec = _decode(cipher, ct_test, ct_test.pixels, z)
            images.setdefault("wrong_key", rec)
            # Targets apply to the attacker's situation (another key); the right-key rows show how much of
            # the NAE is fixed by key + nonce alone (label and nonce are public anyway).
            rows.append(sc.row("keys", name, rec, {"steps": "the ciphertext's own (public) step counts"},
                               target=not name.startswith("right key")))
        other = Cipher(cipher.model, cipher.classifier, Key.generate(), cipher.nae.config,
                       batch_size=cipher.batch_size, micro_batch=cipher.micro_batch)
        ct_other = other.encrypt(test_x, nonces=ct_test.nonces)
        n_, u_ = stats.npcr_uaci(ct_test.pixels, ct_other.pixels)
        npcr = float(n_.mean())
        chi_c, chi_x = stats.chi_square(ct_test.pixels), stats.chi_square(test_x)
        corr = {d: {"plaintext": float(stats.adjacent_correlation(test_x, d).nanmean()),
                    "ciphertext": float(stats.adjacent_correlation(ct_test.pixels, d).nanmean()),
                    "ciphertext_abs": float(stats.adjacent_correlation(ct_test.pixels, d).abs().nanmean())}
                for d in stats.DIRECTIONS}
        curves["statistics"] = {
            "npcr_percent": npcr, "uaci_percent": float(u_.mean()), "npcr_target": ">= 99%",
            "npcr_meets_target": npcr >= 99.0, "npcr_ideal": 99.609, "uaci_ideal": 33.464,
            "chi2_ciphertext_mean": float(chi_c.mean()), "chi2_plaintext_mean": float(chi_x.mean()),
            "chi2_ciphertext_pass_5pct": float((chi_c < stats.CHI2_CRITICAL_255).float().mean()),
            "chi2_critical": stats.CHI2_CRITICAL_255, "correlation": corr, "correlation_target": "|r| <= 0.05",
            "correlation_meets_target": all(v["ciphertext_abs"] <= 0.05 for v in corr.values())}

    if "ciphertext_only" in cfg.attacks:
        log("ciphertext-only attacks and re-encryption")
        c = ct_test.as_float()
        lam = cipher.model.lam
        for name, guess in (("the ciphertext itself", c), ("low-pass ciphertext (3x3 binomial)", _blur(c)),
                            ("high-pass ciphertext + 0.5", (c - _blur(c) + 0.5)),
                            ("residual (c - lam z') / (1 - lam), z' under a guessed key",
                             ((c - lam * z_wrong) / (1 - lam)))):
            rows.append(sc.row("ciphertext_only", name, guess, {}, target=True))
        R, N = min(cfg.reencrypt_images, test_x.shape[0]), max(cfg.reencrypt_n)
        xr = test_x[:R]
        rep = cipher.encrypt(xr.repeat_interleave(N, 0))
        cs = rep.as_float().reshape(R, N, *xr.shape[1:])
        zs = cipher.regenerate(rep).cpu().reshape(R, N, *xr.shape[1:])
        sub = _Scorer(xr, {k: v[:R] for k, v in refs.items()})
        cls = sub.refs["class-mean image"]
        pool_c, pool_lab = ct_pool.as_float(), ct_pool.labels
        curve = {"ciphertext mean": [], "NAE mean (template, no x)": [], "same-label other images' ciphertexts": []}
        for n in sorted(set(cfg.reencrypt_n)):
            mean_c = cs[:, :n].mean(1)
            curve["ciphertext mean"].append((n, score(mean_c, xr)["psnr"]))
            curve["NAE mean (template, no x)"].append((n, score(zs[:, :n].mean(1), xr)["psnr"]))
            others = []
            for i in range(R):
                sel = (pool_lab == rep.labels[i * N]).nonzero().flatten()[:n]
                others.append(pool_c[sel].mean(0) if sel.numel() else c[i] * 0 + 0.5)
            curve["same-label other images' ciphertexts"].append((n, score(torch.stack(others), xr)["psnr"]))
            rows.append(sub.row("ciphertext_only", f"mean of N={n} re-encryptions of the same image", mean_c,
                                {"images": R, "N": n}, target=(n == N), against=cls,
                                extra={"class_mean_psnr": cls["psnr"]}))
        d = (cs[:, 0] - cs[:, 1]) / 2 + 0.5 if N >= 2 else cs[:, 0]
        rows.append(sub.row("ciphertext_only", "difference of two re-encryptions / 2 + 0.5", d, {"images": R},
                            target=True))
        curves["reencryption"] = {k: v for k, v in curve.items()}
        curves["reencryption_class_mean_psnr"] = cls["psnr"]
        curves["reencryption_train_mean_psnr"] = sub.base["psnr"]
        images["reencryption_mean"] = cs.mean(1)

    if "robustness" in cfg.attacks:
        log("robustness to JPEG and noise")
        rob = {"jpeg": [], "noise": []}
        for q in cfg.jpeg_qualities:
            p = _jpeg(ct_test.pixels, q)
            rob["jpeg"].append({"quality": q, "agreement": metrics.agreement(cipher.predict(p), ct_test.labels),
                                "psnr": score(_decode(cipher, ct_test, p, z_test), test_x)["psnr"]})
        g = torch.Generator().manual_seed(0)
        for s in cfg.noise_sigmas:
            noisy = ct_test.pixels.float() + s * torch.randn(ct_test.pixels.shape, generator=g)
            p = noisy.round().clamp(0, 255).to(torch.uint8)
            rob["noise"].append({"sigma": s, "agreement": metrics.agreement(cipher.predict(p), ct_test.labels),
                                 "psnr": score(_decode(cipher, ct_test, p, z_test), test_x)["psnr"]})
        rob["clean"] = {"agreement": metrics.agreement(cipher.classify(ct_test), ct_test.labels),
                        "psnr": score(x_hat_test, test_x)["psnr"]}
        curves["robustness"] = rob

    if "baselines" in cfg.attacks:
        log("baseline schemes")
        other_key = Key.generate()
        schemes = {}
        # RIC itself.
        schemes["RIC (this model)"] = dict(pixels=ct_test.pixels, recovered=x_hat_test,
                                           attacker=images.get("inversion_a"),
                                           attacker_name="inversion (a)", npcr=npcr)
        # LSB: plaintext high bits in the NAE's low bits.
        lsb = lsb_encrypt(test_x, z_test, cfg.lsb_bits)
        lsb2 = lsb_encrypt(test_x, z_wrong, cfg.lsb_bits)  # the NAEs under another key
        schemes[f"LSB ({cfg.lsb_bits} bits of x in the NAE's low bits)"] = dict(
            pixels=lsb, recovered=lsb_decrypt(lsb, cfg.lsb_bits), attacker=lsb_decrypt(lsb, cfg.lsb_bits),
            attacker_name="read the low bits (no key needed)",
            npcr=float(stats.npcr_uaci(lsb, lsb2)[0].mean()))
        # Plain-noise cover: RIC networks with the keyed noise instead of an NAE.
        shape = tuple(test_x.shape[1:])
        z0 = ops.keyed_uniform(cipher.key.noise_key, ct_test.nonces, shape)
        z0b = ops.keyed_uniform(other_key.noise_key, ct_test.nonces, shape)
        with torch.no_grad():
            nc = cipher.model.encrypt_uint8(test_x.to(cipher.device), z0.to(cipher.device)).cpu()
            nc2 = cipher.model.encrypt_uint8(test_x.to(cipher.device), z0b.to(cipher.device)).cpu()
            pool_nonces = ct_pool.nonces
            z0p = ops.keyed_uniform(cipher.key.noise_key, pool_nonces, shape)
            ncp = cipher.model.encrypt_uint8(attack_x.to(cipher.device), z0p.to(cipher.device)).cpu()
        noise_attacker = None
        if "inversion" in cfg.attacks:
            log("inversion attack on the plain-noise cover")
            noise_attacker, _ = train_inversion(ncp[tr].float() / 255, attack_x[tr], ncp[va].float() / 255,
                                                attack_x[va], nc.float() / 255, cfg.inversion)
        schemes["plain-noise cover (RIC networks, keyed noise, no NAE)"] = dict(
            pixels=nc, recovered=_decode(cipher, ct_test, nc, z0), attacker=noise_attacker,
            attacker_name="inversion (a)", npcr=float(stats.npcr_uaci(nc, nc2)[0].mean()))
        table = []
        for name, s in schemes.items():
            c = s["pixels"].float() / 255
            entry = {"scheme": name, "agreement": metrics.agreement(cipher.predict(s["pixels"]), ct_test.labels),
                     "recovery": score(s["recovered"], test_x), "cipher_vs_plain": score(c, test_x),
                     "npcr_percent": s["npcr"],
                     "corr_h_abs": float(stats.adjacent_correlation(s["pixels"], "horizontal").abs().nanmean()),
                     "attacker": score(s["attacker"], test_x) if s["attacker"] is not None else None,
                     "attacker_name": s["attacker_name"]}
            table.append(entry)
        curves["baselines"] = table
        images["lsb"] = lsb.float() / 255
        images["noise_cover"] = nc.float() / 255

    return {"rows": rows, "references": sc.refs, "curves": curves, "settings": cfg.to_dict(),
            "n_attack_pairs": int(attack_x.shape[0] - n_val), "n_val": n_val, "n_test": int(test_x.shape[0]),
            "_images": images}
