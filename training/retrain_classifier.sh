#!/usr/bin/env bash
# One-command, resumable recipe for models/neu-classifier.onnx (NEU-DET six-class image
# classifier, Ultralytics-classify compatible), on the CPU:
#   1. creates .venv-train (Debian's /usr/bin/python3) and installs training/requirements.txt
#   2. converts NEU-DET (NEU_DET_DIR, Pascal VOC layout) into training/data/neu/{train,val,test}
#      (training/neu_det.py: split by file number n, n % 10 == 0 test, == 5 validation, else train)
#   3. trains training/classify.py on the train split (EPOCHS, checkpoint chosen on the
#      validation split; RESUME=1 continues RUN/last.pt after an interruption)
#   4. exports RUN/best.pt to OUT_MODEL (checked against PyTorch with onnxruntime)
#   5. measures the card's figures on the test split with onnxruntime and the reference
#      preprocessing (training/cls_preprocess.py) into RUN/test_metrics.json
#
# Environment knobs: NEU_DET_DIR (required), EPOCHS (70), IMGSZ (192), NICE (15),
# RUN (training/runs/cls), RESUME=1, SKIP_CONVERT=1 (keep training/data/neu), OUT_MODEL.
# Get NEU-DET as training/retrain.sh's header says; it is never committed here.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv-train}
EPOCHS=${EPOCHS:-70}
IMGSZ=${IMGSZ:-192}
NICE=${NICE:-15}
RUN=${RUN:-training/runs/cls}
OUT_MODEL=${OUT_MODEL:-models/neu-classifier.onnx}
: "${NEU_DET_DIR:?set NEU_DET_DIR to a folder holding NEU-DET (images + Pascal VOC XML); see training/retrain.sh}"

if [[ ! -x $VENV/bin/python ]]; then
  echo "retrain_classifier: creating $VENV"
  /usr/bin/python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, onnx, onnxruntime, cv2" 2>/dev/null; then
  echo "retrain_classifier: installing training/requirements.txt into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r training/requirements.txt
fi
PY=(nice -n "$NICE" "$VENV/bin/python" -W ignore)

if [[ ${SKIP_CONVERT:-0} != 1 ]]; then
  echo "retrain_classifier: converting NEU-DET from $NEU_DET_DIR"
  "${PY[@]}" training/neu_det.py --src "$NEU_DET_DIR" --out training/data/neu
fi

mkdir -p "$RUN"
resume=()
[[ ${RESUME:-0} == 1 && -f $RUN/last.pt ]] && resume=(--resume)
echo "retrain_classifier: training for $EPOCHS epochs at ${IMGSZ}x${IMGSZ} into $RUN"
"${PY[@]}" training/classify.py train --data training/data/neu --out "$RUN" --epochs "$EPOCHS" \
  --imgsz "$IMGSZ" "${resume[@]}"

echo "retrain_classifier: exporting $RUN/best.pt to $OUT_MODEL"
"${PY[@]}" training/classify.py export --ckpt "$RUN/best.pt" --out "$OUT_MODEL"

echo "retrain_classifier: validation and test figures (onnxruntime, reference preprocessing)"
"${PY[@]}" training/classify.py eval --model "$OUT_MODEL" --data training/data/neu --split val \
  --json "$RUN/val_metrics.json"
"${PY[@]}" training/classify.py eval --model "$OUT_MODEL" --data training/data/neu --split test \
  --json "$RUN/test_metrics.json"
echo "retrain_classifier: done"
