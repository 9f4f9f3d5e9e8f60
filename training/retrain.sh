#!/usr/bin/env bash
# One-command retraining recipe for models/surface-defects.onnx (2.x: real NEU-DET steel +
# synthetic surfaces), on the CPU, resumable:
#   1. creates .venv-train (Debian's /usr/bin/python3) and installs training/requirements.txt
#   2. generates the synthetic data set (training/data/{train,val,test}, seeded)
#   3. converts NEU-DET (NEU_DET_DIR, Pascal VOC layout) into training/data/neu/{train,val,test}
#      (split by file number n: n % 10 == 0 test, == 5 validation, else train; training/neu_det.py)
#   4. stage 1, pretraining on the synthetic data only (PRETRAIN_MINUTES), unless INIT_ONNX names
#      an exported model to start from (training/init_from_onnx.py; the 2.0.0 model started from
#      the 1.0.0 model, which is this stage's result: `git show 81a1eb0:models/surface-defects.onnx`)
#   5. stage 2, training on NEU-DET train + synthetic (MINUTES; checkpoints chosen on the NEU-DET
#      validation split, never on the test split)
#   6. export to ONNX (checked against PyTorch with onnxruntime) as OUT_MODEL
#   7. evaluates it on the held-out synthetic test split (training/evaluate.py, onnxruntime);
#      the NEU-DET figures come from scripts/model_card_figures.sh, through the plugin
#   8. re-renders the test videos in tests/data (needs gst-launch-1.0 with x264enc; SKIP_VIDEOS=1)
#
# Environment knobs: NEU_DET_DIR (required), MINUTES (240) or ITERS (2.0.0: 7000), FINETUNE_ITERS
# (0; 2.0.0: 3000), PRETRAIN_MINUTES (65), INIT_ONNX,
# NICE (10), RUN (training/runs/neu), TRAIN_COUNT (5000), SKIP_DATA=1 (keep training/data),
# RESUME=1 (continue RUN/last.pt after an interruption), SKIP_VIDEOS=1, OUT_MODEL.
#
# Get NEU-DET, e.g. from the public copy in siddhartamukherjee/NEU-DET-Steel-Surface-Defect-Detection
# (folders IMAGES/, ANNOTATIONS/, Validation_Images/, Validation_Annotations/):
#   git clone https://github.com/siddhartamukherjee/NEU-DET-Steel-Surface-Defect-Detection neu
#   NEU_DET_DIR=neu training/retrain.sh
# The images and XML are never committed here (the database's terms are its authors').
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv-train}
MINUTES=${MINUTES:-240}
PRETRAIN_MINUTES=${PRETRAIN_MINUTES:-65}
NICE=${NICE:-10}
RUN=${RUN:-training/runs/neu}
TRAIN_COUNT=${TRAIN_COUNT:-5000}
OUT_MODEL=${OUT_MODEL:-models/surface-defects.onnx}
: "${NEU_DET_DIR:?set NEU_DET_DIR to a folder holding NEU-DET (images + Pascal VOC XML); see the header of this script}"

if [[ ! -x $VENV/bin/python ]]; then
  echo "retrain: creating $VENV"
  /usr/bin/python3 -m venv "$VENV"
fi
echo "retrain: installing training/requirements.txt into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r training/requirements.txt

PY=(nice -n "$NICE" "$VENV/bin/python")

if [[ ${SKIP_DATA:-0} != 1 ]]; then
  echo "retrain: generating data in training/data"
  rm -rf training/data/train training/data/val training/data/test
  half=$((TRAIN_COUNT / 2))
  "${PY[@]}" training/generate.py --split train --count "$half" --out training/data/train & p1=$!
  "${PY[@]}" training/generate.py --split train --start "$half" --count $((TRAIN_COUNT - half)) \
    --out training/data/train & p2=$!
  wait "$p1"; wait "$p2"
  "${PY[@]}" training/generate.py --split val --count 200 --out training/data/val
  "${PY[@]}" training/generate.py --split test --count 300 --out training/data/test
fi
echo "retrain: converting NEU-DET from $NEU_DET_DIR"
"${PY[@]}" training/neu_det.py --src "$NEU_DET_DIR" --out training/data/neu

mkdir -p "$RUN"
resume=()
[[ ${RESUME:-0} == 1 && -f $RUN/last.pt ]] && resume=(--resume)
if ((${#resume[@]} == 0)); then
  if [[ -n ${INIT_ONNX:-} ]]; then
    echo "retrain: stage 1 taken from $INIT_ONNX"
    "${PY[@]}" -W ignore training/init_from_onnx.py --onnx "$INIT_ONNX" --out "$RUN/init.pt"
  else
    echo "retrain: stage 1, synthetic pretraining for $PRETRAIN_MINUTES minutes"
    pre=${RUN}-pretrain
    pre_resume=()
    [[ ${RESUME:-0} == 1 && -f $pre/last.pt ]] && pre_resume=(--resume)
    "${PY[@]}" -W ignore training/train.py --data training/data --out "$pre" --minutes "$PRETRAIN_MINUTES" \
      --batch 16 "${pre_resume[@]}"
    cp "$pre/best.pt" "$RUN/init.pt" 2>/dev/null || cp "$pre/last.pt" "$RUN/init.pt"
  fi
fi

echo "retrain: stage 2, NEU-DET + synthetic for $MINUTES minutes into $RUN"
"${PY[@]}" -W ignore training/train.py --data training/data --neu training/data/neu --init "$RUN/init.pt" \
  --out "$RUN" --minutes "$MINUTES" --iters "${ITERS:-0}" --val-every 10 "${resume[@]}"

ckpt=$RUN/best.pt
[[ -f $ckpt ]] || ckpt=$RUN/last.pt
FINETUNE_ITERS=${FINETUNE_ITERS:-0}
if ((FINETUNE_ITERS > 0)); then
  # Stage 2b: from stage 2's best checkpoint, more NEU-DET per batch (75 %) at half the learning
  # rate. 2.0.0: 3,000-iteration schedule, stopped at 2,560, best (NEU-DET validation) at 2,485.
  ft=${RUN}-ft
  mkdir -p "$ft"
  ft_resume=()
  [[ ${RESUME:-0} == 1 && -f $ft/last.pt ]] && ft_resume=(--resume)
  echo "retrain: stage 2b, $FINETUNE_ITERS iterations at 75 % NEU-DET into $ft"
  "${PY[@]}" -W ignore training/train.py --data training/data --neu training/data/neu --init "$ckpt" \
    --neu-frac 0.75 --lr 1e-3 --iters "$FINETUNE_ITERS" --out "$ft" --val-every 10 "${ft_resume[@]}"
  [[ -f $ft/best.pt ]] && ckpt=$ft/best.pt
fi
echo "retrain: exporting $ckpt to $OUT_MODEL"
"${PY[@]}" -W ignore training/export.py --ckpt "$ckpt" --out "$OUT_MODEL"

echo "retrain: evaluating on the held-out synthetic test split"
"${PY[@]}" training/evaluate.py --model "$OUT_MODEL" --data training/data/test --bench 200 \
  --json "$RUN/test_metrics.json"

if [[ ${SKIP_VIDEOS:-0} != 1 ]]; then
  echo "retrain: rendering tests/data videos"
  "${PY[@]}" training/make_videos.py --out tests/data
fi
echo "retrain: done; measure the card's figures with NEU_DET_DIR=$NEU_DET_DIR scripts/model_card_figures.sh"
