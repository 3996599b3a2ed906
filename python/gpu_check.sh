#!/usr/bin/env bash
# One prepared device check for a lent GPU machine (see DEVELOPERS.md):
# build with the machine's own torch/nvcc, run the whole test suite (CUDA
# tests included), the CUDA kernel benchmark and the CPU-vs-GPU NAE
# comparison, and leave logs and JSON under $OUT.
#   run: bash python/gpu_check.sh      (timeout_s 580: build ~40 s + tests 180 + bench 260 + NAE 60)
set -uo pipefail
OUT="${OUT:-/tmp/ric_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1
# Only the GPU's own architecture: a quicker build on the lent machine.
export RIC_EXT_CUDA_ARCHITECTURES="${RIC_EXT_CUDA_ARCHITECTURES:-90}"
python3 -m pip install --no-build-isolation --no-deps -q . > "$OUT/install.log" 2>&1 || { tail -50 "$OUT/install.log"; exit 1; }
python3 -m ric_ext info | tee "$OUT/info.txt"
timeout 180 python3 -m pytest -q tests -x 2>&1 | tail -40 | tee "$OUT/tests.log"
timeout 260 python3 python/bench_kernels.py --device cuda --json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/bench_cuda.txt"
# CPU- vs GPU-made NAEs and their effect on decryption PSNR (bundled model, 16 samples).
timeout 60 python3 python/nae_cross_device.py --a cpu --b cuda --json "$OUT/nae_cross_device.json" 2>&1 | tail -12
echo "done"
