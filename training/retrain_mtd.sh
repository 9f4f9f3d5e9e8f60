#!/usr/bin/env bash
# One-command recipe for models/magnetic-tile-anomaly.onnx: an anomaly model made from the
# defect-free tiles of the Magnetic Tile Defect dataset only (a copy of
# github.com/abin24/Magnetic-tile-defect-datasets. in MTD_DIR; never committed), on the CPU,
# with no pretrained weights:
#   1. creates .venv-train (Debian's /usr/bin/python3) and installs training/requirements.txt
#   2. splits the tiles by file number n (n % 5 == 0 test, == 1 validation, else train) and
#      caches them stretched to 256x256 in RUN/data
# METHOD=reference (the default, version 2.0.0, about 2 minutes): training/mtd_ref.py builds the
# bank of reference tiles (fixed local features of the 581 defect-free train tiles) and exports
# it with the F1-optimal validation thresholds as metadata; nothing is trained.
# METHOD=unet (version 1.0.0, resumable, hours):
#   3. trains the U-Net on synthetic anomalies pasted on the defect-free train tiles, until
#      ITERS iterations or MINUTES of wall time (whichever comes first; the learning rate
#      anneals to either), checkpoints every EVAL_EVERY iterations (RUN/last.pt, RUN/best.pt:
#      best validation mean of image and pixel AUROC)
#   4. exports RUN/best.pt with the F1-optimal validation thresholds as metadata
#
#   MTD_DIR=/path/to/Magnetic-tile-defect-datasets training/retrain_mtd.sh
#
# A RUN made under one SPLIT_BY is refused under the other (training/run_split.sh).
# SPLIT_BY=part keeps the six lighting views of each tile in one split (the default, number,
# is n % 5 of each view's own number, which puts views of one tile in train and test alike).
# Knobs: METHOD (reference), SPLIT_BY (number), ITERS (4000), MINUTES (75), BATCH (12), CROP (160), THREADS (2 for reference, 1 for unet), NICE (5),
# RUN (training/runs/mtd), OUT_MODEL (models/magnetic-tile-anomaly.onnx), RESUME=1.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${MTD_DIR:?set MTD_DIR to a copy of the Magnetic Tile Defect dataset}"
VENV=${VENV:-.venv-train}
NICE=${NICE:-5}
RUN=${RUN:-training/runs/mtd}
OUT_MODEL=${OUT_MODEL:-models/magnetic-tile-anomaly.onnx}
METHOD=${METHOD:-reference}
if [[ $METHOD != reference && $METHOD != unet ]]; then
  echo "retrain_mtd: METHOD must be reference or unet, not '$METHOD'" >&2
  exit 2
fi
SPLIT_BY=${SPLIT_BY:-number}
source training/run_split.sh
check_run_split retrain_mtd "$RUN" "$SPLIT_BY" "$RUN/data/train.npz"

if [[ ! -x $VENV/bin/python ]]; then
  echo "retrain_mtd: creating $VENV"
  /usr/bin/python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, onnx, onnxruntime, cv2" 2>/dev/null; then
  echo "retrain_mtd: installing training/requirements.txt into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r training/requirements.txt
fi
PY=(nice -n "$NICE" "$VENV/bin/python" -W ignore training/mtd.py)
resume=()
[[ ${RESUME:-0} == 1 ]] && resume=(--resume)

"${PY[@]}" data --mtd "$MTD_DIR" --out "$RUN" --split-by "$SPLIT_BY"
if [[ $METHOD == reference ]]; then
  nice -n "$NICE" "$VENV/bin/python" -W ignore training/mtd_ref.py build --out "$RUN" --model "$OUT_MODEL" \
    --threads "${THREADS:-2}"
else
  "${PY[@]}" train --out "$RUN" --iters "${ITERS:-4000}" --minutes "${MINUTES:-75}" --batch "${BATCH:-12}" \
    --crop "${CROP:-160}" --threads "${THREADS:-1}" --eval-every "${EVAL_EVERY:-250}" "${resume[@]}"
  "${PY[@]}" export --out "$RUN" --model "$OUT_MODEL"
fi
echo "retrain_mtd: $OUT_MODEL; figures through the element: MTD_DIR=$MTD_DIR SYNTHETIC=0 scripts/model_card_figures.sh"
