#!/usr/bin/env bash
# One-command, resumable recipe for magnetic-tile-seg.onnx: a YOLO-style instance-segmentation
# model (five defect classes, 32 prototypes) trained from scratch, on the CPU, on the defective
# tiles of the Magnetic Tile Defect dataset (a copy of github.com/abin24/Magnetic-tile-defect-datasets.
# in MTD_DIR; never committed):
#   1. creates .venv-train (Debian's /usr/bin/python3) and installs training/requirements.txt
#   2. splits the tiles by file number n (n % 5 == 0 test, == 1 validation, else train; SPLIT_BY=part:
#      every lighting view of a tile in the split of the tile's smallest number), cuts each mask
#      into instances and caches everything in RUN/data.pkl
#   3. trains for MINUTES of wall time (the learning rate anneals to it; or ITERS iterations),
#      checkpoints every 2 minutes (RUN/last.pt) and keeps the best validation mask mAP@0.5
#      (RUN/best.pt; validation every VAL_EVERY minutes)
#   4. exports RUN/best.pt to OUT_MODEL (Ultralytics -seg layout) and checks it with onnxruntime
#   5. measures the test split with onnxruntime + scripts/reference_segment_input.py (needs pycocotools:
#      scripts/requirements.txt's venv, .venv)
#
#   MTD_DIR=/path/to/Magnetic-tile-defect-datasets training/retrain_mtd_seg.sh
#
# Knobs: MINUTES (90), ITERS (0: time only), BATCH (8), THREADS (2), NICE (19), VAL_EVERY (10), SPLIT_BY (number),
# (a RUN made under one SPLIT_BY is refused under the other: training/run_split.sh);
# RUN (training/runs/mtd-seg), OUT_MODEL (models/magnetic-tile-seg.onnx), RESUME=1, EVAL_PY (.venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${MTD_DIR:?set MTD_DIR to a copy of the Magnetic Tile Defect dataset}"
VENV=${VENV:-.venv-train}
NICE=${NICE:-19}
RUN=${RUN:-training/runs/mtd-seg}
SPLIT_BY=${SPLIT_BY:-number}
source training/run_split.sh
check_run_split retrain_mtd_seg "$RUN" "$SPLIT_BY" "$RUN/data.pkl"
OUT_MODEL=${OUT_MODEL:-models/magnetic-tile-seg.onnx}
EVAL_PY=${EVAL_PY:-.venv/bin/python}

if [[ ! -x $VENV/bin/python ]]; then
  echo "retrain_mtd_seg: creating $VENV"
  /usr/bin/python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, onnx, onnxruntime, cv2" 2>/dev/null; then
  echo "retrain_mtd_seg: installing training/requirements.txt into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r training/requirements.txt
fi
PY=(nice -n "$NICE" "$VENV/bin/python" -W ignore training/mtd_seg.py)
resume=()
[[ ${RESUME:-0} == 1 ]] && resume=(--resume)

[[ -f $RUN/data.pkl ]] || "${PY[@]}" data --mtd "$MTD_DIR" --out "$RUN" --split-by "$SPLIT_BY"
"${PY[@]}" train --out "$RUN" --minutes "${MINUTES:-90}" --iters "${ITERS:-0}" --batch "${BATCH:-8}" \
  --threads "${THREADS:-2}" --val-every "${VAL_EVERY:-10}" "${resume[@]}"
"${PY[@]}" export --out "$RUN" --model "$OUT_MODEL"
if "$EVAL_PY" -c "import pycocotools, onnxruntime, cv2" 2>/dev/null; then
  nice -n "$NICE" "$EVAL_PY" training/mtd_seg_eval.py --mtd "$MTD_DIR" --split-by "$SPLIT_BY" --model "$OUT_MODEL" \
    --json "$RUN/test-figures.json"
else
  echo "retrain_mtd_seg: $EVAL_PY lacks pycocotools: run training/mtd_seg_eval.py with scripts/requirements.txt's venv"
fi
