"""Security evaluation: statistics against hand-computed values, the baseline
schemes, the inversion trainer, and every attack section end to end on a tiny
model with tiny settings (report written atomically)."""

import functools
import json
import math
import os

import pytest
import torch

from ric_ext.cipher import Cipher
from ric_ext.keys import Key
from ric_ext.metrics import psnr
from ric_ext.nae import NAEConfig
from ric_ext.security import AttackConfig, InversionSettings, run_attacks, score, stats, train_inversion, write_report
from ric_ext.security.public_model import (
    PublicModelSettings,
    candidate_sets,
    share_statistics,
    statistics_choice,
    two_tower_choice,
)
from ric_ext.security.references import reference_guesses
from ric_ext.security.report import _vs_class_mean
from ric_ext.security.schemes import lsb_decrypt, lsb_encrypt
from ric_ext.security.scoring import Scorer, paired_vs
from ric_ext.security.unet import UNet


def u8(rows):
    return torch.tensor(rows, dtype=torch.uint8)[None, None]


def test_npcr_uaci_by_hand():
    a = u8([[0, 10], [20, 255]])
    b = u8([[0, 12], [25, 0]])
    npcr, uaci = stats.npcr_uaci(a, b)
    # 3 of 4 pixels differ; mean |diff| / 255 = (0 + 2 + 5 + 255) / 4 / 255.
    assert npcr.item() == pytest.approx(75.0)
    assert uaci.item() == pytest.approx((2 + 5 + 255) / 4 / 255 * 100)
    with pytest.raises(ValueError, match="same shape"):
        stats.npcr_uaci(a, u8([[1, 2, 3]]))


def test_chi_square_by_hand():
    flat = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    assert stats.chi_square(flat).item() == pytest.approx(0.0)
    const = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    # 256 pixels, expected 1 per bin: (256 - 1)^2 / 1 + 255 * (0 - 1)^2 / 1.
    assert stats.chi_square(const).item() == pytest.approx(255**2 + 255)


def test_adjacent_correlation_by_hand():
    ramp = torch.arange(8, dtype=torch.uint8).repeat(8, 1)[None, None] * 10  # rows 0..70
    assert stats.adjacent_correlation(ramp, "horizontal").item() == pytest.approx(1.0)
    assert stats.adjacent_correlation(ramp, "vertical").item() == pytest.approx(1.0)  # vertical pairs are equal
    assert math.isnan(stats.adjacent_correlation(torch.full((1, 1, 4, 4), 7, dtype=torch.uint8)).item())
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None]) % 2 * 200).to(torch.uint8)[None, None]
    assert stats.adjacent_correlation(checker, "horizontal").item() == pytest.approx(-1.0)
    assert stats.adjacent_correlation(checker, "diagonal").item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="direction"):
        stats.adjacent_correlation(checker, "up")


def test_lsb_scheme_round_trip():
    g = torch.Generator().manual_seed(0)
    x, z = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    c = lsb_encrypt(x, z, 4)
    x8, z8 = (x * 255).round().to(torch.uint8), (z * 255).round().to(torch.uint8)
    assert torch.equal(c >> 4, z8 >> 4) and torch.equal(c & 15, x8 >> 4)
    rec8 = (lsb_decrypt(c, 4) * 255).round().long()
    assert torch.equal(rec8 >> 4, (x8 >> 4).long()) and torch.equal(rec8 & 15, torch.full_like(rec8, 8))
    with pytest.raises(ValueError, match="bits"):
        lsb_encrypt(x, z, 8)


def test_reference_guesses():
    tx = torch.stack([torch.full((1, 4, 4), v) for v in (0.0, 0.2, 0.6, 1.0)])
    ty = torch.tensor([0, 0, 1, 1])
    x = torch.rand(2, 1, 4, 4)
    refs = reference_guesses(x, torch.tensor([1, 0]), tx, ty)
    assert torch.allclose(refs["training-set mean image"], torch.full_like(x, 0.45))
    assert torch.allclose(refs["class-mean image"][0], torch.full((1, 4, 4), 0.8))
    assert torch.allclose(refs["class-mean image"][1], torch.full((1, 4, 4), 0.1))
    assert torch.allclose(refs["own mean grey"][0], x[0].mean().expand(1, 4, 4))


def test_paired_comparison_with_the_class_mean_by_hand():
    # two flat images at 0.5; the class-mean guess is off by 0.1 on both
    x = torch.full((2, 1, 4, 4), 0.5)
    cls = torch.full_like(x, 0.6)
    ref = psnr(cls, x)
    same = paired_vs(ref, ref)
    assert same["dpsnr"] == 0 and same["share_closer"] == 0.5 and same["images"] == 2
    # closer than the class mean on the first image (off by 0.05), further on the second (off by 0.2)
    guess = torch.stack([torch.full((1, 4, 4), 0.55), torch.full((1, 4, 4), 0.3)])
    d = psnr(guess, x) - ref
    v = paired_vs(psnr(guess, x), ref)
    assert math.isclose(v["dpsnr"], float(d.mean()), abs_tol=1e-9) and v["share_closer"] == 0.5
    assert math.isclose(v["dpsnr_se"], float(d.double().std() / math.sqrt(2)), rel_tol=1e-9)
    # every scored row carries the comparison, so a report can tell "label only" from "label and more"
    sc = Scorer(x, {"training-set mean image": cls, "own mean grey": cls, "class-mean image": cls})
    row = sc.row("s", "a", guess, {})
    assert row["vs_class_mean"] == v
    # a perfect guess is capped at 100 dB, as in score()
    assert sc.row("s", "a", x, {})["vs_class_mean"]["share_closer"] == 1.0
    assert "closer on 50%" in _vs_class_mean(v) and _vs_class_mean(None) == "–"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_unet_any_size_and_inversion_learns_a_learnable_map(precision):
    net = UNet(5, 3, 4)
    assert net(torch.rand(2, 5, 13, 18)).shape == (2, 3, 13, 18)
    # A map an attacker can learn: the input *is* the plaintext, inverted. The attack must get far past noise.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, 8, 8, generator=g)
    rec, info = train_inversion(
        1 - x[:30],
        x[:30],
        1 - x[30:35],
        x[30:35],
        1 - x[35:],
        InversionSettings(epochs=60, width=8, lr=3e-3, batch_size=4, precision=precision),
    )
    # bf16 training must learn the map as well: a cheaper attacker, never a weaker one
    assert rec.shape == (5, 3, 8, 8) and rec.dtype == torch.float32 and info["best_epoch"] >= 1
    assert score(rec, x[35:])["psnr"] > 20


def test_bad_attack_settings():
    with pytest.raises(ValueError, match="unknown attack"):
        AttackConfig(attacks=("inversion", "magic"))
    with pytest.raises(ValueError, match="epochs"):
        InversionSettings(epochs=0)
    for bad in (lambda: InversionSettings(precision="fp16"), lambda: PublicModelSettings(precision="int8")):
        with pytest.raises(ValueError, match="precision"):
            bad()
    with pytest.raises(ValueError, match="bit"):
        Key.generate().with_flipped_bit(256)


def test_key_one_bit_away_is_another_key():
    k = Key.generate()
    k1 = k.with_flipped_bit(0)
    assert k1 != k and k1.with_flipped_bit(0) == k and k1.key_id != k.key_id


def test_every_section_end_to_end_tiny(tiny_trained, svhn_classifier, svhn_images, tmp_path):
    x, y = svhn_images
    cipher = Cipher.paper(tiny_trained, svhn_classifier, Key.generate(), nae=NAEConfig(steps=4), micro_batch=8)
    cfg = AttackConfig(
        inversion=InversionSettings(epochs=1, width=4),
        reencrypt_images=2,
        reencrypt_n=(1, 2),
        jpeg_qualities=(90, 30),
        noise_sigmas=(1.0, 8.0),
        public=PublicModelSettings(pairs=12, val=4, key_every=8, candidates=2, epochs=1, width=4, matcher_epochs=1),
    )
    res = run_attacks(cipher, x[:8], x[8:14], x, y, cfg, n_val=2, public_x=x[:8], distractor_x=x)
    sections = {r["section"] for r in res["rows"]}
    assert sections == {"inversion", "keys", "ciphertext_only", "public_model"}
    lk = res["curves"]["linkage"]
    assert lk["chance"] == 0.5 and len(lk["accuracy"]) == 3 and all(0 <= v <= 1 for v in lk["accuracy"].values())
    # linkage victims go past the 6 scored images: the distractors are encrypted under the victim key too
    assert 6 < lk["victims"] <= 6 + x.shape[0]
    assert {r["attack"][:3] for r in res["rows"] if r["section"] == "inversion"} == {"(a)", "(b)", "(c)"}
    for r in res["rows"]:
        assert 0 < r["psnr"] <= 100 and -1 <= r["ssim"] <= 1
        assert ("meets_target" in r) == ("target" in r)
    assert {b["scheme"].split(" ")[0] for b in res["curves"]["baselines"]} == {"RIC", "LSB", "plain-noise"}
    assert len(res["curves"]["robustness"]["jpeg"]) == 2 and len(res["curves"]["robustness"]["noise"]) == 2
    st = res["curves"]["statistics"]
    assert 0 <= st["npcr_percent"] <= 100 and set(st["correlation"]) == {"horizontal", "vertical", "diagonal"}
    out = tmp_path / "report"
    write_report(res, str(out), {"model": "tiny", "key id": cipher.key.key_id})
    files = sorted(os.listdir(out))
    assert files == [
        "attacks_grid.png",
        "reencryption.png",
        "report.json",
        "report.md",
        "robustness_jpeg.png",
        "robustness_noise.png",
    ]  # no temporary files left behind
    md = (out / "report.md").read_text()
    assert "tiny" in md and "Baseline schemes" in md and "training-set mean image" in md
    assert all(r["vs_class_mean"]["images"] == 6 for r in res["rows"] if r["section"] != "ciphertext_only")
    assert md.count("closer on") >= len(res["rows"])
    assert cipher.key.noise_key.hex() not in md and cipher.key.mac_key.hex() not in md
    rep = json.loads((out / "report.json").read_text())
    assert rep["n_test"] == 6 and rep["settings"]["inversion"]["epochs"] == 1


def test_every_section_end_to_end_on_the_digits_scheme(svhn_classifier, svhn_images, tmp_path):
    x, y = svhn_images
    cipher = Cipher(svhn_classifier, Key.generate())  # the default scheme
    cfg = AttackConfig(
        inversion=InversionSettings(epochs=1, width=4),
        reencrypt_images=2,
        reencrypt_n=(1, 2),
        jpeg_qualities=(95,),
        noise_sigmas=(1.0,),
        public=PublicModelSettings(pairs=12, val=4, key_every=8, candidates=2, epochs=1, width=4, matcher_epochs=1),
    )
    res = run_attacks(cipher, x[:8], x[8:14], x, y, cfg, n_val=2, public_x=x[:8], distractor_x=x)
    rows = {r["attack"]: r for r in res["rows"]}
    # nonce reuse breaks it exactly: one known pair gives the digit pad, the rest decrypt bit for bit
    algebraic = next(r for a, r in rows.items() if a.startswith("(b')"))
    assert algebraic["psnr"] == 100.0
    # the label does not enter decryption, so there is no wrong-label row; another key reads noise
    assert not any("wrong label" in a for a in rows)
    assert rows["decrypt with another key"]["psnr"] < 15
    # a JPEG'd or noisy ciphertext is refused by decryption, never decrypted into another image
    rob = res["curves"]["robustness"]
    assert rob["jpeg"][0]["refused"] == 1.0 and rob["noise"][0]["refused"] == 1.0
    assert rob["clean"]["psnr"] == 100.0
    write_report(res, str(tmp_path / "report"), {"model": "none", "key id": cipher.key.key_id})
    md = (tmp_path / "report" / "report.md").read_text()
    assert cipher.key.digit_key.hex() not in md and cipher.key.digest_key.hex() not in md


def test_candidate_sets_share_the_label_and_hold_the_victim_once():
    pool_labels = torch.tensor([0, 1, 0, 1, 0, 0, 1, 2])
    cands = candidate_sets(pool_labels[:3], pool_labels, 3, torch.Generator().manual_seed(0))
    for i in range(3):
        row = cands[i]
        assert (row == i).sum() == 1 and (pool_labels[row] == pool_labels[i]).all() and row.unique().numel() == 3
    # label 2 has one image only: no candidate set for a victim of that label
    assert (candidate_sets(pool_labels[7:], pool_labels[7:], 2, torch.Generator()) == -1).all()


def test_share_statistics_histograms_match_histc():
    g = torch.Generator().manual_seed(5)
    # 8-bit levels, including exactly 0 and 1 (the last bin is closed, as in torch.histc)
    c = torch.randint(0, 256, (5, 3, 7, 9), generator=g).float() / 255
    c[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 0.5])
    got = share_statistics(c, bins=16)[:, :].reshape(5, 3, 20)[..., :16] * (7 * 9)
    want = torch.stack([torch.stack([torch.histc(c[b, ch], 16, 0, 1) for ch in range(3)]) for b in range(5)])
    assert torch.equal(got.round(), want)  # counts: exact integers after undoing the normalisation


def test_share_statistics_see_brightness_and_contrast():
    flat, wide = torch.full((1, 3, 8, 8), 0.5), torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    f, w = share_statistics(flat), share_statistics(wide)
    assert f.shape == (1, 3 * 20) and not torch.allclose(f, w)
    assert torch.allclose(share_statistics(flat).reshape(3, 20)[:, :16].sum(1), torch.ones(3))


@pytest.mark.parametrize(
    "matcher",
    [two_tower_choice, statistics_choice, functools.partial(two_tower_choice, precision="bf16")],
    ids=["two_tower", "statistics", "two_tower_bf16"],
)
def test_linkage_matchers_find_a_leak_when_there_is_one(matcher):
    # A "ciphertext" that is the plaintext plus noise leaks everything: a working matcher must link
    # far above chance (1/4). (The same matchers score the real schemes in docs/security.md.)
    g = torch.Generator().manual_seed(0)
    base = torch.rand(64, 3, 1, 1, generator=g).expand(64, 3, 16, 16)
    x = (base + 0.2 * torch.rand(64, 3, 16, 16, generator=g)).clamp(0, 1)
    ct = (x + 0.05 * torch.randn(64, 3, 16, 16, generator=g)).clamp(0, 1)
    cands = torch.stack([torch.roll(torch.arange(48, 64), -s)[:4] for s in range(16)])  # victim i = row 48+i
    pool = x
    choice = matcher(ct[:48], x[:48], ct[48:], cands, pool, epochs=40, seed=0)
    truth = torch.zeros(16, dtype=torch.int64)  # each row starts with its own victim
    assert float((choice == truth).float().mean()) >= 0.75
