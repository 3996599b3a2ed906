"""Training loop: resume gives the uninterrupted run's next step; logs, grids, checkpoints."""

import json
import os

import pytest
import torch
from conftest import needs_shared, tiny_train_config

from ric_ext.errors import CheckpointError
from ric_ext.models import load_ric
from ric_ext.training import Trainer


@pytest.fixture(scope="module")
def ds(svhn_ds):
    return svhn_ds


_cfg = tiny_train_config


def test_resume_matches_uninterrupted(tmp_path, ds, svhn_classifier):
    full = Trainer(_cfg(tmp_path / "a", 4), dataset=ds, classifier=svhn_classifier, progress=False)
    hist_full = full.train()
    part = Trainer(_cfg(tmp_path / "b", 2), dataset=ds, classifier=svhn_classifier, progress=False)
    part.train()
    resumed = Trainer(_cfg(tmp_path / "b", 4), dataset=ds, classifier=svhn_classifier, progress=False)
    assert resumed.step == 2
    hist_resumed = resumed.train()
    for a, b in zip(hist_full[2:], hist_resumed):
        assert a["loss"] == b["loss"] and a["step"] == b["step"]
    for (n1, p1), (_, p2) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(p1, p2), n1


def test_outputs_and_checkpoint_loading(tmp_path, ds, svhn_classifier):
    out = tmp_path / "run"
    t = Trainer(_cfg(out, 2, grid_every=2), dataset=ds, classifier=svhn_classifier, progress=False)
    t.train()
    lines = [json.loads(l) for l in open(out / "metrics.jsonl")]
    assert [l["step"] for l in lines] == [1, 2]
    assert {"loss", "mse", "cw", "psnr_train", "agree_train", "nae_s", "step_s"} <= set(lines[0])
    assert os.path.isfile(out / "grid_0000002.png") and os.path.isfile(out / "config.json")
    m = load_ric(out / "checkpoint.pt")
    for k, v in t.model.state_dict().items():
        assert torch.equal(m.state_dict()[k], v)


def test_loss_decreases(tmp_path, ds, svhn_classifier):
    t = Trainer(
        _cfg(tmp_path / "l", 15, width=8, lr=1e-3, batch_size=8, ckpt_every=100),
        dataset=ds,
        classifier=svhn_classifier,
        progress=False,
    )
    h = t.train()
    assert sum(r["mse"] for r in h[-3:]) < sum(r["mse"] for r in h[:3])


def test_bad_checkpoint(tmp_path, ds, svhn_classifier):
    out = tmp_path / "bad"
    os.makedirs(out)
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        Trainer(_cfg(out, 2), dataset=ds, classifier=svhn_classifier, progress=False)
    out2 = tmp_path / "other"
    Trainer(_cfg(out2, 2), dataset=ds, classifier=svhn_classifier, progress=False).train()
    with pytest.raises(CheckpointError, match="is for RIC"):
        Trainer(_cfg(out2, 4, width=6), dataset=ds, classifier=svhn_classifier, progress=False)
    with pytest.raises(CheckpointError, match="not found"):
        load_ric(tmp_path / "nope.pt")


@needs_shared
def test_ddp_two_ranks_with_torchrun(tmp_path):
    # Two CPU ranks (gloo) through torchrun: each takes half the global batch.
    import socket
    import subprocess
    import sys

    from conftest import DATA, MODELS

    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    env = dict(os.environ, RIC_MODELS=MODELS, OMP_NUM_THREADS="1")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={port}",
            "-m",
            "ric_ext",
            "train",
            "--width",
            "4",
            "--depth",
            "2",
            "--batch-size",
            "4",
            "--steps",
            "2",
            "--nae-steps",
            "2",
            "--log-every",
            "1",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--no-progress",
            "--data",
            DATA,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(__file__),
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("step 2:") == 1  # only rank 0 reports
    lines = [json.loads(l) for l in open(out / "metrics.jsonl")]
    assert [l["step"] for l in lines] == [1, 2]
    assert load_ric(out / "checkpoint.pt").config()["width"] == 4


def test_bf16_autocast_step(tmp_path, ds, svhn_classifier):
    t = Trainer(_cfg(tmp_path / "amp", 1, amp="bf16"), dataset=ds, classifier=svhn_classifier, progress=False)
    rec = t.train_step()
    assert all(torch.isfinite(torch.tensor(rec[k])) for k in ("loss", "mse", "cw"))
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # master weights stay float32
