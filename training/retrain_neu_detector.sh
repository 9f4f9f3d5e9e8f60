#!/usr/bin/env bash
# One-command, resumable recipe for models/neu-detector.onnx (NEU-DET-only steel-defect detector,
# backbone initialised from models/neu-classifier.onnx), on the CPU:
#   1. creates .venv-train (Debian's /usr/bin/python3) and installs training/requirements.txt
#   2. converts NEU-DET (NEU_DET_DIR, Pascal VOC layout) into training/data/neu/{train,val,test}
#      (training/neu_det.py: split by file number n, n % 10 == 0 test, == 5 validation, else train)
#   3. trains training/neu_detector.py on the train split for MINUTES (checkpoint chosen on the
#      validation split's mAP@0.5; RUN/last.pt every few minutes, RESUME=1 continues it)
#   4. exports RUN/best.pt to OUT_MODEL (checked against PyTorch with onnxruntime)
#   5. measures it on the validation split with onnxruntime (training/evaluate.py); the test
#      figures come from the element: MODEL=OUT_MODEL NEU_DET_DIR=... scripts/model_card_figures.sh
#
# Environment knobs: NEU_DET_DIR (required), MINUTES (90), THREADS (2), NICE (10), IMGSZ (256),
# RUN (training/runs/neu-detector), INIT_ONNX (models/neu-classifier.onnx; empty: random init),
# INIT_PT (another run's best.pt, e.g. at another IMGSZ: overrides INIT_ONNX), LR (2e-3),
# RESUME=1, SKIP_CONVERT=1 (keep training/data/neu), OUT_MODEL (RUN/neu-detector.onnx).
# Get NEU-DET as training/retrain.sh's header says; it is never committed here.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv-train}
MINUTES=${MINUTES:-90}
THREADS=${THREADS:-2}
NICE=${NICE:-10}
IMGSZ=${IMGSZ:-256}
RUN=${RUN:-training/runs/neu-detector}
INIT_ONNX=${INIT_ONNX-models/neu-classifier.onnx}
INIT_PT=${INIT_PT:-}
LR=${LR:-2e-3}
OUT_MODEL=${OUT_MODEL:-$RUN/neu-detector.onnx}
: "${NEU_DET_DIR:?set NEU_DET_DIR to a folder holding NEU-DET (images + Pascal VOC XML); see training/retrain.sh}"

if [[ ! -x $VENV/bin/python ]]; then
  echo "retrain_neu_detector: creating $VENV"
  /usr/bin/python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, onnx, onnxruntime, cv2" 2>/dev/null; then
  echo "retrain_neu_detector: installing training/requirements.txt into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r training/requirements.txt
fi
PY=(nice -n "$NICE" "$VENV/bin/python" -W ignore)

if [[ ${SKIP_CONVERT:-0} != 1 ]]; then
  echo "retrain_neu_detector: converting NEU-DET from $NEU_DET_DIR"
  "${PY[@]}" training/neu_det.py --src "$NEU_DET_DIR" --out training/data/neu
fi

mkdir -p "$RUN"
resume=()
[[ ${RESUME:-0} == 1 && -f $RUN/last.pt ]] && resume=(--resume)
echo "retrain_neu_detector: training for $MINUTES minutes at ${IMGSZ}x${IMGSZ} into $RUN"
"${PY[@]}" training/neu_detector.py train --neu training/data/neu --out "$RUN" --minutes "$MINUTES" \
  --imgsz "$IMGSZ" --threads "$THREADS" --lr "$LR" --init-onnx "$INIT_ONNX" \
  ${INIT_PT:+--init-pt "$INIT_PT"} "${resume[@]}"

echo "retrain_neu_detector: exporting $RUN/best.pt to $OUT_MODEL"
"${PY[@]}" training/neu_detector.py export --ckpt "$RUN/best.pt" --out "$OUT_MODEL"

echo "retrain_neu_detector: validation split with onnxruntime"
"${PY[@]}" training/evaluate.py --model "$OUT_MODEL" --data training/data/neu/val --conf 0.25 \
  --threads "$THREADS" --json "$RUN/val_metrics.json"
echo "retrain_neu_detector: done; test figures through the element:"
echo "  MODEL=$OUT_MODEL NEU_DET_DIR=$NEU_DET_DIR SYNTHETIC=0 scripts/model_card_figures.sh"
