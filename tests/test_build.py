"""The build: what was compiled, and that CUDA sources compiled when nvcc was there."""

import os
import shutil
import subprocess
import sys

import ric_ext


def _nvcc_available() -> bool:
    return shutil.which("nvcc") is not None or os.path.exists("/usr/local/cuda/bin/nvcc")


def test_build_info_fields():
    info = ric_ext.build_info()
    assert "cpu" in info["backends"]
    for key in ("cuda_version", "cuda_architectures", "cxx_compiler", "openmp", "torch_version", "cuda_available"):
        assert key in info


def test_cuda_kernels_compiled_when_nvcc_present():
    # CI has nvcc and no GPU: a broken .cu file must fail here, not silently
    # fall back to a CPU-only build.
    if not _nvcc_available() or os.environ.get("RIC_EXT_CUDA", "AUTO").upper() == "OFF":
        return
    info = ric_ext.build_info()
    assert "cuda" in info["backends"], info
    archs = info["cuda_architectures"].split(",")
    assert "90-real" in archs or "90" in archs, archs
    assert any(a.endswith("-virtual") or a.isdigit() for a in archs), "no PTX entry for newer cards"


def test_cli_info_runs():
    out = subprocess.run(
        [sys.executable, "-m", "ric_ext", "info", "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(__file__),
    )
    assert '"backends"' in out.stdout
