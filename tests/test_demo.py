"""The README's main job: `python -m ric_ext demo` on the bundled weights and samples."""

import os
import subprocess
import sys

import pytest

from ric_ext.models.registry import ASSETS, BUNDLED_MODEL


def _demo(tmp_path, *args):
    """``python -m ric_ext demo ARGS`` with no models folder: (the process, its table as a dict)."""
    p = subprocess.run(
        [sys.executable, "-m", "ric_ext", "demo", *args],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env={**os.environ, "RIC_MODELS": "/nonexistent"},
    )
    lines = dict(l.rsplit("  ", 1) for l in p.stdout.splitlines() if "  " in l and not l.startswith("("))
    return p, {k.strip(): v.strip() for k, v in lines.items()}


@pytest.mark.skipif(not os.path.isfile(os.path.join(ASSETS, BUNDLED_MODEL)), reason="bundled model not installed")
def test_demo_end_to_end(tmp_path):
    p, lines = _demo(tmp_path, "--out", str(tmp_path / "demo"))
    assert p.returncode == 0, p.stderr[-3000:]
    # Needs nothing outside the package (no ../shared): classifier, weights and samples are bundled.
    assert lines["label agreement (cipher vs plain)"] == "100.00%"
    # The default digits scheme gives every sample back bit for bit (docs/scheme.md#digits).
    assert lines["recovery"] == "lossless, bit for bit: 16 of 16 images"
    assert lines["recovery PSNR"].startswith("100.00 dB (16 exact")
    assert float(lines["wrong-key decryption PSNR"].split()[0]) < 15.0
    assert float(lines["ciphertext vs plaintext PSNR"].split()[0]) < 15.0
    assert os.path.isfile(tmp_path / "demo" / "grid.png")


def test_demo_on_faces_at_160_px(tmp_path):
    p, lines = _demo(tmp_path, "--dataset", "faces")
    assert p.returncode == 0, p.stderr[-3000:]
    # bundled: the lfw160 classifier, its bank and four faces; each comes back bit for bit
    assert lines["images"] == "4" and lines["label agreement (cipher vs plain)"] == "100.00%"
    assert lines["recovery"] == "lossless, bit for bit: 4 of 4 images"
    assert float(lines["wrong-key decryption PSNR"].split()[0]) < 15.0
    p = subprocess.run([sys.executable, "-m", "ric_ext", "demo", "--dataset", "faces", "--scheme", "paper"],
                       capture_output=True, text=True, cwd=str(tmp_path))  # fmt: skip
    assert p.returncode == 2 and "not trained at 160x160" in p.stderr


@pytest.mark.skipif(not os.path.isfile(os.path.join(ASSETS, BUNDLED_MODEL)), reason="bundled model not installed")
def test_demo_paper_scheme(tmp_path):
    p, lines = _demo(tmp_path, "--scheme", "paper")
    assert p.returncode == 0, p.stderr[-3000:]
    # The bundled model's measured quality on these 16 images is ~37 dB (docs/diaries/svhn.md);
    # a floor well below it catches a broken model or pipeline, not noise.
    assert float(lines["recovery PSNR"].split()[0]) > 25.0
    assert "recovery" not in lines  # the lossless line is the digits scheme's


@pytest.mark.skipif(not os.path.isfile(os.path.join(ASSETS, BUNDLED_MODEL)), reason="bundled model not installed")
def test_readme_python_example_runs(capsys):
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    block = readme.split("## Python API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["x_hat"].shape == scope["x"].shape
    assert bool((scope["cipher"].classify(scope["ct"]) == scope["ct"].labels).all())
