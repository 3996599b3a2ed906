#!/usr/bin/env bash
# One chunk (<= 8 minutes) of a long training run on a lent GPU machine.
#
#   bash python/recipes/train_gpu.sh [NAME] [extra `ric_ext train` flags]
#   (device tool: command "bash python/recipes/train_gpu.sh svhn_w50", timeout_s 590)
#
# Resumes from checkpoints/NAME/ when the repository holds one (committed, so it
# travels with the working tree), trains for STOP_MIN wall minutes (default 7)
# with bf16 autocast for the networks (NAEs, mask and unmask stay float32),
# and writes the compact, sharded checkpoint (each file < 16 MiB, see
# ric_ext/training/checkpoint.py), best.pt, metrics.jsonl and validation.jsonl
# to $OUT/NAME/. Afterwards copy $OUT/NAME/ over checkpoints/NAME/ and commit,
# so the next lent GPU (or CPU session) continues the same run.
#
# CPU rehearsal (what a session without a GPU runs to keep this script working):
#   SKIP_INSTALL=1 DEVICE=cpu STOP_MIN=0.3 OUT=/tmp/rehearsal bash python/recipes/train_gpu.sh t --width 8 --depth 2 --batch-size 8 --val-every 10 --val-n 16 --ckpt-every 10
#
# Recipes, chosen by NAME:
#   svhn* (default svhn_w50): width 50 (the paper's), batch 64, fresh NAEs, warm-up + cosine over
#     STEPS (default 25,000 = 200 epochs of the 8,000 SVHN training images),
#     validation every 500 steps on SVHN test 0-199.
#   faces160*: LFW faces at 160x160 (the paper's size), against the bundled 160x160 LFW
#     identity classifier `lfw160` (docs/models.md). The RIC starts from
#     the bundled 64x64 faces model (fully convolutional, so its weights fit any
#     size): width 32, batch 32, fresh NAEs at NAE lr 0.05, peak lr 2e-4, cosine
#     over STEPS (default 20,000), validation every 500 steps on LFW test 0-99.
set -euo pipefail
PY="${PYTHON:-python3}"  # the interpreter (tests pass their own, sys.executable)
# The workspace's data and classifier folders (docs/data.md): the package has no default.
export RIC_DATA="${RIC_DATA:-../shared/data}" RIC_MODELS="${RIC_MODELS:-../shared/models}"
NAME="${1:-svhn_w50}"
shift || true
OUT="${OUT:-/tmp/ric_out}"
STOP_MIN="${STOP_MIN:-7}"
DST="$OUT/$NAME"
mkdir -p "$DST"
export PYTHONUNBUFFERED=1
export RIC_EXT_CUDA_ARCHITECTURES="${RIC_EXT_CUDA_ARCHITECTURES:-90}"
if [ -d "checkpoints/$NAME" ]; then
  cp -a "checkpoints/$NAME/." "$DST/"
  echo "resuming from checkpoints/$NAME (step $("$PY" -c "import json; print(json.load(open('$DST/state.json'))['step'])" 2>/dev/null || echo '?'))"
fi
# SKIP_INSTALL=1: use the ric_ext already installed (the CPU rehearsal of this script does).
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  "$PY" -m pip install --no-build-isolation --no-deps -q . > "$DST/install.log" 2>&1 || { tail -50 "$DST/install.log"; exit 1; }
fi
case "$NAME" in
  faces160*)
    RECIPE=(--dataset lfw --size 160 --classifier lfw160 --nae-lr 0.05
            --init ric_ext/assets/ric_faces64_v6.pt --width 32 --depth 4 --batch-size 32 --lr 2e-4
            --warmup 200 --steps "${STEPS:-20000}" --ema 0.998 --val-n 100)
    ;;
  *)
    RECIPE=(--width 50 --batch-size 64 --lr 1e-3 --warmup 500 --steps "${STEPS:-25000}" --ema 0.999 --val-n 200)
    ;;
esac
"$PY" -m ric_ext train --device "${DEVICE:-cuda}" --amp bf16 "${RECIPE[@]}" --schedule cosine --val-every 500 \
  --log-every 50 --ckpt-every 500 --grid-every 5000 --ckpt-compact true --stop-after-min "$STOP_MIN" \
  --out "$DST" --no-progress "$@"
"$PY" - "$DST" <<'PY'
import json, os, sys
d = sys.argv[1]
val = [json.loads(l) for l in open(os.path.join(d, "validation.jsonl"))] if os.path.exists(os.path.join(d, "validation.jsonl")) else []
state = {"step": val[-1]["step"] if val else None, "last_validation": val[-1] if val else None,
         "best_val_psnr": max((v["val_psnr"] for v in val), default=None)}
json.dump(state, open(os.path.join(d, "state.json"), "w"), indent=1)
print(json.dumps(state, indent=1))
PY
ls -la "$DST"
