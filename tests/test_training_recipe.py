"""Recipe units of ric_ext.training: schedules, EMA, compute clock, validation inside training,
budgets and chunks, compact (sharded) checkpoints, --init, decoder_z, late rounding, margin variant."""

import json
import math
import os
import sys

import pytest
import torch
from conftest import DATA, needs_shared, tiny_train_config

from ric_ext.errors import CheckpointError
from ric_ext.evaluate import evaluate
from ric_ext.models import RIC, load_ric, save_ric
from ric_ext.training import Trainer
from ric_ext.training import checkpoint as ckpt
from ric_ext.training.clock import ComputeClock
from ric_ext.training.ema import WeightEMA
from ric_ext.training.schedule import lr_factor


@pytest.fixture(scope="module")
def ds(svhn_ds):
    return svhn_ds


_cfg = tiny_train_config


def _trainer(cfg, ds, clf, **kw):
    return Trainer(cfg, dataset=ds, classifier=clf, val_dataset=ds, progress=False, **kw)


# -- schedules -------------------------------------------------------------------------------
def test_schedules():
    assert lr_factor("constant", 0.7, 50) == 1.0
    assert lr_factor("constant", 0.0, 4, warmup=10) == pytest.approx(0.5)
    # cosine: linear warm-up, peak 1, half cosine to `final`
    assert lr_factor("cosine", 0.0, 0, warmup=100) == pytest.approx(0.01 * (1.0))  # (0+1)/100 * ~1
    assert lr_factor("cosine", 0.0, 99, warmup=100) == pytest.approx(1.0)
    assert lr_factor("cosine", 0.5, 500, warmup=100, final=0.0) == pytest.approx(0.5)
    assert lr_factor("cosine", 1.0, 1000, final=0.05) == pytest.approx(0.05)
    # one-cycle: from final up to 1 at 30% progress, then down to final / 100
    assert lr_factor("onecycle", 0.0, 0, final=0.04) == pytest.approx(0.04)
    assert lr_factor("onecycle", 0.3, 0) == pytest.approx(1.0)
    assert lr_factor("onecycle", 1.0, 0, final=0.04) == pytest.approx(0.0004)
    xs = [lr_factor("cosine", p / 20, 10**6) for p in range(21)]
    assert all(a >= b for a, b in zip(xs, xs[1:]))  # monotone after warm-up
    with pytest.raises(ValueError, match="schedule"):
        lr_factor("step", 0.5, 0)


def test_ema_matches_closed_form():
    m = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(0.0)
    ema = WeightEMA(m, 0.9)
    ref = 0.0
    for t in range(1, 30):
        with torch.no_grad():
            m.weight.fill_(float(t))
        ema.update(m)
        d = min(0.9, (1 + t) / (10 + t))
        ref = d * ref + (1 - d) * t
    assert float(ema.model.weight) == pytest.approx(ref, rel=1e-6)
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(m, 1.0)


def test_clock_charges_stalls_at_the_median():
    c = ComputeClock()
    for _ in range(10):
        c.charge(1.0)
    assert c.charge(50.0) == pytest.approx(3.0)  # a paused step is charged 3x the median
    assert c.spent_s == pytest.approx(13.0)


# -- validation inside training -------------------------------------------------------------
def test_validation_logs_keeps_best_and_matches_evaluate(tmp_path, ds, svhn_classifier):
    out = tmp_path / "val"
    t = _trainer(_cfg(out, 4, val_every=2, val_n=6, nae_steps=40), ds, svhn_classifier)
    t.train()
    recs = [json.loads(l) for l in open(out / "validation.jsonl")]
    assert [r["step"] for r in recs] == [2, 4]
    assert {"val_psnr", "val_ssim", "val_agreement", "val_nae_steps", "compute_s", "best"} <= set(recs[0])
    best = max(recs, key=lambda r: r["val_psnr"] if r["val_agreement"] >= 0.99 else -1)
    blob = torch.load(out / "best.pt", weights_only=True)
    assert blob["extra"]["step"] == best["step"]
    # The validator is `evaluate` on the held-out images with a fixed key: same numbers.
    model = load_ric(out / "checkpoint.pt")
    x = torch.stack([ds[i][0] for i in range(6)])
    assert t.validator.nae.steps == 40 and t.validator.nae.stop == "ciphertext"  # the run's NAE settings
    res = evaluate(
        model, svhn_classifier, x, key=t.validator.key, nonces=t.validator.nonces, nae=t.validator.nae, wrong_key=False
    )
    assert res["psnr"] == pytest.approx(recs[-1]["val_psnr"], abs=1e-9)
    assert math.isnan(res["wrong_key_psnr"])


def test_ema_weights_are_validated_and_exported(tmp_path, ds, svhn_classifier):
    out = tmp_path / "ema"
    t = _trainer(_cfg(out, 3, val_every=3, val_n=4, ema=0.5, lr=1e-2, nae_steps=40), ds, svhn_classifier)
    t.train()
    best = load_ric(out / "best.pt")
    for k, v in t.ema.model.state_dict().items():
        assert torch.equal(best.state_dict()[k], v)
    assert any(not torch.equal(a, b) for a, b in zip(t.ema.model.parameters(), t.model.parameters()))
    # resume restores the EMA
    t2 = _trainer(_cfg(out, 4, val_every=3, val_n=4, ema=0.5, lr=1e-2, nae_steps=40), ds, svhn_classifier)
    for a, b in zip(t2.ema.model.parameters(), t.ema.model.parameters()):
        assert torch.equal(a, b)
    assert t2.ema.updates == 3


# -- budgets and chunks ---------------------------------------------------------------------
def test_budget_stops_and_resume_continues_the_clock(tmp_path, ds, svhn_classifier):
    out = tmp_path / "budget"
    t = _trainer(_cfg(out, 1000, budget_min=1e-4), ds, svhn_classifier)  # 6 ms of compute: one step
    h = t.train()
    assert 1 <= len(h) < 1000 and t.progress_fraction() == 1.0
    spent = t.clock.spent_s
    t2 = _trainer(_cfg(out, 1000, budget_min=1e-4), ds, svhn_classifier)
    assert t2.clock.spent_s == pytest.approx(spent) and t2.done()


def test_stop_after_min_ends_one_chunk_and_the_next_resumes(tmp_path, ds, svhn_classifier):
    out = tmp_path / "chunk"
    t = _trainer(_cfg(out, 50, stop_after_min=1e-9, ckpt_every=100), ds, svhn_classifier)
    assert len(t.train()) == 1 and os.path.isfile(out / "checkpoint.pt")
    t2 = _trainer(_cfg(out, 50, stop_after_min=1e-9, ckpt_every=100), ds, svhn_classifier)
    assert t2.step == 1
    assert t2.train()[0]["step"] == 2


def test_lr_follows_the_schedule_in_the_loop(tmp_path, ds, svhn_classifier):
    h = _trainer(
        _cfg(tmp_path / "lr", 4, schedule="cosine", warmup=2, lr=1e-3, final_lr=0.0), ds, svhn_classifier
    ).train()
    want = [1e-3 * lr_factor("cosine", s / 4, s, 2, 0.0) for s in range(4)]
    assert [r["lr"] for r in h] == pytest.approx(want)


def test_grad_clip_and_round_phase(tmp_path, ds, svhn_classifier):
    h = _trainer(_cfg(tmp_path / "gc", 4, grad_clip=1e-3, round_frac=0.5), ds, svhn_classifier).train()
    assert [r["rounding"] for r in h] == [False, False, True, True]
    assert all(r["grad_norm"] > 0 for r in h)


# -- compact checkpoints ----------------------------------------------------------------------
def test_compact_checkpoint_shards_resume_and_cleanup(tmp_path, ds, svhn_classifier):
    out = tmp_path / "compact"
    cfg = dict(ckpt_compact=True, ema=0.9, lr=1e-3)
    _trainer(_cfg(out, 4, **cfg), ds, svhn_classifier).train()
    files = sorted(os.listdir(out))
    shards = [f for f in files if f.startswith("checkpoint.pt.")]
    assert shards == ["checkpoint.pt.ema-00000004", "checkpoint.pt.optimizer-00000004"]  # step-2 shards removed
    opt = torch.load(out / shards[1], weights_only=True)["optimizer"]
    assert all(v["exp_avg"].dtype == torch.bfloat16 for v in opt["state"].values())
    full = _trainer(_cfg(tmp_path / "full", 6, lr=1e-3, ema=0.9), ds, svhn_classifier).train()
    resumed = _trainer(_cfg(out, 6, **cfg), ds, svhn_classifier)
    assert resumed.step == 4
    assert all(v["exp_avg"].dtype == torch.float32 for v in resumed.opt.state_dict()["state"].values())
    h = resumed.train()
    # bfloat16 moments (8-bit mantissa) perturb the continuation slightly, not the trajectory
    assert h[-1]["loss"] == pytest.approx(full[-1]["loss"], rel=0.05)
    os.remove(out / "checkpoint.pt.ema-00000006")
    with pytest.raises(CheckpointError, match="shard"):
        _trainer(_cfg(out, 8, **cfg), ds, svhn_classifier)


def test_channels_last_layout_trains_like_contiguous_and_resumes_across_layouts(tmp_path, ds, svhn_classifier):
    cl = _trainer(_cfg(tmp_path / "cl", 3, lr=1e-3), ds, svhn_classifier)
    assert cl.cfg.channels_last  # the default
    conv = next(p for p in cl.model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    h_cl = cl.train()
    h_nc = _trainer(_cfg(tmp_path / "nc", 3, lr=1e-3, channels_last=False), ds, svhn_classifier).train()
    # Same data, NAEs, dither and init; only the convolutions' summation order differs (float32, ~1e-6
    # relative per op), so three steps agree to well under 0.1%.
    for a, b in zip(h_cl, h_nc):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)
    # A contiguous run's checkpoint resumes in channels-last: moments take the parameters' strides.
    resumed = _trainer(_cfg(tmp_path / "nc", 5, lr=1e-3), ds, svhn_classifier)
    assert resumed.step == 3
    for p in resumed.model.parameters():
        for t in resumed.opt.state[p].values():
            if isinstance(t, torch.Tensor) and t.shape == p.shape:
                assert t.stride() == p.stride()
    assert resumed.train()[-1]["step"] == 5
    # Weights saved from a channels-last model are contiguous on disk and load into any layout.
    save_ric(tmp_path / "cl.pt", cl.model)
    sd = torch.load(tmp_path / "cl.pt", weights_only=True)["state_dict"]
    assert all(v.is_contiguous() for v in sd.values())
    assert all(torch.equal(v, cl.model.state_dict()[k]) for k, v in load_ric(tmp_path / "cl.pt").state_dict().items())


def test_best_score_needs_agreement():
    assert ckpt.best_score({"val_psnr": 30.0, "val_agreement": 1.0}) == 30.0
    assert ckpt.best_score({"val_psnr": 40.0, "val_agreement": 0.9}) == float("-inf")
    assert ckpt.best_score(None) == float("-inf")


# -- init, decoder_z, margin variant -------------------------------------------------------
def test_init_from_weights_and_widening_to_decoder_z(tmp_path, ds, svhn_classifier):
    src = RIC(3, 4, 2)
    save_ric(tmp_path / "src.pt", src)
    t = _trainer(_cfg(tmp_path / "a", 1, init=str(tmp_path / "src.pt")), ds, svhn_classifier)
    for k, v in src.state_dict().items():
        assert torch.equal(t.model.state_dict()[k], v)
    # contiguous layout: the comparison below is bit-exact, and a layout change alters summation order
    w = _trainer(
        _cfg(tmp_path / "b", 1, init=str(tmp_path / "src.pt"), decoder_z=True, channels_last=False), ds, svhn_classifier
    )
    x, z = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        c = src.encrypt(x, z, quantize="none")
        assert torch.equal(w.model.encrypt(x, z, quantize="none"), c)
        torch.testing.assert_close(w.model.decrypt(c, z), src.decrypt(c, z), rtol=0, atol=1e-6)
    with pytest.raises(CheckpointError, match="--init"):
        _trainer(_cfg(tmp_path / "c", 1, init=str(tmp_path / "src.pt"), width=6), ds, svhn_classifier)


def test_decoder_z_model_roundtrip(tmp_path):
    m = RIC(3, 4, 2, decoder_z=True)
    assert m.config()["decoder_z"] is True and "decoder_z" not in RIC(3, 4, 2).config()
    save_ric(tmp_path / "m.pt", m)
    m2 = load_ric(tmp_path / "m.pt")
    x, z = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(m2.decrypt(m2.encrypt(x, z), z), m.decrypt(m.encrypt(x, z), z))
    with pytest.raises(ValueError, match="needs the NAE"):
        m.decoder(torch.rand(1, 3, 8, 8))


def test_authors_margin_in_training_and_nae(tmp_path, ds, svhn_classifier):
    from ric_ext.models import ZeroLogit
    from ric_ext.nae import NAEConfig, NAEGenerator

    logits = torch.tensor([[-3.0, -1.0, -2.0]])
    out = ZeroLogit(torch.nn.Identity())(logits)
    assert out.tolist() == [[-3.0, -1.0, -2.0, 0.0]] and out.argmax(1).item() == 3
    cfg = NAEConfig(margin="authors")
    assert NAEConfig.from_dict(cfg.to_dict()) == cfg and "margin" not in NAEConfig().to_dict()
    with pytest.raises(ValueError, match="margin"):
        NAEConfig(margin="zero")
    key, nonces = bytes(32), torch.zeros(4, 12, dtype=torch.uint8)
    y = torch.tensor([0, 3, 5, 9])
    z_m = NAEGenerator(svhn_classifier, NAEConfig(stop="margin")).generate(key, nonces, y, (3, 32, 32)).z
    z_a = (
        NAEGenerator(svhn_classifier, NAEConfig(stop="margin", margin="authors"))
        .generate(key, nonces, y, (3, 32, 32))
        .z
    )
    with torch.no_grad():

        def target(z):
            return svhn_classifier(z).gather(1, y[:, None]).squeeze(1)

        assert (target(z_a) >= 5.0).all()  # the authors' margin also pushes the target logit above 0 + kappa
        assert (target(z_a) >= target(z_m) - 1e-4).all()
    h = _trainer(_cfg(tmp_path / "am", 1, margin="authors"), ds, svhn_classifier).train()
    assert math.isfinite(h[0]["cw"])


# -- the scripts that drive long runs ---------------------------------------------------------
@needs_shared
def test_train_gpu_script_rehearsal_on_cpu(tmp_path):
    """python/recipes/train_gpu.sh (the lent-GPU chunk) runs, stops by wall clock and resumes from checkpoints/NAME."""
    import shutil
    import subprocess

    root = os.path.join(os.path.dirname(__file__), "..")
    flags = [
        "--width",
        "4",
        "--depth",
        "2",
        "--batch-size",
        "4",
        "--val-every",
        "2",
        "--val-n",
        "4",
        "--ckpt-every",
        "2",
        "--steps",
        "50",
        "--nae-steps",
        "2",
    ]
    env = dict(
        os.environ, PYTHON=sys.executable, SKIP_INSTALL="1", DEVICE="cpu", STOP_MIN="0.002", OUT=str(tmp_path / "out")
    )
    p = subprocess.run(
        ["bash", "python/recipes/train_gpu.sh", "pytest_rehearsal", *flags],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    state = json.load(open(tmp_path / "out" / "pytest_rehearsal" / "state.json"))
    assert state["step"] >= 1
    carried = os.path.join(root, "checkpoints", "pytest_rehearsal")
    shutil.copytree(tmp_path / "out" / "pytest_rehearsal", carried)
    try:
        env["OUT"] = str(tmp_path / "out2")
        p = subprocess.run(
            ["bash", "python/recipes/train_gpu.sh", "pytest_rehearsal", *flags],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        assert "resuming from checkpoints/pytest_rehearsal" in p.stdout
        assert json.load(open(tmp_path / "out2" / "pytest_rehearsal" / "state.json"))["step"] > state["step"]
    finally:
        shutil.rmtree(carried)


@needs_shared
def test_train_gpu_script_faces160_rehearsal_on_cpu(tmp_path):
    """train_gpu.sh faces160: the RIC starts from the 64x64 faces weights at 160x160 against the bundled
    160x160 classifier (here: one RIC step)."""
    import subprocess

    from ric_ext.models import load_classifier

    root = os.path.join(os.path.dirname(__file__), "..")
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        SKIP_INSTALL="1",
        DEVICE="cpu",
        STOP_MIN="0.002",
        OUT=str(tmp_path / "out"),
        RIC_DATA=DATA,
    )
    flags = ["--batch-size", "2", "--val-n", "2", "--nae-steps", "2", "--ckpt-every", "1"]
    p = subprocess.run(
        ["bash", "python/recipes/train_gpu.sh", "faces160_rehearsal", *flags],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    run = tmp_path / "out" / "faces160_rehearsal"
    cfg = json.load(open(run / "config.json"))
    assert (cfg["dataset"], cfg["size"], cfg["classifier"], cfg["nae_lr"]) == ("lfw", 160, "lfw160", 0.05)
    assert (cfg["init"], cfg["width"], cfg["depth"], cfg["lr"]) == ("ric_ext/assets/ric_faces64_v6.pt", 32, 4, 2e-4)
    assert load_classifier("lfw160").input_size == 160  # bundled: nothing trained into the run folder
    assert not (run / "models").exists()
    val = [json.loads(line) for line in open(run / "validation.jsonl")]
    assert val[-1]["step"] >= 1 and val[-1]["val_n"] == 2


def test_recipe_study_table(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "recipe_study", os.path.join(os.path.dirname(__file__), "..", "python", "recipes", "recipe_study.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    os.makedirs(tmp_path / "base")
    with open(tmp_path / "base" / "validation.jsonl", "w") as f:
        for step, p in ((100, 20.0), (200, 25.5), (300, 25.0)):
            f.write(
                json.dumps(
                    {
                        "step": step,
                        "compute_s": step * 0.9,
                        "val_psnr": p,
                        "val_ssim": 0.9,
                        "val_agreement": 1.0,
                        "val_cipher_psnr": 10.0,
                    }
                )
                + "\n"
            )
    row = mod.table(str(tmp_path)).splitlines()[2]
    assert row.startswith("| base |") and "| 300 | 4.5 | 25.00 | 25.50 (200) |" in row


@needs_shared
def test_diagnose_floor_script_reports_both_paths():
    import re
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "python", "recipes", "diagnose_floor.py")
    out = subprocess.run(
        [sys.executable, script, "--model", "svhn", "--n", "8"], capture_output=True, text=True, check=True
    ).stdout
    rounded, unrounded = (float(v) for v in re.findall(r"PSNR ([\d.]+) dB", out))
    # the bundled model recovers at ~35 dB on these images either way (docs/diaries/svhn.md); noise is ~10 dB
    assert rounded > 30 and unrounded > 30
    assert re.search(r"ciphertext pixels clamped: [\d.]+%", out)


@needs_shared
def test_continue_runs_script_rehearsal(tmp_path):
    """python/recipes/continue_runs.sh with all five runs cut to one tiny step each (its flags must stay valid)."""
    import subprocess

    root = os.path.join(os.path.dirname(__file__), "..")
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        ROOT=str(tmp_path),
        SVHN_MIN="1",
        FACES_MIN="1",
        FACES2_MIN="1",
        FACES3_MIN="1",
        FACES4_MIN="1",
        EXTRA="--batch-size 4 --steps 1 --val-n 4 --nae-steps 5 --nae-pool 1",
    )
    p = subprocess.run(["bash", "python/recipes/continue_runs.sh"], cwd=root, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    for name in ("svhn_w32", "faces64_w32", "faces64_w32_r2", "faces64_w32_r3", "faces64_w32_r4"):
        val = [json.loads(line) for line in open(tmp_path / name / "validation.jsonl")]
        assert val[-1]["step"] == 1 and val[-1]["val_n"] == 4
        assert os.path.isfile(tmp_path / name / "checkpoint.pt")
    # each run's own schedule and init reached train; the warm restarts start from the bundled
    # faces model their previous run produced (v4: the first run's best weights, v5: r2's, v6: r3's)
    for name, lr, warmup, init in (
        ("faces64_w32", 3e-4, 50, "ric_ext/assets/ric_svhn_w32_v4.pt"),
        ("faces64_w32_r2", 1.5e-4, 100, "models/archive/ric_faces64_v4.pt"),
        ("faces64_w32_r3", 1e-4, 100, "models/archive/ric_faces64_v5.pt"),
        ("faces64_w32_r4", 1e-4, 100, "ric_ext/assets/ric_faces64_v6.pt"),
    ):
        cfg = json.load(open(tmp_path / name / "config.json"))
        assert (cfg["dataset"], cfg["size"], cfg["classifier"], cfg["nae_lr"]) == ("lfw", 64, "lfw", 0.05)
        assert (cfg["lr"], cfg["warmup"], cfg["init"]) == (lr, warmup, init)
