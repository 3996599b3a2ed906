#!/usr/bin/env bash
# One prepared device check for a lent GPU machine (see DEVELOPERS.md):
# build with the machine's own torch/nvcc, run the CUDA tests, the digits scheme across devices
# (CPU encrypt -> GPU decrypt and the reverse, byte for byte), the end-to-end ratios at batch 1,024
# (encryption and decryption against the classifier's own inference), the format-3 replay across
# devices (how far a replayed NAE drifts), the CUDA kernel benchmark and the rest of the tests;
# logs and JSON under $OUT.
#   run: bash python/checks/gpu_check.sh      (timeout_s 590: build ~40 s + CUDA tests 60 + digits cross 60
#                                       + e2e 120 + replay cross 80 + kernels 120 + tests 100)
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
# CUDA-specific tests first (so they report even if the whole suite runs out of time).
timeout 60 "$PY" -m pytest -q tests -k "cuda or CUDA or graph" 2>&1 | tail -15 | tee "$OUT/tests_cuda.log"
# The digits scheme: encrypt on one device, decrypt on the other, byte for byte (issue 26).
for dir in "cpu cuda" "cuda cpu"; do
  set -- $dir
  timeout 30 "$PY" python/checks/digits_cross_device.py --a "$1" --b "$2" --n 256 --data "$RIC_DATA" \
    --json "$OUT/digits_${1}_${2}.json" 2>&1 | tail -12
done
# Encryption and decryption against the classifier's inference at batch 1,024 (issue 27).
timeout 60 "$PY" python/benchmarks/bench_e2e.py --device cuda --dataset svhn --n 1024 --batch-size 1024 \
  --paths inference,inference:256,digits --repeat 3 --json "$OUT/e2e_svhn_cuda.json" 2>&1 | tee "$OUT/e2e_svhn_cuda.txt" | tail -6
timeout 60 "$PY" python/benchmarks/bench_e2e.py --device cuda --dataset lfw --n 1024 --batch-size 1024 \
  --paths inference,inference:256,digits --repeat 3 --json "$OUT/e2e_lfw_cuda.json" 2>&1 | tee "$OUT/e2e_lfw_cuda.txt" | tail -6
# Format 3 (the pad scheme) replays its NAE: how far the replay drifts across devices.
for dir in "cpu cuda" "cuda cpu"; do
  set -- $dir
  timeout 40 "$PY" python/checks/nae_cross_device.py --a "$1" --b "$2" --nae-stop ciphertext --n 64 --data "$RIC_DATA" \
    --json "$OUT/cross_${1}_${2}_ciphertext.json" 2>&1 | tail -16
done
timeout 120 "$PY" python/benchmarks/bench_kernels.py --device cuda --json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/bench_cuda.txt" | tail -15
timeout 100 "$PY" -m pytest -q tests -x 2>&1 | tail -15 | tee "$OUT/tests.log"
echo "done"
