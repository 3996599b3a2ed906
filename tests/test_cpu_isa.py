"""The baseline and AVX2 builds of the CPU kernels give bit-identical results."""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import hashlib, json, torch
import ric_ext
from ric_ext import ops
g = torch.Generator().manual_seed(0)
e = torch.rand(3, 3, 37, 41, generator=g); z = torch.rand(3, 3, 37, 41, generator=g)
w = torch.randn(3, 5000, generator=g); m = torch.zeros_like(w); v = torch.zeros_like(w)
nonces = torch.randint(0, 256, (3, 12), dtype=torch.uint8, generator=g)
outs = [ops.mask(e, z, quantize=q, seed=7) for q in ("train", "eval", "none")]
outs += [ops.mask_uint8(e, z), ops.unmask(outs[1], z), ops.keyed_uniform(bytes(32), nonces, (3, 37, 41)),
         ops.keyed_uniform(bytes(32), nonces, (3, 37, 41), tanh_space=True),
         ops.adam_tanh_step_(w, m, v, torch.randn(3, 5000, generator=g), 1, grad_wrt="adv"), w,
         ops.keyed_digit_pad((e * 255).to(torch.uint8), bytes(32), nonces, 51, inverse=True)]
h = hashlib.sha256(b"".join(o.contiguous().numpy().tobytes() for o in outs)).hexdigest()
print(json.dumps({"isa": ric_ext.build_info()["cpu_isa"], "hash": h}))
"""


def _run(isa):
    env = dict(os.environ)
    env.pop("RIC_EXT_CPU_ISA", None)
    if isa:
        env["RIC_EXT_CPU_ISA"] = isa
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(__file__),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_isa_variants_bit_identical():
    default, base = _run(None), _run("baseline")
    assert base["isa"] == "baseline"
    if default["isa"] == "baseline":
        pytest.skip("this CPU/build has only the baseline variant")
    assert default["hash"] == base["hash"]
