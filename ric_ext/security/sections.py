"""The sections of the security evaluation, one function each (see :mod:`.attacks` for what they measure).

Each takes the :class:`Run` that :func:`ric_ext.security.run_attacks` prepared (the
cipher, the attacker's pairs, the scored ciphertexts and their NAEs) and appends
rows, curves and images to it.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, Optional

import torch
import torch.nn.functional as F

from .. import metrics, ops
from ..cipher import Cipher, Ciphertext
from ..keys import Key
from . import stats
from .inversion import train_inversion
from .public_model import public_model_attacks
from .schemes import lsb_decrypt, lsb_encrypt
from .scoring import Scorer, score

if TYPE_CHECKING:
    from .attack_config import AttackConfig


def _blur(c: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :]) / 16
    w = k.expand(c.shape[1], 1, 3, 3).contiguous()
    return F.conv2d(F.pad(c, (1, 1, 1, 1), mode="replicate"), w, groups=c.shape[1])


def _jpeg(pixels: torch.Tensor, quality: int) -> torch.Tensor:
    import numpy as np
    from PIL import Image

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
    """``ct`` with some fields replaced (the rest, digests included, kept)."""
    return dataclasses.replace(ct, header=dict(ct.header), **kw)


def _decode(
    cipher: Cipher, ct: Ciphertext, pixels: torch.Tensor, z: torch.Tensor, key: Optional[Key] = None
) -> torch.Tensor:
    """Decode ``pixels`` (``ct``'s, or modified ones) with NAEs ``z`` as the holder of ``key`` (default:
    the cipher's) would: the same key also unpads under the "pad" scheme."""
    return cipher.decode(_with(ct, pixels=pixels), z, key=key)


def _side_info(ct: Ciphertext, num_classes: int) -> torch.Tensor:
    """Ciphertext + one-hot label planes + nonce-byte planes: what attacker (c) sees."""
    B, _, H, W = ct.pixels.shape
    lab = F.one_hot(ct.labels, num_classes).float()[:, :, None, None].expand(B, num_classes, H, W)
    non = (ct.nonces.float() / 255)[:, :, None, None].expand(B, 12, H, W)
    return torch.cat([ct.as_float(), lab, non], 1)


@dataclass
class Run:
    """What every section shares: the cipher, the data, the encryptions and what has been measured."""

    cipher: Cipher
    cfg: AttackConfig
    attack_x: torch.Tensor
    test_x: torch.Tensor
    n_val: int
    log: Callable[[str], None]
    ct_pool: Ciphertext
    ct_test: Ciphertext
    refs: Dict[str, torch.Tensor]
    sc: Scorer
    z_test: torch.Tensor  # the test ciphertexts' NAEs under the right key
    x_hat_test: torch.Tensor  # what the key holder decrypts
    wrong_key: Key  # an attacker's guess of the key
    z_wrong: torch.Tensor  # the NAEs it regenerates under that key (public nonces, labels, steps)
    num_classes: int
    rows: list = field(default_factory=list)
    curves: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)
    npcr: Optional[float] = None
    public_x: Optional[torch.Tensor] = None  # the public-model attacker's own images (section public_model)
    distractor_x: Optional[torch.Tensor] = None  # other plaintexts: the linkage test's candidates
    checkpoint_dir: Optional[str] = None  # where section public_model keeps the attacker's work (.checkpoint)

    @property
    def tr(self) -> slice:
        return slice(0, self.attack_x.shape[0] - self.n_val)

    @property
    def va(self) -> slice:
        return slice(self.attack_x.shape[0] - self.n_val, None)


def _invert(run: Run, name: str, pool_in: torch.Tensor, test_in: torch.Tensor, key: str, target: bool) -> dict:
    run.log(f"inversion attack {name}")
    x, tr, va = run.attack_x, run.tr, run.va
    rec, info = train_inversion(pool_in[tr], x[tr], pool_in[va], x[va], test_in, run.cfg.inversion)
    run.images[key] = rec
    settings = dict(
        run.cfg.inversion.to_dict(), pairs=x.shape[0] - run.n_val, val=run.n_val, input_channels=int(pool_in.shape[1])
    )
    r = run.sc.row(
        "inversion",
        name,
        rec,
        settings,
        target=target,
        extra={"best_epoch": info["best_epoch"], "val_psnr_best": info["best_val_psnr"]},
    )
    run.rows.append(r)
    return r


def inversion_section(run: Run) -> None:
    """U-Nets trained on known (ciphertext, plaintext) pairs: (a), (b) shared NAEs, (c) with side information."""
    cipher, ct_pool, ct_test = run.cipher, run.ct_pool, run.ct_test
    _invert(run, "(a) known pairs, fresh nonce per image", ct_pool.as_float(), ct_test.as_float(), "inversion_a", True)
    same = torch.zeros(1, 12, dtype=torch.uint8)
    # Deliberate nonce reuse: this row measures what the refusal in Cipher.encrypt protects against.
    sp = cipher.encrypt(
        run.attack_x, nonces=same.expand(run.attack_x.shape[0], 12).contiguous(), allow_nonce_reuse=True
    )
    st = cipher.encrypt(run.test_x, nonces=same.expand(run.test_x.shape[0], 12).contiguous(), allow_nonce_reuse=True)
    _invert(
        run,
        "(b) images share NAEs (one nonce for all: the NAE depends on the label only)",
        sp.as_float(),
        st.as_float(),
        "inversion_b",
        False,
    )
    if not cipher.replays:
        run.log("nonce reuse, algebraic (digits scheme)")
        guess = reused_nonce_attack(cipher, sp, run.attack_x[:1], st)
        run.images["nonce_reuse_algebraic"] = guess
        run.rows.append(
            run.sc.row(
                "inversion",
                "(b') one nonce for all, algebraic: one known pair gives the digit pad, which decrypts the rest",
                guess,
                {"known pairs": 1},
                target=False,
            )
        )
    _invert(
        run,
        "(c) known pairs + public nonce and label as input",
        _side_info(ct_pool, run.num_classes),
        _side_info(ct_test, run.num_classes),
        "inversion_c",
        True,
    )


def reused_nonce_attack(cipher: Cipher, ct_known: Ciphertext, x_known: torch.Tensor, ct: Ciphertext) -> torch.Tensor:
    """What nonce reuse gives away under the digits scheme: from one known (ciphertext, plaintext)
    pair under the reused nonce, the pad is k = m - d mod base (d: the public layout of the known
    image's compressed payload), and every other ciphertext under that nonce unpads with it.
    Returns the guesses (float in [0, 1]): the images themselves where their payload decodes."""
    import numpy as np

    from .. import payload

    s = cipher.scheme
    x8 = torch.round(x_known[:1] * 255).to(torch.uint8).numpy()
    lay = payload.layout(s.base, tuple(x8.shape[1:]))
    d, _ = payload.pack(x8, lay, [payload.compress(x8[0], lay)])
    k = (ct_known.pixels[:1].reshape(1, -1).numpy().astype(np.int64) % s.base - d.astype(np.int64)) % s.base
    digits = ((ct.pixels.reshape(len(ct), -1).numpy().astype(np.int64) % s.base - k) % s.base).astype(np.uint8)
    items, _ = payload.unpack(digits, lay)
    noise = payload.lossy_image(digits, s.base).reshape(len(ct), *lay.shape)
    out = np.stack([it if isinstance(it, np.ndarray) else noise[i] for i, it in enumerate(items)])
    return torch.from_numpy(out).float() / 255.0


def keys_section(run: Run) -> None:
    """Decryption with wrong keys, labels and nonces; NPCR/UACI, histogram and adjacent-pixel statistics."""
    run.log("key sensitivity and ciphertext statistics")
    cipher, ct_test, test_x = run.cipher, run.ct_test, run.test_x
    near = cipher.key.with_flipped_bit(0)
    wrong_nonces = torch.randint(0, 256, ct_test.nonces.shape, dtype=torch.uint8)
    variants = {  # name: (NAEs, the key that decodes, the nonces it decodes with)
        "decrypt with another key": (run.z_wrong, run.wrong_key, ct_test.nonces),
        "decrypt with the key one bit away": (cipher.regenerate(ct_test, key=near), near, ct_test.nonces),
        "right key, wrong nonce": (
            cipher.regenerate(_with(ct_test, nonces=wrong_nonces)),
            cipher.key,
            wrong_nonces if not cipher.replays else ct_test.nonces,
        ),
    }
    if cipher.replays:  # the digits scheme's decryption does not use the label: no such row
        variants["right key, wrong label"] = (
            cipher.regenerate(_with(ct_test, labels=(ct_test.labels + 1) % run.num_classes)),
            cipher.key,
            ct_test.nonces,
        )
    for name, (z, key, nonces) in variants.items():
        rec = cipher.decode(_with(ct_test, nonces=nonces), z, key=key)
        run.images.setdefault("wrong_key", rec)
        # Targets apply to the attacker's situation (another key); the right-key rows show how much of
        # the NAE is fixed by key + nonce alone (label and nonce are public anyway).
        run.rows.append(
            run.sc.row(
                "keys",
                name,
                rec,
                (
                    {"steps": "the ciphertext's own (public) step counts"}
                    if cipher.replays
                    else {"decryption": "that key's digit unpad, the share decoded leniently"}
                ),
                target=not name.startswith("right key"),
            )
        )
    other = cipher.with_key(Key.generate())
    ct_other = other.encrypt(test_x, nonces=ct_test.nonces)
    n_, u_ = stats.npcr_uaci(ct_test.pixels, ct_other.pixels)
    run.npcr = npcr = float(n_.mean())
    chi_c, chi_x = stats.chi_square(ct_test.pixels), stats.chi_square(test_x)
    corr = {
        d: {
            "plaintext": float(stats.adjacent_correlation(test_x, d).nanmean()),
            "ciphertext": float(stats.adjacent_correlation(ct_test.pixels, d).nanmean()),
            "ciphertext_abs": float(stats.adjacent_correlation(ct_test.pixels, d).abs().nanmean()),
        }
        for d in stats.DIRECTIONS
    }
    run.curves["statistics"] = {
        "npcr_percent": npcr,
        "uaci_percent": float(u_.mean()),
        "npcr_target": ">= 99%",
        "npcr_meets_target": npcr >= 99.0,
        "npcr_ideal": 99.609,
        "uaci_ideal": 33.464,
        "chi2_ciphertext_mean": float(chi_c.mean()),
        "chi2_plaintext_mean": float(chi_x.mean()),
        "chi2_ciphertext_pass_5pct": float((chi_c < stats.CHI2_CRITICAL_255).float().mean()),
        "chi2_critical": stats.CHI2_CRITICAL_255,
        "correlation": corr,
        "correlation_target": "|r| <= 0.05",
        "correlation_meets_target": all(v["ciphertext_abs"] <= 0.05 for v in corr.values()),
    }


def ciphertext_only_section(run: Run) -> None:
    """Guesses from ciphertexts alone: the ciphertext, its filtered parts, a wrong-key residual, re-encryptions."""
    run.log("ciphertext-only attacks and re-encryption")
    cipher, cfg, ct_test, test_x = run.cipher, run.cfg, run.ct_test, run.test_x
    c = ct_test.as_float()
    lam = cipher.scheme.lam
    for name, guess in (
        ("the ciphertext itself", c),
        ("low-pass ciphertext (3x3 binomial)", _blur(c)),
        ("high-pass ciphertext + 0.5", (c - _blur(c) + 0.5)),
        ("residual (c - lam z') / (1 - lam), z' under a guessed key", ((c - lam * run.z_wrong) / (1 - lam))),
    ):
        run.rows.append(run.sc.row("ciphertext_only", name, guess, {}, target=True))
    R, N = min(cfg.reencrypt_images, test_x.shape[0]), max(cfg.reencrypt_n)
    xr = test_x[:R]
    rep = cipher.encrypt(xr.repeat_interleave(N, 0))
    cs = rep.as_float().reshape(R, N, *xr.shape[1:])
    zs = cipher.regenerate(rep).cpu().reshape(R, N, *xr.shape[1:])
    sub = Scorer(xr, {k: v[:R] for k, v in run.refs.items()})
    cls = sub.refs["class-mean image"]
    pool_c, pool_lab = run.ct_pool.as_float(), run.ct_pool.labels
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
        run.rows.append(
            sub.row(
                "ciphertext_only",
                f"mean of N={n} re-encryptions of the same image",
                mean_c,
                {"images": R, "N": n},
                target=(n == N),
                against=cls,
                extra={"class_mean_psnr": cls["psnr"]},
            )
        )
    d = (cs[:, 0] - cs[:, 1]) / 2 + 0.5 if N >= 2 else cs[:, 0]
    run.rows.append(
        sub.row("ciphertext_only", "difference of two re-encryptions / 2 + 0.5", d, {"images": R}, target=True)
    )
    run.curves["reencryption"] = dict(curve)
    run.curves["reencryption_class_mean_psnr"] = cls["psnr"]
    run.curves["reencryption_train_mean_psnr"] = sub.base["psnr"]
    run.images["reencryption_mean"] = cs.mean(1)


def _refused(cipher: Cipher, ct: Ciphertext) -> float:
    """The fraction of ``ct``'s images that checked decryption refuses (IntegrityError), one at a time."""
    from ..errors import IntegrityError

    refused = 0
    for i in range(len(ct)):
        try:
            cipher.decrypt_uint8(ct[i])
        except IntegrityError:
            refused += 1
    return refused / max(len(ct), 1)


def robustness_section(run: Run) -> None:
    """Label agreement and recovery after JPEG and Gaussian noise on the ciphertext pixels."""
    run.log("robustness to JPEG and noise")
    cipher, cfg, ct_test, test_x = run.cipher, run.cfg, run.ct_test, run.test_x

    def measure(p: torch.Tensor) -> dict:
        out = {
            "agreement": metrics.agreement(cipher.predict(p), ct_test.labels),
            "psnr": score(_decode(cipher, ct_test, p, run.z_test), test_x)["psnr"],
        }
        if not cipher.replays:  # what decryption does with the modified pixels: refuse, or return the image
            out["refused"] = _refused(cipher, _with(ct_test, pixels=p))
        return out

    rob = {"jpeg": [{"quality": q, **measure(_jpeg(ct_test.pixels, q))} for q in cfg.jpeg_qualities], "noise": []}
    g = torch.Generator().manual_seed(0)
    for s in cfg.noise_sigmas:
        noisy = ct_test.pixels.float() + s * torch.randn(ct_test.pixels.shape, generator=g)
        rob["noise"].append({"sigma": s, **measure(noisy.round().clamp(0, 255).to(torch.uint8))})
    rob["clean"] = {
        "agreement": metrics.agreement(cipher.classify(ct_test), ct_test.labels),
        "psnr": score(run.x_hat_test, test_x)["psnr"],
    }
    run.curves["robustness"] = rob


def _baseline_table(run: Run, schemes: dict) -> None:
    cipher, ct_test, test_x = run.cipher, run.ct_test, run.test_x
    table = []
    for name, s in schemes.items():
        c = s["pixels"].float() / 255
        table.append(
            {
                "scheme": name,
                "agreement": metrics.agreement(cipher.predict(s["pixels"]), ct_test.labels),
                "recovery": score(s["recovered"], test_x),
                "cipher_vs_plain": score(c, test_x),
                "npcr_percent": s["npcr"],
                "corr_h_abs": float(stats.adjacent_correlation(s["pixels"], "horizontal").abs().nanmean()),
                "attacker": score(s["attacker"], test_x) if s["attacker"] is not None else None,
                "attacker_name": s["attacker_name"],
            }
        )
    run.curves["baselines"] = table


def baselines_section(run: Run) -> None:
    """The LSB scheme and a plain-noise cover (RIC networks, keyed noise, no NAE), scored like RIC."""
    run.log("baseline schemes")
    cipher, cfg, ct_test, test_x, attack_x = run.cipher, run.cfg, run.ct_test, run.test_x, run.attack_x
    tr, va = run.tr, run.va
    other_key = Key.generate()
    schemes = {}
    schemes[f"RIC ({cipher.scheme.name} scheme)"] = dict(
        pixels=ct_test.pixels,
        recovered=run.x_hat_test,
        attacker=run.images.get("inversion_a"),
        attacker_name="inversion (a)",
        npcr=run.npcr,
    )
    # LSB: plaintext high bits in the NAE's low bits.
    lsb = lsb_encrypt(test_x, run.z_test, cfg.lsb_bits)
    lsb2 = lsb_encrypt(test_x, run.z_wrong, cfg.lsb_bits)  # the NAEs under another key
    schemes[f"LSB ({cfg.lsb_bits} bits of x in the NAE's low bits)"] = dict(
        pixels=lsb,
        recovered=lsb_decrypt(lsb, cfg.lsb_bits),
        attacker=lsb_decrypt(lsb, cfg.lsb_bits),
        attacker_name="read the low bits (no key needed)",
        npcr=float(stats.npcr_uaci(lsb, lsb2)[0].mean()),
    )
    if cipher.model is None:  # the plain-noise cover needs the RIC networks
        _baseline_table(run, schemes)
        run.images["lsb"] = lsb.float() / 255
        return
    # Plain-noise cover: RIC networks with the keyed noise instead of an NAE.
    shape = tuple(test_x.shape[1:])
    z0 = ops.keyed_uniform(cipher.key.noise_key, ct_test.nonces, shape)
    z0b = ops.keyed_uniform(other_key.noise_key, ct_test.nonces, shape)
    dev = cipher.device
    with torch.no_grad():
        nc = cipher.model.encrypt_uint8(test_x.to(dev), z0.to(dev)).cpu()
        nc2 = cipher.model.encrypt_uint8(test_x.to(dev), z0b.to(dev)).cpu()
        z0p = ops.keyed_uniform(cipher.key.noise_key, run.ct_pool.nonces, shape)
        ncp = cipher.model.encrypt_uint8(attack_x.to(dev), z0p.to(dev)).cpu()
    noise_attacker = None
    if "inversion" in cfg.attacks:
        run.log("inversion attack on the plain-noise cover")
        noise_attacker, _ = train_inversion(
            ncp[tr].float() / 255, attack_x[tr], ncp[va].float() / 255, attack_x[va], nc.float() / 255, cfg.inversion
        )
    schemes["plain-noise cover (RIC networks, keyed noise, no NAE)"] = dict(
        pixels=nc,
        recovered=_decode(cipher, ct_test, nc, z0),
        attacker=noise_attacker,
        attacker_name="inversion (a)",
        npcr=float(stats.npcr_uaci(nc, nc2)[0].mean()),
    )
    _baseline_table(run, schemes)
    run.images["lsb"] = lsb.float() / 255
    run.images["noise_cover"] = nc.float() / 255


def public_model_section(run: Run) -> None:
    """(d) an inverter trained on pairs made under the attacker's own keys; (e) linkage among K candidates."""
    if run.public_x is None or run.distractor_x is None:
        raise ValueError("the public_model section needs the attacker's own images and distractors")
    res = public_model_attacks(
        run.cipher,
        run.public_x,
        run.ct_test.as_float(),
        run.test_x,
        run.distractor_x,
        run.cfg.public,
        run.log,
        checkpoint_dir=run.checkpoint_dir,
    )
    run.images["public_model"] = res["guess"]
    s = res["settings"]
    run.rows.append(
        run.sc.row(
            "public_model",
            f"(d) public model: {res['best']} inverter, {s['pairs']} pairs under the attacker's own keys",
            res["guess"],
            {"pairs": s["pairs"], "val": s["val"], "epochs": s["epochs"], "key_every": s["key_every"]},
            target=True,
            extra={"inverters": res["inversion"], "compute_s": res["compute_s"], "resumed": res["resumed"]},
        )
    )
    run.curves["linkage"] = {
        "accuracy": res["linkage"],
        "chance": res["chance"],
        "target": 0.15,
        "victims": res["victims_linked"],
        "candidates": s["candidates"],
        "meets_target": all(v <= 0.15 for v in res["linkage"].values()),
    }


#: The sections in the order they run (baselines reuse inversion (a) and the keys section's NPCR).
SECTION_FUNCS: Dict[str, Callable[[Run], None]] = {
    "inversion": inversion_section,
    "keys": keys_section,
    "ciphertext_only": ciphertext_only_section,
    "robustness": robustness_section,
    "baselines": baselines_section,
    "public_model": public_model_section,
}
