"""Issue 19, item 6: torchrun shards folder jobs deterministically (byte-identical to one
process, each rank writing only its own files), and a killed job resumes."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import MODELS, file_tree, run_cli
from PIL import Image

from ric_ext import Key
from ric_ext.fileformat import read_png

SEED = "5e" * 32


def _env():
    return dict(os.environ, RIC_MODELS=MODELS, OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def photos(tmp_path_factory, svhn_images):
    """16 SVHN images in a two-level folder tree, and a key."""
    d = tmp_path_factory.mktemp("scale")
    x, _ = svhn_images
    for i in range(16):
        sub = d / "in" / ("a" if i % 3 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(sub / f"{i:02d}.png")
    run_cli("keygen", "--out", d / "k.json")
    return d


def test_torchrun_output_is_byte_identical_to_one_process(photos, tmp_path):
    key = photos / "k.json"
    common = ("--key", key, "--input", photos / "in", "--nonce-seed", SEED, "--no-progress")
    run_cli("encrypt", *common, "--output", tmp_path / "one", "--batch-size", "5")
    p = run_cli("encrypt", *common, "--output", tmp_path / "two", torchrun=True)
    assert p.stdout.count("encrypted 16 image(s)") == 1  # rank 0 reports the total
    one, two = file_tree(tmp_path / "one"), file_tree(tmp_path / "two")
    assert len(one) == 16 and one == two
    run_cli("decrypt", "--key", key, "--input", tmp_path / "one", "--output", tmp_path / "d1", "--no-progress")
    run_cli("decrypt", "--key", key, "--input", tmp_path / "one", "--output", tmp_path / "d2", "--no-progress",
         torchrun=True)  # fmt: skip
    assert file_tree(tmp_path / "d1") == file_tree(tmp_path / "d2")
    # without a seed, runs differ (fresh nonces), as they must
    run_cli("encrypt", "--key", key, "--input", photos / "in", "--output", tmp_path / "fresh", "--no-progress")
    assert file_tree(tmp_path / "fresh").keys() == one.keys() and file_tree(tmp_path / "fresh") != one


def test_each_rank_writes_only_its_share(photos, tmp_path, monkeypatch, svhn_classifier):
    from ric_ext import Cipher, distributed, folders

    @contextlib.contextmanager
    def rank_one_of_two():
        yield 1, 2

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(distributed, "process_group", rank_one_of_two)
    cipher = Cipher(svhn_classifier, Key.load(photos / "k.json"))
    assert folders.encrypt_folder(cipher, photos / "in", tmp_path / "out", progress=False) == 8
    everything = [o for _, o in folders.plan_outputs(photos / "in", tmp_path / "none")]
    written = sorted(os.path.join(tmp_path / "none", p) for p in file_tree(tmp_path / "out"))
    assert written == sorted(everything[1::2])


def test_a_killed_job_resumes(photos, tmp_path, svhn_images):
    x, _ = svhn_images
    src = tmp_path / "in"
    src.mkdir()
    for i in range(48):  # the 16 samples, three times over under different names
        Image.fromarray((x[i % 16].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(src / f"{i:03d}.png")
    key = photos / "k.json"
    args = ["encrypt", "--key", key, "--input", src, "--nonce-seed", SEED, "--no-progress", "--batch-size", "4"]
    out = tmp_path / "ct"
    proc = subprocess.Popen([sys.executable, "-m", "ric_ext", *map(str, args), "--output", str(out)], env=_env())
    deadline = time.time() + 300
    while not (out.is_dir() and len([f for f in os.listdir(out) if f.endswith(".png")]) >= 8):
        assert proc.poll() is None and time.time() < deadline, "the job ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    assert 8 <= len(done) < 48
    k = Key.load(key)
    for f in done:  # every finished file is whole: it authenticates
        read_png(out / f, k)
    p = run_cli(*args, "--output", out, ok=False)
    assert p.returncode == 2 and "--resume" in p.stderr  # a plain rerun refuses the folder, and says why
    before = {f: (out / f).read_bytes() for f in done}
    p = run_cli(*args, "--output", out, "--resume")
    assert f"encrypted {48 - len(done)} image(s)" in p.stdout  # only what was missing
    assert {f: (out / f).read_bytes() for f in done} == before  # what was there is untouched
    assert sorted(os.listdir(out)) == [f"{i:03d}.png" for i in range(48)]  # no temporary files left
    run_cli(*args, "--output", tmp_path / "clean")
    assert file_tree(out) == file_tree(tmp_path / "clean")  # the same bytes as an uninterrupted run

    # what is there is verified: a file from another key stops the resume, and is kept
    other = tmp_path / "other.json"
    run_cli("keygen", "--out", other)
    (out / "000.png").unlink()
    run_cli("encrypt", "--key", other, "--input", src / "000.png", "--output", out, "--no-progress")
    p = run_cli(*args, "--output", out, "--resume", ok=False)
    assert p.returncode == 2 and "another key" in p.stderr and (out / "000.png").exists()
