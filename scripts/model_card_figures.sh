#!/usr/bin/env bash
# The figures of models/surface-defects.md, measured through the GStreamer element: the
# held-out synthetic test split (regenerated from its seed by training/generate.py, which needs
# only numpy and OpenCV) and the bundled videos, replayed with defect-replay (defectdetect,
# conf-threshold 0.25, class-wise NMS 0.45; the videos also with pipelines/policy.toml for
# verdicts). Writes reports under OUT (default out/model-card).
# With NEU_DET_DIR (a copy of NEU-DET, Pascal VOC layout) it also measures every NEU-DET figure of
# the card (test split, escapes, perturbations) and writes OUT/neu/summary.md, and the figures of
# models/neu-classifier.md through the element (OUT/neu/classifier-*.json); SYNTHETIC=0 skips
# the synthetic split and the videos.
# With MTD_DIR (a copy of the Magnetic Tile Defect dataset) it measures models/magnetic-tile-anomaly.md
# (MTD_MODEL, made by `MTD_DIR=... training/retrain_mtd.sh`) and writes OUT/mtd/summary.md, and,
# where MTD_SEG_MODEL is, models/magnetic-tile-seg.md through the element (OUT/mtd-seg/figures.json).
# Another NEU-DET detector: MODEL=models/neu-detector.onnx SYNTHETIC=0 CLASSIFIER=0
# BASE_MODEL=models/surface-defects.onnx (latency beside it); BIN=<folder> uses prebuilt binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-models/surface-defects.onnx}
OUT=${OUT:-out/model-card}
COUNT=${COUNT:-300}
# PROFILE=dev reuses the test build (target/debug, optimised at level 1; inference is
# onnxruntime's either way), release is the default.
PROFILE=${PROFILE:-release}
# BIN names a folder of already-built binaries (defect-replay, libgstdefect.so), e.g. another
# checkout's target/debug: nothing is built then.
if [[ -n ${BIN:-} ]]; then
  PREBUILT=1
else
  PREBUILT=0
  BIN=target/$([[ $PROFILE == dev ]] && echo debug || echo "$PROFILE")
  scripts/setup.sh --tests >/dev/null
  cargo build --profile "$PROFILE" --locked --quiet --bin defect-replay
fi
mkdir -p "$OUT"
if [[ ${SYNTHETIC:-1} == 1 ]]; then
if [[ ! -d $OUT/test-split/images ]]; then
  echo "figures: generating the held-out test split ($COUNT images)"
  .venv/bin/python training/generate.py --split test --count "$COUNT" --out "$OUT/test-split"
fi
echo "== held-out test split through defectdetect"
"$BIN/defect-replay" --overwrite --model "$MODEL" --images "$OUT/test-split/images" --truth "$OUT/test-split/labels" \
  --threads 2 --out "$OUT/test-split-report"
echo "== held-out test split at conf 0.01: AP over the whole curve, per-class thresholds for recall 0.90"
"$BIN/defect-replay" --overwrite --model "$MODEL" --images "$OUT/test-split/images" --truth "$OUT/test-split/labels" \
  --threads 2 --conf 0.01 --sweep-recall 0.9 --out "$OUT/test-split-sweep"
for video in tests/data/*.mp4; do
  name=$(basename "$video" .mp4)
  echo "== $video through defectdetect (conf 0.25, no policy: detection figures)"
  "$BIN/defect-replay" --overwrite --model "$MODEL" --video "$video" \
    --truth "tests/data/$name.coco.json" --threads 2 --out "$OUT/$name-detections"
  echo "== $video through defectdetect (policy pipelines/policy.toml)"
  "$BIN/defect-replay" --overwrite --model "$MODEL" --policy pipelines/policy.toml --video "$video" \
    --truth "tests/data/$name.coco.json" --threads 2 --out "$OUT/$name"
done
fi

# ---- NEU-DET (real steel), when NEU_DET_DIR names a copy of it (Pascal VOC layout; never committed)
if [[ -n ${NEU_DET_DIR:-} ]]; then
  NEU=$OUT/neu
  echo "== NEU-DET: converting $NEU_DET_DIR (split by file number: n % 10 == 0 test, == 5 validation)"
  .venv/bin/python training/neu_det.py --src "$NEU_DET_DIR" --out "$NEU/data"
  # pipelines/policy.toml's thresholds and severities; its region and ignore mask are pixels of the
  # 1280x720 belt video and would leave every 200x200 image outside, so they are dropped here.
  .venv/bin/python - pipelines/policy.toml "$NEU/policy-no-region.toml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"(?ms)^\[region\]\n.*?(?=^\[|\Z)", "", text)
text = re.sub(r"(?ms)^\[\[ignore\]\]\n.*?(?=^\[|\Z)", "", text)
open(sys.argv[2], "w").write("# pipelines/policy.toml without [region] and [[ignore]] (frame pixels of the belt video)\n" + text)
PY
  replay() { "$BIN/defect-replay" --overwrite --model "$MODEL" --threads 2 "$@"; }
  echo "== NEU-DET test split through defectdetect: precision, recall, F1 at conf 0.25"
  replay --images "$NEU/data/test/images" --truth "$NEU/data/test.coco.json" --out "$NEU/test"
  echo "== NEU-DET test split at conf 0.01: AP@0.5, AP@0.5:0.95, mAP, confusion matrix"
  replay --images "$NEU/data/test/images" --truth "$NEU/data/test.coco.json" --conf 0.01 --out "$NEU/test-ap"
  echo "== NEU-DET test split: where AP@0.5 is lost (AP at IoU 0.1 to 0.7, class-agnostic, the image's class)"
  .venv/bin/python training/neu_gap.py "$NEU/test-ap" --json "$NEU/test-ap/gap.json"
  echo "== NEU-DET test split, verdicts with pipelines/policy.toml's classes"
  replay --images "$NEU/data/test/images" --truth "$NEU/data/test.coco.json" \
    --policy "$NEU/policy-no-region.toml" --out "$NEU/test-policy"
  echo "== NEU-DET validation split: per-class thresholds for recall 0.99 (never the test split)"
  replay --images "$NEU/data/val/images" --truth "$NEU/data/val.coco.json" --conf 0.01 \
    --policy "$NEU/policy-no-region.toml" --sweep-recall 0.99 --out "$NEU/val-sweep"
  echo "== NEU-DET test split, verdicts with the validation-swept policy"
  replay --images "$NEU/data/test/images" --truth "$NEU/data/test.coco.json" --conf 0.01 \
    --policy "$NEU/val-sweep/swept-policy.toml" --out "$NEU/test-swept-policy"
  echo "== NEU-DET test split, perturbed copies (training/neu_perturb.py), mAP@0.5 at conf 0.01"
  .venv/bin/python training/neu_perturb.py --split "$NEU/data/test" --coco "$NEU/data/test.coco.json" \
    --out "$NEU/perturbed"
  for coco in "$NEU"/perturbed/*.coco.json; do
    name=$(basename "$coco" .coco.json)
    echo "-- $name"
    replay --images "$NEU/perturbed/$name/images" --truth "$coco" --conf 0.01 --out "$NEU/perturbed-$name" \
      | grep -E "mAP" || true
  done
  # The window inside 1280x720 as a user runs such a camera: tiles of the model's input size
  # (TILE_SIZE, default the input's shorter side), the element's default overlap.
  TILE_SIZE=${TILE_SIZE:-$(.venv/bin/python -c 'import sys, onnxruntime as o
print(min(o.InferenceSession(sys.argv[1]).get_inputs()[0].shape[2:]))' "$MODEL")}
  echo "-- frame-1280x720 with tile-size=$TILE_SIZE"
  replay --images "$NEU/perturbed/frame-1280x720/images" --truth "$NEU/perturbed/frame-1280x720.coco.json" \
    --conf 0.01 --set "tile-size=$TILE_SIZE" --out "$NEU/perturbed-frame-1280x720-tile-size-$TILE_SIZE" \
    | grep -E "mAP" || true
  if [[ -d $OUT/test-split/images ]]; then
    echo "== false rejects of both policies on the clean images of the synthetic test split (NEU-DET has none)"
    replay --images "$OUT/test-split/images" --truth "$OUT/test-split/labels" \
      --policy "$NEU/policy-no-region.toml" --out "$NEU/synthetic-policy" | grep -E "^frames" || true
    replay --images "$OUT/test-split/images" --truth "$OUT/test-split/labels" --conf 0.01 \
      --policy "$NEU/val-sweep/swept-policy.toml" --out "$NEU/synthetic-swept-policy" | grep -E "^frames" || true
  fi
  # Latency beside 1.0.0 (the synthetic-only model this one started from), or beside BASE_MODEL
  # (e.g. models/surface-defects.onnx when MODEL is another detector), on the 1280x720 frames,
  # each model twice, alternating, so that a busy machine slows both alike.
  base=${BASE_MODEL:-}
  if [[ -z $base ]] && git cat-file -e 81a1eb0:models/surface-defects.onnx 2>/dev/null; then
    git show 81a1eb0:models/surface-defects.onnx > "$NEU/surface-defects-1.0.0.onnx"
    base=$NEU/surface-defects-1.0.0.onnx
  fi
  if [[ -n $base ]]; then
    for round in 1 2; do
      for m in "$base" "$MODEL"; do
        tag=$(basename "$m" .onnx)
        "$BIN/defect-replay" --overwrite --model "$m" --threads 2 --images "$NEU/perturbed/frame-1280x720/images" \
          --truth "$NEU/perturbed/frame-1280x720.coco.json" --out "$NEU/latency-$tag-$round" >/dev/null 2>&1
      done
    done
  fi
  .venv/bin/python scripts/neu_summary.py "$NEU" | tee "$NEU/summary.md"
  # The classifier (models/neu-classifier.md, CLS_MODEL) through the element: the test split as it
  # is, then each image as a 200x200 inspection window at a fixed place (700,300) of a 1280x720
  # frame of clean synthetic steel, classified whole (what the classifier is not for) and with the
  # element's crop set to the window (the supported way).
  CLS_MODEL=${CLS_MODEL:-models/neu-classifier.onnx}
  if [[ ${CLASSIFIER:-1} == 1 ]]; then
  [[ $PREBUILT == 1 ]] || cargo build --profile "$PROFILE" --locked --quiet --lib
  for case in plain:"" window-whole-frame:"--frame 1280x720" window-crop:"--frame 1280x720 --crop"; do
    echo "== NEU-DET test split through the classifier, $case"
    # shellcheck disable=SC2086 # the case's arguments are words
    GST_PLUGIN_PATH="$(realpath "$BIN")" .venv/bin/python training/neu_element_eval.py --neu "$NEU_DET_DIR" \
      --model "$CLS_MODEL" --split test ${case#*:} --json "$NEU/classifier-${case%%:*}.json" | head -n 1
  done
  fi
fi

# ---- Magnetic Tile Defect segmentation (models/magnetic-tile-seg.md), with MTD_DIR, when the
# model (MTD_SEG_MODEL, made by `MTD_DIR=... training/retrain_mtd_seg.sh`, never committed) is there;
# MTD_SPLIT_BY (below) must name the split the model was trained on (its SPLIT_BY)
MTD_SEG_MODEL=${MTD_SEG_MODEL:-models/magnetic-tile-seg.onnx}
if [[ -n ${MTD_DIR:-} && -f $MTD_SEG_MODEL ]]; then
  echo "== MTD segmentation: test split through defectdetect task=segment (mask and box AP, sizes)"
  .venv/bin/python training/mtd_seg_replay.py --mtd "$MTD_DIR" --split-by "${MTD_SPLIT_BY:-number}" --model "$MTD_SEG_MODEL" \
    --replay "$BIN/defect-replay" --out "$OUT/mtd-seg" --json "$OUT/mtd-seg/figures.json"
elif [[ -n ${MTD_DIR:-} ]]; then
  echo "figures: $MTD_SEG_MODEL is missing (MTD_DIR=$MTD_DIR training/retrain_mtd_seg.sh makes it): segmentation skipped"
fi

# ---- Magnetic Tile Defect (real tiles), when MTD_DIR names a copy of it (never committed)
if [[ -n ${MTD_DIR:-} ]]; then
  MTD=$OUT/mtd
  MTD_MODEL=${MTD_MODEL:-models/magnetic-tile-anomaly.onnx}
  if [[ ! -f $MTD_MODEL ]]; then
    echo "figures: $MTD_MODEL is missing; MTD_DIR=$MTD_DIR training/retrain_mtd.sh makes it" >&2
    exit 1
  fi
  echo "== MTD: validation and test sets from $MTD_DIR (file number n: n % 5 == 0 test, == 1 validation)"
  # MTD_SPLIT_BY=part: every lighting view of a tile in one split (the model must be made with
  # SPLIT_BY=part too); number (the default): n % 5 of each view's own number.
  .venv/bin/python training/mtd.py replay --mtd "$MTD_DIR" --split-by "${MTD_SPLIT_BY:-number}" --split val --out "$MTD/val-set"
  .venv/bin/python training/mtd.py replay --mtd "$MTD_DIR" --split-by "${MTD_SPLIT_BY:-number}" --split test --out "$MTD/test-set"
  mreplay() { "$BIN/defect-replay" --model "$MTD_MODEL" --threads 2 --pixel-stride 2 "$@"; }
  echo "== MTD validation split through defectdetect: F1-optimal thresholds (the policy for the test split)"
  mreplay --images "$MTD/val-set/images" --truth "$MTD/val-set/truth.csv" --masks "$MTD/val-set/masks" \
    --sweep --out "$MTD/val"
  echo "== MTD test split through defectdetect with the validation thresholds"
  mreplay --images "$MTD/test-set/images" --truth "$MTD/test-set/truth.csv" --masks "$MTD/test-set/masks" \
    --empty-masks image-only --policy "$MTD/val/swept-policy.toml" --out "$MTD/test"
  .venv/bin/python training/mtd.py summary --report "$MTD/test/report.json" --classes "$MTD/test-set/classes.csv" \
    | tee "$MTD/summary.md"
  # The card's picture: defectoverlay's heat map over a defective test tile (MTD_TILE).
  MTD_TILE=${MTD_TILE:-MT_Blowhole/Imgs/exp2_num_54273.jpg}
  echo "== MTD heat map of $MTD_TILE drawn by defectoverlay -> $MTD/heatmap.png"
  cargo build --profile "$PROFILE" --locked --quiet --lib
  GST_PLUGIN_PATH="$(realpath "$BIN")" gst-launch-1.0 -q filesrc location="$MTD_DIR/$MTD_TILE" ! jpegdec ! videoconvert ! \
    video/x-raw,format=RGB ! imagefreeze num-buffers=1 ! \
    defectdetect model="$MTD_MODEL" policy="$MTD/val/swept-policy.toml" ! defectoverlay show-heatmap=true ! \
    videoconvert ! pngenc compression-level=9 ! filesink location="$MTD/heatmap.png"
fi
