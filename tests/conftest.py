"""Shared fixtures: the devices to test on and deterministic random data.

CUDA cases run where a GPU is present and are skipped otherwise (CI is CPU-only).
"""

from __future__ import annotations

import os

import pytest
import torch

import ric_ext

CUDA = torch.cuda.is_available() and "cuda" in ric_ext.build_info()["backends"]
DEVICES = ["cpu"] + (["cuda"] if CUDA else [])
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU and ric_ext built with CUDA kernels")

# Awkward element counts: empty, one, less than a 4-group, odd, a prime that is
# not a multiple of any vector width, and one large enough for the OpenMP path.
AWKWARD_SHAPES = [(0,), (1,), (3,), (2, 3, 5), (7919,), (2, 3, 33, 31), (40_003,)]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """Same values, non-contiguous layout (a transposed copy transposed back)."""
    if t.dim() < 2:
        return torch.stack([t, t], -1)[..., 0]
    return t.transpose(0, -1).contiguous().transpose(0, -1)


# ---- the project's data and classifier folders -------------------------------
# The package has no default data or models folder (docs/data.md). The tests find
# the workspace's read-only copies beside the repository (../shared) or where
# RIC_SHARED points, and hand them to everything they run in one place: the
# fixture below sets RIC_DATA and RIC_MODELS for the session (subprocesses and
# recipe scripts inherit them); DATA and MODELS are passed where a test names a
# folder itself.
SHARED = os.environ.get("RIC_SHARED") or os.path.join(os.path.dirname(__file__), "..", "..", "shared")
DATA = os.path.abspath(os.path.join(SHARED, "data"))
MODELS = os.path.abspath(os.path.join(SHARED, "models"))
ARCHIVE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "models", "archive"))
needs_shared = pytest.mark.skipif(
    not os.path.isfile(os.path.join(DATA, "svhn_test10k.npz")), reason="needs the shared data folder (docs/data.md)"
)


@pytest.fixture(scope="session", autouse=True)
def shared_folders(tmp_path_factory):
    """RIC_DATA and RIC_MODELS point at the shared folders, RIC_ARCHIVE at the repository's archived
    weights, and RIC_HOME (the user's model store) at an empty temporary folder, for the whole
    session (restored afterwards): no test reads or writes the user's ~/.cache/ric_ext."""
    saved = {k: os.environ.get(k) for k in ("RIC_DATA", "RIC_MODELS", "RIC_ARCHIVE", "RIC_HOME")}
    os.environ["RIC_HOME"] = str(tmp_path_factory.mktemp("ric_home"))
    if os.path.isdir(DATA):
        os.environ["RIC_DATA"] = DATA
    if os.path.isdir(MODELS):
        os.environ["RIC_MODELS"] = MODELS
    # the superseded RIC weights live in the repository, not in the installed package
    os.environ["RIC_ARCHIVE"] = ARCHIVE
    yield DATA, MODELS
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def svhn_classifier():
    from ric_ext.models import load_classifier

    return load_classifier("svhn", MODELS)


@pytest.fixture(scope="session")
def svhn_images():
    """16 real SVHN test images (the bundled samples) and their labels."""
    from ric_ext.demo import load_samples

    return load_samples()


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory, svhn_classifier):
    """A tiny RIC (width 4) trained for a few steps on real SVHN: mechanics, not quality."""
    from ric_ext.data import ArrayDataset
    from ric_ext.demo import load_samples
    from ric_ext.training import TrainConfig, Trainer

    x, y = load_samples()
    ds = ArrayDataset((x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy(), y.numpy())
    out = tmp_path_factory.mktemp("tiny_run")
    cfg = TrainConfig(
        width=4,
        depth=2,
        batch_size=8,
        steps=3,
        nae_steps=3,
        out=str(out),
        log_every=1,
        ckpt_every=3,
        grid_every=3,
        device="cpu",
    )
    trainer = Trainer(cfg, dataset=ds, classifier=svhn_classifier, progress=False)
    trainer.train()
    return trainer.model.eval()


@pytest.fixture(scope="session")
def svhn_ds(svhn_images):
    """The 16 bundled SVHN samples as a training dataset."""
    from ric_ext.data import ArrayDataset

    x, y = svhn_images
    return ArrayDataset((x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy(), y.numpy())


def tiny_train_config(out, steps, **kw):
    """A TrainConfig for mechanics tests: width 4, depth 2, batch 4, 2 NAE steps, CPU."""
    from ric_ext.training import TrainConfig

    base = dict(
        width=4,
        depth=2,
        batch_size=4,
        steps=steps,
        nae_steps=2,
        out=str(out),
        log_every=1,
        ckpt_every=2,
        grid_every=100,
        device="cpu",
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


# ---- helpers for the command-line and folder tests ----------------------------
def run_cli(*args, ok: bool = True, torchrun: bool = False, env: dict = None):
    """``python -m ric_ext ARGS`` (under ``torchrun --nproc_per_node=2`` if asked) with the shared
    models folder and one OpenMP thread; raises with its output when it fails and ``ok``."""
    import subprocess
    import sys

    head = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"] if torchrun else [sys.executable]
    env = env or dict(os.environ, RIC_MODELS=MODELS, OMP_NUM_THREADS="1")
    p = subprocess.run([*head, "-m", "ric_ext", *map(str, args)], capture_output=True, text=True, env=env)
    if ok and p.returncode != 0:
        raise AssertionError(f"ric_ext {args[0]} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def file_tree(folder) -> dict:
    """{relative path: bytes} of every file below ``folder``."""
    out = {}
    for d, _, fs in os.walk(folder):
        for f in fs:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), folder)] = fh.read()
    return out


def tamper_png(path, at=(0, 0, 0), write_to=None) -> None:
    """Flip one bit of one subpixel of a ciphertext PNG and keep its header and tag (what an
    attacker would try), in place or into ``write_to``."""
    import numpy as np
    from PIL import Image, PngImagePlugin

    with Image.open(path) as im:
        arr, text = np.array(im), dict(im.text)
    arr[at] ^= 1
    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    Image.fromarray(arr).save(write_to or path, pnginfo=info)
