"""An interrupted security evaluation resumes: the inverters continue from their last epoch as
if never stopped, the attacker's pairs are reused, a checkpoint of anything else is ignored, and
nothing is left behind once the report is written."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from ric_ext.keys import Key
from ric_ext.security import InversionSettings, train_inversion
from ric_ext.security import checkpoint as ckpt
from ric_ext.security.public_model import CHECKPOINT_FILES, PublicModelSettings, public_model_attacks


class Interrupted(Exception):
    """Stands in for a killed process: raised after a checkpoint was written."""


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(30, 3, 8, 8, generator=g)
    return 1 - x, x  # a learnable map, so the validation PSNR moves from epoch to epoch


def _stop_at(epoch):
    def hook(e, _p):
        if e == epoch:
            raise Interrupted

    return hook


@pytest.mark.parametrize("network", ["unet", "resnet"])
def test_inversion_resumed_after_an_interrupt_equals_an_uninterrupted_run(tmp_path, network):
    inp, x = _data()
    cfg = InversionSettings(epochs=4, width=4, batch_size=4, lr=3e-3, network=network)
    args = (inp[:20], x[:20], inp[20:25], x[20:25])
    ref, ref_info = train_inversion(*args, inp[25:], cfg)
    path = str(tmp_path / "inv.pt")
    with pytest.raises(Interrupted):
        train_inversion(*args, inp[25:], cfg, checkpoint=path, on_epoch=_stop_at(2))
    seen = []
    rec, info = train_inversion(*args, inp[25:], cfg, checkpoint=path, on_epoch=lambda e, p: seen.append(e))
    assert info["resumed_from_epoch"] == 2 and seen == [3, 4]
    # Bit for bit: same process, same thread count, and the state restored is every tensor the
    # training reads (weights, Adam moments and step, the data-order generator, the best epoch).
    assert info["val_psnr"] == ref_info["val_psnr"] and info["best_epoch"] == ref_info["best_epoch"]
    assert torch.equal(rec, ref)
    assert info["train_s"] >= info["train_s_earlier"] > 0
    # a finished training resumes to its end without training again
    again, info2 = train_inversion(*args, inp[25:], cfg, checkpoint=path, on_epoch=_stop_at(1))
    assert info2["resumed_from_epoch"] == 4 and torch.equal(again, ref)


def test_a_checkpoint_of_other_data_settings_or_a_torn_file_is_ignored(tmp_path):
    inp, x = _data()
    cfg = InversionSettings(epochs=2, width=4, batch_size=4)
    path = str(tmp_path / "inv.pt")
    cases = {
        "data": (cfg, _data(seed=1)),
        "settings": (InversionSettings(epochs=2, width=4, batch_size=4, seed=1), (inp, x)),
    }
    for name, (cfg_b, (a, b)) in cases.items():
        fresh, fresh_info = train_inversion(a[:20], b[:20], a[20:25], b[20:25], a[25:], cfg_b)
        train_inversion(inp[:20], x[:20], inp[20:25], x[20:25], inp[25:], cfg, checkpoint=path)  # finished
        rec, info = train_inversion(a[:20], b[:20], a[20:25], b[20:25], a[25:], cfg_b, checkpoint=path)
        assert info["resumed_from_epoch"] == 0 and torch.equal(rec, fresh), name
        assert info["val_psnr"] == fresh_info["val_psnr"], name
    with open(path, "wb") as f:
        f.write(b"\x80not a checkpoint")
    rec, info = train_inversion(inp[:20], x[:20], inp[20:25], x[20:25], inp[25:], cfg, checkpoint=path)
    assert info["resumed_from_epoch"] == 0 and rec.shape == (5, 3, 8, 8)
    assert ckpt.load(path, "another fingerprint") is None and ckpt.load(str(tmp_path / "absent"), "x") is None


def test_fingerprint_sees_dtype_shape_and_bytes():
    t = torch.arange(6, dtype=torch.float32)
    ulp = t.clone()
    ulp[5] = torch.nextafter(t[5], torch.tensor(10.0))  # one unit in the last place
    fps = {
        ckpt.fingerprint(t),
        ckpt.fingerprint(t.reshape(2, 3)),
        ckpt.fingerprint(t.double()),
        ckpt.fingerprint(ulp),
        ckpt.fingerprint({"a": 1}),
        ckpt.fingerprint({"a": 2}),
    }
    assert len(fps) == 6 and ckpt.fingerprint(t.clone()) == ckpt.fingerprint(t)


def test_cipher_fingerprint_tells_schemes_apart_but_not_keys(tiny_trained, svhn_classifier):
    from ric_ext.cipher import Cipher

    def fp(scheme="digits", **kw):
        return ckpt.cipher_fingerprint(Cipher.for_scheme(scheme, svhn_classifier, Key.generate(), **kw), (3, 32, 32))

    digits, pad = fp(), fp("pad")
    paper = fp("paper", model=tiny_trained)
    assert len({digits, pad, paper, fp(bank=None)}) == 4
    assert fp(model=None) == digits and fp(model=None, scheme="pad") == pad  # another key, the same attacker pairs


def test_public_model_attacker_resumes_with_the_same_pairs(svhn_classifier, svhn_images, tmp_path):
    from ric_ext.cipher import Cipher

    x, _ = svhn_images
    s = PublicModelSettings(pairs=10, val=4, key_every=8, candidates=2, epochs=2, width=4, matcher_epochs=1)
    folder = str(tmp_path / "ck")
    logs = []

    def run(log):
        cipher = Cipher(svhn_classifier, Key.generate())  # a fresh victim key each run, as evaluate draws
        victim_ct = cipher.encrypt(x[8:12]).as_float()
        return public_model_attacks(cipher, x[:8], victim_ct, x[8:12], x[12:], s, log, checkpoint_dir=folder)

    def stop_in_resnet(m):
        logs.append(m)
        if "resnet epoch 1/" in m:
            raise Interrupted

    with pytest.raises(Interrupted):
        run(stop_in_resnet)
    assert sorted(os.listdir(folder)) == sorted(CHECKPOINT_FILES)
    first_pairs = torch.load(os.path.join(folder, "pairs.pt"), weights_only=True)["pixels"]
    unet_psnr = [m for m in logs if "unet epoch 2/2" in m]
    logs2 = []
    res = run(logs2.append)
    assert res["resumed"] == {"pairs": True, "unet": 2, "resnet": 1}
    assert any("reused from" in m for m in logs2) and not any("unet epoch" in m for m in logs2)
    assert torch.equal(torch.load(os.path.join(folder, "pairs.pt"), weights_only=True)["pixels"], first_pairs)
    # the U-Net was not retrained: its validation score is the interrupted run's
    assert unet_psnr and f"{res['inversion']['unet']['val_psnr']:.2f} dB" in unet_psnr[0]
    assert res["compute_s"]["total"] >= res["inversion"]["unet"]["train_s"] + res["inversion"]["resnet"]["train_s"]


def test_evaluate_resumes_and_then_leaves_no_checkpoint(svhn_classifier, svhn_images, tmp_path):
    from ric_ext.security.protocol import ProtocolSettings, run_protocol

    x, _ = svhn_images
    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(12):
        arr = (x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(arr).save(folder / f"img{i:02d}.png")
    settings = ProtocolSettings(
        attack_pairs=2,
        attack_val=1,
        attack_test=2,
        attack_epochs=1,
        attack_width=4,
        reencrypt_images=1,
        public_pairs=4,
        public_val=2,
        public_epochs=2,
        candidates=2,
    )
    out = tmp_path / "report"
    kw = dict(attacks=["public_model"], settings=settings, out=str(out))

    def stop(m):
        if "resnet epoch 2/" in m:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_protocol(None, svhn_classifier, None, str(folder), "test", log=stop, **kw)
    assert sorted(os.listdir(out / ckpt.DIR_NAME)) == sorted(CHECKPOINT_FILES)
    res = run_protocol(None, svhn_classifier, None, str(folder), "test", **kw)
    row = next(r for r in res["rows"] if r["section"] == "public_model")
    assert row["resumed"] == {"pairs": True, "unet": 2, "resnet": 2}
    md = (out / "report.md").read_text()
    assert "resumed an interrupted run: the same pairs, unet after epoch 2, resnet after epoch 2" in md
    assert ckpt.DIR_NAME not in os.listdir(out) and "report.md" in os.listdir(out)
    # a user's own file in the folder is never deleted with it
    (out / ckpt.DIR_NAME).mkdir()
    (out / ckpt.DIR_NAME / "mine.txt").write_text("keep")
    run_protocol(None, svhn_classifier, None, str(folder), "test", **kw)
    assert os.listdir(out / ckpt.DIR_NAME) == ["mine.txt"]
