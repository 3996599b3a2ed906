"""The examples in python/examples/ run on a fresh machine (bundled samples only) and read top to
bottom without a scheme branch a user must know about (issue 37)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "python", "examples")
sys.path.insert(0, os.path.join(ROOT, "python", "checks"))
from count_scheme_branches import branches  # noqa: E402


def _run(cmd, tmp_path) -> str:
    env = dict(os.environ, PYTHON=sys.executable, RIC_HOME=str(tmp_path / "home"))
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_api_example_runs(tmp_path):
    out = _run([sys.executable, os.path.join(EXAMPLES, "encrypt_decrypt.py"), "--out", str(tmp_path)], tmp_path)
    assert "labels 100% of them" in out and "bit for bit" in out
    assert len(list(tmp_path.glob("*.png"))) == 16


def test_cli_example_runs(tmp_path):
    out = _run(["bash", os.path.join(EXAMPLES, "cli.sh"), str(tmp_path / "work")], tmp_path)
    assert "all 16 images came back bit for bit" in out


@pytest.mark.parametrize("name", sorted(os.listdir(EXAMPLES)))
def test_examples_have_no_scheme_branch(name):
    text = open(os.path.join(EXAMPLES, name)).read()
    assert not re.search(r"--scheme|Cipher\.(pad|paper|for_scheme)|scheme=", text), name
    if name.endswith(".py"):
        assert branches(os.path.join(EXAMPLES, name)) == [], name
