#!/usr/bin/env bash
# One prepared device check for a lent GPU machine (see DEVELOPERS.md):
# build with the machine's own torch/nvcc, run the test suite (CUDA tests
# included), encrypt/decrypt across devices (CPU<->GPU NAE replay), the
# end-to-end benchmark (eager loop vs fixed vs adaptive, SVHN and CIFAR-10
# ResNet-56, batch 256) and the CUDA kernel benchmark; logs and JSON under $OUT.
#   run: bash python/gpu_check.sh      (timeout_s 590: build ~40 s + tests 150 + cross-device 60
#                                       + e2e 150 + kernels 150; each step has its own timeout)
set -uo pipefail
PY="${PYTHON:-python3}"  # the interpreter (tests pass their own, sys.executable)
# The workspace's data and classifier folders (docs/data.md): the package has no default.
export RIC_DATA="${RIC_DATA:-../shared/data}" RIC_MODELS="${RIC_MODELS:-../shared/models}"
OUT="${OUT:-/tmp/ric_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1
# Only the GPU's own architecture: a quicker build on the lent machine.
export RIC_EXT_CUDA_ARCHITECTURES="${RIC_EXT_CUDA_ARCHITECTURES:-90}"
"$PY" -m pip install --no-build-isolation --no-deps -q . > "$OUT/install.log" 2>&1 || { tail -50 "$OUT/install.log"; exit 1; }
"$PY" -m ric_ext info | tee "$OUT/info.txt"
# CUDA-specific tests first (so they report even if the whole suite runs out of time), then the rest.
timeout 60 "$PY" -m pytest -q tests -k "cuda or CUDA or graph" 2>&1 | tail -15 | tee "$OUT/tests_cuda.log"
timeout 100 "$PY" -m pytest -q tests -x 2>&1 | tail -15 | tee "$OUT/tests.log"
# Encrypt on one device, decrypt on the other (adaptive default and the fixed path), 64 paper-subset images.
for dir in "cpu cuda" "cuda cpu"; do
  set -- $dir
  for stop in ciphertext fixed; do
    timeout 40 "$PY" python/nae_cross_device.py --a "$1" --b "$2" --nae-stop "$stop" --n 64 --data "$RIC_DATA" \
      --json "$OUT/cross_${1}_${2}_${stop}.json" 2>&1 | tail -16
  done
done
timeout 90 "$PY" python/bench_e2e.py --device cuda --dataset svhn --n 500 --paths eager,fixed,margin:1,ciphertext:1:2 \
  --json "$OUT/e2e_svhn_cuda.json" 2>&1 | tee "$OUT/e2e_svhn_cuda.txt" | tail -8
timeout 60 "$PY" python/bench_e2e.py --device cuda --dataset cifar10 --n 512 --paths eager,fixed,margin:1,ciphertext:1:2 \
  --json "$OUT/e2e_cifar_cuda.json" 2>&1 | tee "$OUT/e2e_cifar_cuda.txt" | tail -8
timeout 150 "$PY" python/bench_kernels.py --device cuda --json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/bench_cuda.txt" | tail -15
echo "done"
