#!/usr/bin/env bash
# Continue the paper scheme's long CPU training runs (docs/diaries/svhn.md and docs/diaries/faces.md),
# one process after the other (two torch processes on 2 cores slow each other 10-100x).
# Every run is stopped (0 minutes by default): the last two, svhn_w32 (step 17,719) and
# faces64_w32_r4 (step 1,819), left the tree on 2026-12-07 (docs/decisions.md). To continue one,
# restore its checkpoint folder from the commit before the one that removed it, e.g.
#   git checkout "$(git log -1 --format=%h --diff-filter=D -- checkpoints/svhn_w32)^" -- checkpoints/svhn_w32
#
#   SVHN_MIN=55 FACES4_MIN=45 bash python/recipes/continue_runs.sh       # wall minutes per run; 0 skips a run
#   SVHN_MIN=0 FACES_MIN=0 FACES2_MIN=60 bash python/recipes/continue_runs.sh   # the first faces warm restart only
#   SVHN_MIN=0 FACES_MIN=0 FACES3_MIN=60 bash python/recipes/continue_runs.sh   # the second faces warm restart only
#   SVHN_MIN=0 FACES_MIN=0 FACES4_MIN=60 bash python/recipes/continue_runs.sh   # the third faces warm restart only
#
# Each run resumes from ROOT/NAME/checkpoint.pt (weights, bf16 Adam moments, EMA, compute
# clock, best score; --init and FACES_INIT only matter for a fresh run) and stops after its minutes,
# checkpointed; then copy nothing, just commit ROOT/NAME. Pausing a run (kill -STOP) still
# spends its wall minutes. EXTRA="..." appends flags to both runs (later flags win), which
# the CPU rehearsal in tests/test_training_recipe.py uses with ROOT=a temporary folder.
set -euo pipefail
PY="${PYTHON:-python3}"  # the interpreter (tests pass their own, sys.executable)
# The workspace's data and classifier folders (docs/data.md): the package has no default.
export RIC_DATA="${RIC_DATA:-../shared/data}" RIC_MODELS="${RIC_MODELS:-../shared/models}"
ROOT="${ROOT:-checkpoints}"
SVHN_MIN="${SVHN_MIN:-0}"
# The first faces run and the first two warm restarts finished their schedules (their numbers
# are in docs/diaries/faces.md; their folders left the tree on 2026-12-03), so they run only when asked.
FACES_MIN="${FACES_MIN:-0}"
# The faces run fine-tunes an SVHN model (fully convolutional). Out of the box the SVHN v3 model
# already recovered LFW faces at 31.7 dB, above the first faces run (from v1) after 801 steps;
# the committed faces run began from v4.
FACES_INIT="${FACES_INIT:-ric_ext/assets/ric_svhn_w32_v4.pt}"
FACES2_MIN="${FACES2_MIN:-0}"
# The first faces run's cosine schedule ended at step 20,000 (LR 3e-6) still gaining ~0.06 dB per
# 1,000 steps (~0.2 before the LR fell), so a second run restarts the schedule (peak 1.5e-4, half the first's) from its best
# weights (the bundled faces v4, byte-identical to checkpoints/faces64_w32/best.pt): a warm restart
# with a fresh optimiser (docs/diaries/faces.md, "Faces model v4").
FACES2_INIT="${FACES2_INIT:-models/archive/ric_faces64_v4.pt}"
# That restart held ~41.4 dB until its LR fell below ~7e-5 and gained +0.5 dB in its last 40%
# (ending at 42.02 on validation, the bundled faces v5), so a third run restarts again from v5 with
# a lower peak, 1e-4 (a guess: fewer steps spent at high LR; not compared with 1.5e-4).
FACES3_MIN="${FACES3_MIN:-0}"
FACES3_INIT="${FACES3_INIT:-models/archive/ric_faces64_v5.pt}"
# The second restart dipped only 0.33 dB, passed v5 by step 1,800 and then climbed at every
# validation to 42.93 dB at its end (+0.91 over v5; the bundled faces v6), so a third one repeats
# its recipe from v6 to learn whether restarts keep paying.
FACES4_MIN="${FACES4_MIN:-0}"
FACES4_INIT="${FACES4_INIT:-ric_ext/assets/ric_faces64_v6.pt}"
if [ "$SVHN_MIN" != 0 ]; then
  "$PY" -m ric_ext train --init models/archive/ric_svhn_w32.pt --decoder-z false --width 32 --batch-size 32 \
    --lr 3e-4 --schedule cosine --warmup 100 --steps 40000 --amp bf16 --ema 0.998 --val-every 250 --val-n 200 \
    --log-every 25 --ckpt-every 250 --grid-every 1000000 --ckpt-compact true --stop-after-min "$SVHN_MIN" \
    --out "$ROOT/svhn_w32" --no-progress ${EXTRA:-}
fi
# One faces run: INIT LR WARMUP STEPS VAL_EVERY MINUTES OUT (the rest of the recipe is shared).
faces_run() {
  "$PY" -m ric_ext train --dataset lfw --size 64 --classifier lfw --nae-lr 0.05 --nae-pool 8 \
    --init "$1" --decoder-z false --width 32 --batch-size 16 --lr "$2" --schedule cosine \
    --warmup "$3" --steps "$4" --amp bf16 --ema 0.998 --val-every "$5" --val-split test --val-n 100 --log-every 25 \
    --ckpt-every 200 --grid-every 1000000 --ckpt-compact true --stop-after-min "$6" \
    --out "$7" --no-progress ${EXTRA:-}
}
if [ "$FACES_MIN" != 0 ]; then
  faces_run "$FACES_INIT" 3e-4 50 20000 200 "$FACES_MIN" "$ROOT/faces64_w32"
fi
if [ "$FACES2_MIN" != 0 ]; then
  faces_run "$FACES2_INIT" 1.5e-4 100 10000 600 "$FACES2_MIN" "$ROOT/faces64_w32_r2"
fi
if [ "$FACES3_MIN" != 0 ]; then
  faces_run "$FACES3_INIT" 1e-4 100 10000 600 "$FACES3_MIN" "$ROOT/faces64_w32_r3"
fi
if [ "$FACES4_MIN" != 0 ]; then
  faces_run "$FACES4_INIT" 1e-4 100 10000 600 "$FACES4_MIN" "$ROOT/faces64_w32_r4"
fi
