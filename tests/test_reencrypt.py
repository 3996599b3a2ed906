"""Issue 39: re-encryption without plaintext on disk (a new key, format 4 for old files, another
base), in memory and for folders: checked bytes, resume, sharding, bad inputs, no plaintext file."""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest
import torch
from conftest import MODELS, file_tree, run_cli, tamper_png
from PIL import Image

from ric_ext import Cipher, Key, ReencryptionError, WrongKeyError, reencrypt
from ric_ext.fileformat import read_png, write_png
from ric_ext.folders import encrypt_folder, reencrypt_folder

SEED = "a7" * 32


def _env():
    return dict(os.environ, RIC_MODELS=MODELS, OMP_NUM_THREADS="1")


def _u8(x):
    return (x * 255).round().to(torch.uint8)


def _pixels(path):
    with Image.open(path) as im:
        return np.array(im)


@pytest.fixture(scope="module")
def archive(tmp_path_factory, svhn_images):
    """16 SVHN images in a two-level tree, two keys, and their format-4 ciphertexts under key 1."""
    d = tmp_path_factory.mktemp("reencrypt")
    x, _ = svhn_images
    for i in range(16):
        sub = d / "in" / ("a" if i % 3 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_u8(x[i]).permute(1, 2, 0).numpy()).save(sub / f"{i:02d}.png")
    run_cli("keygen", "--out", d / "k1.json")
    run_cli("keygen", "--out", d / "k2.json")
    run_cli("encrypt", "--key", d / "k1.json", "--input", d / "in", "--output", d / "ct", "--no-progress")
    return d


# -- in memory ---------------------------------------------------------------------------------
def test_rotate_in_memory_keeps_every_image_and_locks_out_the_old_key(svhn_classifier, svhn_images):
    x, _ = svhn_images
    old, new = Key.generate(), Key.generate()
    ct = Cipher(svhn_classifier, old).encrypt(x[:6])
    moved = reencrypt(ct, old, Cipher(svhn_classifier, new))
    assert moved.header["version"] == 4 and moved.header["key_id"] == new.key_id
    back, lossless = Cipher.from_ciphertext(moved, new).decrypt_uint8(moved)
    assert torch.equal(back, _u8(x[:6])) and bool(lossless.all())
    assert torch.equal(moved.labels, ct.labels)  # the same classifier labels the same images alike
    with pytest.raises(WrongKeyError):
        Cipher.from_ciphertext(moved, old)
    # the same key again: fresh nonces, new pixels, the same images
    again = reencrypt(ct, old, Cipher(svhn_classifier, old))
    assert not torch.equal(again.nonces, ct.nonces) and not torch.equal(again.pixels, ct.pixels)
    assert torch.equal(Cipher.from_ciphertext(again, old).decrypt_uint8(again)[0], _u8(x[:6]))
    with pytest.raises(WrongKeyError):  # the input must be under the old key
        reencrypt(moved, old, Cipher(svhn_classifier, new))


def test_an_image_that_would_not_come_back_the_same_is_refused(svhn_classifier):
    # noise does not compress: at base 64 it travels as 64 levels, at base 16 it would keep only
    # 16, so its re-encryption at base 16 cannot decrypt to the same bytes: refused, not returned
    g = torch.Generator().manual_seed(3)
    noise = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g)
    key = Key.generate()
    ct = Cipher(svhn_classifier, key).encrypt(noise)
    assert not bool(ct.lossless.any())
    with pytest.raises(ReencryptionError, match="no longer fits the share losslessly"):
        reencrypt(ct, key, Cipher(svhn_classifier, key, base=16))
    # at the same base the lossy digits are kept exactly (re-quantising them changes nothing)
    same = reencrypt(ct, key, Cipher(svhn_classifier, key))
    assert torch.equal(Cipher(None, key).decrypt_uint8(same)[0], Cipher(None, key).decrypt_uint8(ct)[0])


def test_only_format_4_is_written(svhn_classifier, svhn_images):
    x, _ = svhn_images
    key = Key.generate()
    ct = Cipher(svhn_classifier, key).encrypt(x[:2])
    with pytest.raises(ValueError, match="format-4"):
        reencrypt(ct, key, Cipher.pad(svhn_classifier, key))
    with pytest.raises(ValueError, match="format-4"):
        reencrypt(ct, key, Cipher(None, key))  # decrypt-only: no classifier to steer


# -- folders -------------------------------------------------------------------------------------
def test_rotating_a_folder_keeps_every_image_bit_for_bit(archive, tmp_path):
    out = tmp_path / "ct2"
    p = run_cli("reencrypt", "--key", archive / "k1.json", "--new-key", archive / "k2.json",
             "--input", archive / "ct", "--output", out, "--no-progress")  # fmt: skip
    assert "re-encrypted 16 image(s)" in p.stdout and p.stdout.count("\tlossless") == 16
    assert sorted(file_tree(out)) == sorted(file_tree(archive / "ct"))  # the same names, subfolders kept
    k1, k2 = Key.load(archive / "k1.json"), Key.load(archive / "k2.json")
    for name in file_tree(out):
        with pytest.raises(WrongKeyError):  # the old key no longer opens the new files
            read_png(out / name, k1)
        assert read_png(out / name, k2).header["version"] == 4
    run_cli("decrypt", "--key", archive / "k2.json", "--input", out, "--output", tmp_path / "back", "--no-progress")
    for name in file_tree(archive / "in"):
        assert np.array_equal(_pixels(tmp_path / "back" / name), _pixels(archive / "in" / name)), name
    p = run_cli("decrypt", "--key", archive / "k1.json", "--input", out, "--output", tmp_path / "no", ok=False)
    assert p.returncode == 2 and "another key" in p.stderr


def test_a_format_3_folder_migrates_and_decrypts_with_the_key_alone(archive, tmp_path, svhn_classifier):
    key = Key.load(archive / "k1.json")
    pad = Cipher.pad(svhn_classifier, key)
    assert encrypt_folder(pad, archive / "in", tmp_path / "ct3", progress=False) == 16
    p = run_cli("reencrypt", "--key", archive / "k1.json", "--input", tmp_path / "ct3",
             "--output", tmp_path / "ct4", "--no-progress")  # fmt: skip
    assert p.stdout.count("from format 3, a replayed format") == 16
    for name in file_tree(tmp_path / "ct3"):
        old = read_png(tmp_path / "ct3" / name, key)
        new = read_png(tmp_path / "ct4" / name, key)
        assert old.header["version"] == 3 and new.header["version"] == 4
        # the key alone (no classifier, no network) gives the bytes the replay gives on this machine
        got, _ = Cipher.from_ciphertext(new, key).decrypt_uint8(new)
        assert torch.equal(got, pad.decrypt_uint8(old)[0]), name


def test_reencrypt_resumes_after_a_kill(archive, tmp_path, svhn_images):
    x, _ = svhn_images
    src = tmp_path / "in"
    src.mkdir()
    for i in range(48):  # the 16 samples three times over under different names
        Image.fromarray(_u8(x[i % 16]).permute(1, 2, 0).numpy()).save(src / f"{i:03d}.png")
    run_cli("encrypt", "--key", archive / "k1.json", "--input", src, "--output", tmp_path / "ct", "--no-progress")
    args = ["reencrypt", "--key", archive / "k1.json", "--new-key", archive / "k2.json", "--input", tmp_path / "ct",
            "--nonce-seed", SEED, "--no-progress", "--batch-size", "4"]  # fmt: skip
    out = tmp_path / "ct2"
    proc = subprocess.Popen([sys.executable, "-m", "ric_ext", *map(str, args), "--output", str(out)], env=_env())
    deadline = time.time() + 300
    while not (out.is_dir() and len([f for f in os.listdir(out) if f.endswith(".png")]) >= 8):
        assert proc.poll() is None and time.time() < deadline, "the job ended before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(f for f in os.listdir(out) if f.endswith(".png") and not f.startswith("."))
    assert 8 <= len(done) < 48
    p = run_cli(*args, "--output", out, ok=False)
    assert p.returncode == 2 and "--resume" in p.stderr
    before = {f: (out / f).read_bytes() for f in done}
    p = run_cli(*args, "--output", out, "--resume")
    assert f"re-encrypted {48 - len(done)} image(s)" in p.stdout
    assert {f: (out / f).read_bytes() for f in done} == before
    assert sorted(os.listdir(out)) == [f"{i:03d}.png" for i in range(48)]  # no temporary files left
    run_cli(*args, "--output", tmp_path / "clean")
    assert file_tree(out) == file_tree(tmp_path / "clean")  # the same bytes as an uninterrupted run


def test_torchrun_reencrypts_the_same_bytes_as_one_process(archive, tmp_path):
    common = ("reencrypt", "--key", archive / "k1.json", "--new-key", archive / "k2.json", "--input", archive / "ct",
              "--nonce-seed", SEED, "--no-progress")  # fmt: skip
    run_cli(*common, "--output", tmp_path / "one", "--batch-size", "5")
    p = run_cli(*common, "--output", tmp_path / "two", torchrun=True)
    assert p.stdout.count("re-encrypted 16 image(s)") == 1
    one = file_tree(tmp_path / "one")
    assert len(one) == 16 and one == file_tree(tmp_path / "two")


@pytest.mark.parametrize("bad", ["tampered", "foreign key"])
def test_a_bad_input_stops_the_job_by_name_and_nothing_is_written(archive, tmp_path, svhn_classifier, bad):
    src = tmp_path / "ct"
    src.mkdir()
    for name, data in file_tree(archive / "ct").items():
        (src / name.replace("/", "_")).write_bytes(data)
    victim = sorted(os.listdir(src))[5]
    if bad == "tampered":
        tamper_png(src / victim)
    else:
        other = Key.generate()
        write_png(src / victim, Cipher(svhn_classifier, other).encrypt(torch.rand(1, 3, 32, 32)), other,
                  overwrite=True)  # fmt: skip
    p = run_cli("reencrypt", "--key", archive / "k1.json", "--new-key", archive / "k2.json", "--input", src,
             "--output", tmp_path / "out", "--no-progress", ok=False)  # fmt: skip
    assert p.returncode == 2 and victim in p.stderr
    assert ("authentication failed" if bad == "tampered" else "another key") in p.stderr
    assert not file_tree(tmp_path / "out")  # nothing written, for it or any other file


def test_bad_requests_are_refused_clearly(archive, tmp_path):
    key = ("--key", archive / "k1.json", "--input", archive / "ct")
    p = run_cli("reencrypt", *key, "--output", archive / "ct" / "inside", ok=False)
    assert p.returncode == 2 and "inside --input" in p.stderr and not (archive / "ct" / "inside").exists()
    p = run_cli("reencrypt", *key, "--output", tmp_path / "o", "--classifier", "lfw", ok=False)
    assert p.returncode == 2 and "the classifier takes 64x64" in p.stderr and not (tmp_path / "o").exists()
    p = run_cli("reencrypt", *key, "--output", tmp_path / "o", "--nonce-seed", "xy", ok=False)
    assert p.returncode == 2 and "--nonce-seed" in p.stderr
    p = run_cli("reencrypt", *key, "--output", archive / "in", ok=False)
    assert p.returncode == 2 and "refusing to overwrite" in p.stderr


def test_no_plaintext_file_appears_anywhere_while_it_runs(archive, tmp_path, svhn_classifier, monkeypatch):
    """The output folder and the temporary folder are watched while the job runs, and every image
    any code saves is compared with the plaintexts: none of them is ever written."""
    plain = {_pixels(archive / "in" / n).tobytes() for n in file_tree(archive / "in")}
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    saved = []
    real_save = Image.Image.save

    def watched_save(self, fp, *a, **kw):
        saved.append(np.array(self).tobytes())
        return real_save(self, fp, *a, **kw)

    monkeypatch.setattr(Image.Image, "save", watched_save)
    out, seen, stop = tmp_path / "out", {}, threading.Event()

    def watch():
        while not stop.is_set():
            for folder in (out, scratch):
                for d, _, fs in os.walk(folder):
                    for f in fs:
                        path = os.path.join(d, f)
                        try:
                            with open(path, "rb") as fh:
                                seen[path] = fh.read()
                        except OSError:  # renamed or removed between listing and reading
                            pass
            time.sleep(0.001)

    t = threading.Thread(target=watch)
    t.start()
    try:
        k1, k2 = Key.load(archive / "k1.json"), Key.load(archive / "k2.json")
        n = reencrypt_folder(Cipher(svhn_classifier, k2, batch_size=4), k1, archive / "ct", out, progress=False)
    finally:
        stop.set()
        t.join()
    assert n == 16 and len(saved) >= 16
    assert not any(s in plain for s in saved)  # no image saved anywhere had a plaintext's pixels
    assert not [p for p in seen if p.startswith(str(scratch))]  # nothing in the temporary folder
    assert seen  # the watcher did see the files appear
    final = file_tree(out)
    for path, data in seen.items():
        name = os.path.basename(path)
        assert name.endswith(".png") or (name.startswith(".") and name.endswith(".tmp")), path
        if not name.startswith("."):
            ct = read_png(path, k2)  # every file that appeared is a ciphertext under the new key
            assert ct.pixels[0].permute(1, 2, 0).numpy().tobytes() not in plain
        else:  # an atomic write's temporary file: (a part of) the ciphertext file it became
            assert any(f.startswith(data) for f in final.values()), path
