#!/usr/bin/env bash
# One-command, resumable recipe for models/surface-anomaly.onnx (PatchCore-style anomaly model
# trained on defect-free synthetic surfaces only), on the CPU:
#   1. creates .venv-train (Debian's /usr/bin/python3) and installs training/requirements.txt
#   2. renders the data from generate.py's seeds into RUN/data (clean training pool; validation
#      and held-out test sets of clean and defective images with pixel masks)
#   3. stage 1: self-supervised backbone (dense VICReg on clean crops, VICREG_ITERS)
#   4. stage 2: dense pseudo-anomaly segmentation on clean crops (CutPaste / smooth-noise
#      corruptions, never generate.py's defects; PSEUDO_ITERS), reflect padding
#   5. memory bank: PCA 192 -> 64 and a greedy coreset of BANK clean patches
#   6. export, thresholds F1-optimal on the validation set, export again with them in the
#      metadata, figures on the held-out test set (onnxruntime) into RUN/test_metrics_final.json
#
# Environment knobs: NICE (15), RUN (training/runs/anomaly), VICREG_ITERS (2500),
# PSEUDO_ITERS (600), BANK (4096), OUT_MODEL, RESUME=1 (continue the stage checkpoints).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv-train}
NICE=${NICE:-15}
RUN=${RUN:-training/runs/anomaly}
VICREG_ITERS=${VICREG_ITERS:-2500}
PSEUDO_ITERS=${PSEUDO_ITERS:-600}
BANK=${BANK:-4096}
OUT_MODEL=${OUT_MODEL:-models/surface-anomaly.onnx}

if [[ ! -x $VENV/bin/python ]]; then
  echo "retrain_anomaly: creating $VENV"
  /usr/bin/python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, onnx, onnxruntime, cv2" 2>/dev/null; then
  echo "retrain_anomaly: installing training/requirements.txt into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r training/requirements.txt
fi
PY=(nice -n "$NICE" "$VENV/bin/python" -W ignore training/anomaly.py)
resume=()
[[ ${RESUME:-0} == 1 ]] && resume=(--resume)

echo "retrain_anomaly: data into $RUN/data (kept if present)"
"${PY[@]}" data --out "$RUN"

if [[ ! -f $RUN/backbone_last.pt || ${RESUME:-0} == 1 ]]; then
  echo "retrain_anomaly: stage 1, self-supervised backbone ($VICREG_ITERS iterations)"
  "${PY[@]}" train --out "$RUN" --iters "$VICREG_ITERS" --batch 16 --crop 128 --log-every 25 \
    --keep-every 250 "${resume[@]}"
fi
echo "retrain_anomaly: stage 2, pseudo-anomaly segmentation ($PSEUDO_ITERS iterations)"
"${PY[@]}" pseudo --out "$RUN" --init "$RUN/backbone_last.pt" --iters "$PSEUDO_ITERS" --batch 16 --crop 96 \
  --log-every 20 --keep-every 200 "${resume[@]}"

echo "retrain_anomaly: memory bank"
"${PY[@]}" fit --out "$RUN" --backbone "$RUN/pseudo_last.pt" --tag final --bank "$BANK" \
  --coreset-pool 60000 --bank-images 300
rm -f "$RUN/thresholds_final.json"
"${PY[@]}" export --out "$RUN" --backbone "$RUN/pseudo_last.pt" --tag final --model "$OUT_MODEL"
echo "retrain_anomaly: thresholds on the validation set"
"${PY[@]}" eval --out "$RUN" --tag final --model "$OUT_MODEL" --val-only
"${PY[@]}" export --out "$RUN" --backbone "$RUN/pseudo_last.pt" --tag final --model "$OUT_MODEL"
echo "retrain_anomaly: figures on the held-out test set"
"${PY[@]}" eval --out "$RUN" --tag final --model "$OUT_MODEL"
echo "retrain_anomaly: done ($RUN/test_metrics_final.json)"
