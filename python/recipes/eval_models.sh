#!/usr/bin/env bash
# The measured table of a model (docs/models.md): the SVHN paper subset with
# our metrics and the authors', CIFAR-10 generalisation with ResNet-20 (docs/scheme.md: kappa 5,
# 150 steps), and for a faces model the LFW test split with our LFW classifier.
#   bash python/recipes/eval_models.sh MODEL KIND OUTDIR      KIND: svhn | faces
# Faces use NAE lr 0.05 (docs/decisions.md); EXTRA="..." adds flags to every evaluate.
set -euo pipefail
PY="${PYTHON:-python3}"  # the interpreter (tests pass their own, sys.executable)
# The workspace's data and classifier folders (docs/data.md): the package has no default.
export RIC_DATA="${RIC_DATA:-../shared/data}" RIC_MODELS="${RIC_MODELS:-../shared/models}"
MODEL="$1"; KIND="${2:-svhn}"; OUT="${3:-runs/eval_models}"
mkdir -p "$OUT"
if [ "$KIND" = svhn ]; then
  "$PY" -m ric_ext evaluate --model "$MODEL" --dataset svhn --split paper --n 500 --metric-mode paper \
    --out "$OUT/svhn_paper" ${EXTRA:-} | tee "$OUT/svhn_paper.txt"
else
  "$PY" -m ric_ext evaluate --model "$MODEL" --dataset lfw --split test --size 64 --n 631 --classifier lfw \
    --nae-lr 0.05 --metric-mode paper --out "$OUT/lfw_test" ${EXTRA:-} | tee "$OUT/lfw_test.txt"
fi
"$PY" -m ric_ext evaluate --model "$MODEL" --dataset cifar10 --n 500 --classifier cifar10-resnet20 \
  --nae-steps 150 --metric-mode paper --out "$OUT/cifar10_r20" ${EXTRA:-} | tee "$OUT/cifar10_r20.txt"
