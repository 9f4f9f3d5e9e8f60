#!/usr/bin/env bash
# One-command retraining recipe for models/surface-defects.onnx:
#   1. creates .venv-train (Debian's /usr/bin/python3) and installs training/requirements.txt
#   2. generates the synthetic data set (training/data/{train,val,test}, seeded)
#   3. trains the detector on the CPU (time budget MINUTES, nice'd)
#   4. exports ONNX (checked against PyTorch with onnxruntime) to models/surface-defects.onnx
#   5. evaluates it on the held-out test split (training/evaluate.py, onnxruntime)
#   6. re-renders the test videos in tests/data (needs gst-launch-1.0 with x264enc)
#
# Environment knobs: MINUTES (65), NICE (10), RUN (training/runs/exp), TRAIN_COUNT (5000),
# SKIP_DATA=1 (keep existing training/data), RESUME=1 (continue RUN/last.pt),
# SKIP_VIDEOS=1, OUT_MODEL (models/surface-defects.onnx).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv-train}
MINUTES=${MINUTES:-65}
NICE=${NICE:-10}
RUN=${RUN:-training/runs/exp}
TRAIN_COUNT=${TRAIN_COUNT:-5000}
OUT_MODEL=${OUT_MODEL:-models/surface-defects.onnx}

if [[ ! -x $VENV/bin/python ]]; then
  echo "retrain: creating $VENV"
  /usr/bin/python3 -m venv "$VENV"
fi
echo "retrain: installing training/requirements.txt into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r training/requirements.txt

PY=(nice -n "$NICE" "$VENV/bin/python")

if [[ ${SKIP_DATA:-0} != 1 ]]; then
  echo "retrain: generating data in training/data"
  rm -rf training/data
  half=$((TRAIN_COUNT / 2))
  "${PY[@]}" training/generate.py --split train --count "$half" --out training/data/train & p1=$!
  "${PY[@]}" training/generate.py --split train --start "$half" --count $((TRAIN_COUNT - half)) \
    --out training/data/train & p2=$!
  wait "$p1"; wait "$p2"
  "${PY[@]}" training/generate.py --split val --count 200 --out training/data/val
  "${PY[@]}" training/generate.py --split test --count 300 --out training/data/test
fi

echo "retrain: training for $MINUTES minutes into $RUN"
resume=()
[[ ${RESUME:-0} == 1 ]] && resume=(--resume)
"${PY[@]}" -W ignore training/train.py --data training/data --out "$RUN" --minutes "$MINUTES" "${resume[@]}"

ckpt=$RUN/best.pt
[[ -f $ckpt ]] || ckpt=$RUN/last.pt
echo "retrain: exporting $ckpt to $OUT_MODEL"
"${PY[@]}" -W ignore training/export.py --ckpt "$ckpt" --out "$OUT_MODEL"

echo "retrain: evaluating on the held-out test split"
"${PY[@]}" training/evaluate.py --model "$OUT_MODEL" --data training/data/test --bench 200 \
  --json "$RUN/test_metrics.json"

if [[ ${SKIP_VIDEOS:-0} != 1 ]]; then
  echo "retrain: rendering tests/data videos"
  "${PY[@]}" training/make_videos.py --out tests/data
fi
echo "retrain: done; update models/surface-defects.md with $RUN/test_metrics.json"
