"""Recovery does not depend on floats: a format-4 folder encrypted here decrypts to the same bytes
in fresh processes with oneDNN off, with ATEN_CPU_CAPABILITY=default, on one thread, with the
baseline CPU kernels and with the other codec wrapper; from the command line, with the key alone
and no classifier anywhere (an empty RIC_HOME, no RIC_MODELS); and to the plaintext itself
wherever the lossless path was taken. (CUDA: python/checks/gpu_check.sh.)"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import needs_shared
from PIL import Image

from ric_ext.cipher import Cipher
from ric_ext.data import save_image
from ric_ext.folders import encrypt_folder
from ric_ext.keys import Key

# Each variant decrypts in a fresh interpreter through the CLI; PRE runs first inside it.
VARIANTS = {
    "defaults": ({}, ""),
    "onednn_off": ({}, "import torch; torch.backends.mkldnn.enabled = False; "),
    "aten_default_capability": ({"ATEN_CPU_CAPABILITY": "default"}, ""),
    "one_thread": ({"OMP_NUM_THREADS": "1"}, "import torch; torch.set_num_threads(1); "),
    "baseline_isa": ({"RIC_EXT_CPU_ISA": "baseline"}, ""),
    "pillow_codec": ({"RIC_CODEC": "pillow"}, ""),
}


def _decrypt(key_file, ct_dir, out_dir, tmp_path, env_extra, pre) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RIC_MODELS", "RIC_DATA", "RIC_ARCHIVE")}
    env["RIC_HOME"] = str(tmp_path / "empty_home")  # no stored classifier, no cached bank
    env.update(env_extra)
    code = (
        f"{pre}import sys; from ric_ext.__main__ import main; "
        f"sys.exit(main(['decrypt', '--key', {str(key_file)!r}, '--input', {str(ct_dir)!r}, "
        f"'--output', {str(out_dir)!r}, '--no-progress']))"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "lossless" in r.stdout  # one line per file says how it travelled


def _pixels(folder) -> dict:
    out = {}
    for name in sorted(os.listdir(folder)):
        with Image.open(os.path.join(folder, name)) as im:
            out[name] = np.asarray(im).tobytes()
    return out


@needs_shared
def test_decryption_is_byte_identical_across_backends(tmp_path, svhn_classifier):
    from ric_ext import data

    plain = tmp_path / "plain"
    plain.mkdir()
    svhn = data.svhn("test").images[:24]
    for i, im in enumerate(svhn):
        save_image(plain / f"svhn_{i:02d}.png", im)
    g = torch.Generator().manual_seed(0)
    for i in range(2):  # noise: the lossy path
        save_image(plain / f"noise_{i}.png", torch.randint(0, 256, (3, 32, 32), generator=g, dtype=torch.uint8))
    key = Key.generate()
    key.save(tmp_path / "k.json")
    cipher = Cipher(svhn_classifier, key)
    modes = {}
    encrypt_folder(
        cipher, plain, tmp_path / "ct", progress=False, on_file=lambda o, ll: modes.update({os.path.basename(o): ll})
    )
    assert sum(modes.values()) == 24 and len(modes) == 26  # 24 photos lossless, 2 noise images lossy

    results = {}
    for name, (env_extra, pre) in VARIANTS.items():
        out = tmp_path / f"out_{name}"
        _decrypt(tmp_path / "k.json", tmp_path / "ct", out, tmp_path, env_extra, pre)
        results[name] = _pixels(out)
    first = results["defaults"]
    for name, got in results.items():
        assert got == first, f"{name} decrypted to other bytes than the defaults"
    originals = _pixels(plain)
    for fname, ll in modes.items():
        if ll:
            assert first[fname] == originals[fname], f"{fname}: lossless, yet not the plaintext"
        else:
            assert first[fname] != originals[fname]  # the lossy digits, within 46.4 dB (test_payload.py)


@pytest.mark.parametrize("variant", ["onednn_off"])
def test_encryption_under_another_backend_still_agrees(tmp_path, variant, svhn_images, svhn_classifier):
    # Encryption may round differently elsewhere; its check runs there too, so agreement holds by
    # construction, and what it made decrypts exactly here.
    x, _ = svhn_images
    key = Key.generate()
    key.save(tmp_path / "k.json")
    src = tmp_path / "plain"
    src.mkdir()
    for i in range(4):
        save_image(src / f"{i}.png", x[i])
    env = {k: v for k, v in os.environ.items()}
    env["RIC_HOME"] = str(tmp_path / "home")
    code = (
        "import torch, sys; torch.backends.mkldnn.enabled = False; from ric_ext.__main__ import main; "
        f"sys.exit(main(['encrypt', '--key', {str(tmp_path / 'k.json')!r}, '--input', {str(src)!r}, "
        f"'--output', {str(tmp_path / 'ct')!r}, '--no-progress', '--classifier', 'svhn']))"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    from ric_ext.fileformat import read_png
    from ric_ext.folders import image_files

    cts = [read_png(f, key) for f in image_files(tmp_path / "ct")]
    alone = Cipher.from_ciphertext(cts[0], key)
    for i, ct in enumerate(cts):
        assert torch.equal(alone.decrypt_uint8(ct)[0][0], torch.round(x[i] * 255).to(torch.uint8))
        with torch.no_grad():  # this process's oneDNN convolutions, another "cloud", agree (margin >= 1 there)
            assert int(svhn_classifier(ct.as_float()).argmax(1)) == int(ct.labels)
