#!/usr/bin/env bash
# The figures of models/surface-defects.md, measured through the GStreamer element: the
# held-out synthetic test split (regenerated from its seed by training/generate.py, which needs
# only numpy and OpenCV) and the bundled videos, replayed with defect-replay (defectdetect,
# conf-threshold 0.25, class-wise NMS 0.45; the videos also with pipelines/policy.toml for
# verdicts). Writes reports under OUT (default out/model-card).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-models/surface-defects.onnx}
OUT=${OUT:-out/model-card}
COUNT=${COUNT:-300}

scripts/setup.sh >/dev/null
cargo build --release --locked --quiet
mkdir -p "$OUT"
if [[ ! -d $OUT/test-split/images ]]; then
  echo "figures: generating the held-out test split ($COUNT images)"
  .venv/bin/python training/generate.py --split test --count "$COUNT" --out "$OUT/test-split"
fi
echo "== held-out test split through defectdetect"
target/release/defect-replay --model "$MODEL" --images "$OUT/test-split/images" --truth "$OUT/test-split/labels" \
  --threads 2 --out "$OUT/test-split-report"
echo "== held-out test split at conf 0.01: AP over the whole curve, per-class thresholds for recall 0.90"
target/release/defect-replay --model "$MODEL" --images "$OUT/test-split/images" --truth "$OUT/test-split/labels" \
  --threads 2 --conf 0.01 --sweep-recall 0.9 --out "$OUT/test-split-sweep"
for video in tests/data/*.mp4; do
  name=$(basename "$video" .mp4)
  echo "== $video through defectdetect (conf 0.25, no policy: detection figures)"
  target/release/defect-replay --model "$MODEL" --video "$video" \
    --truth "tests/data/$name.coco.json" --threads 2 --out "$OUT/$name-detections"
  echo "== $video through defectdetect (policy pipelines/policy.toml)"
  target/release/defect-replay --model "$MODEL" --policy pipelines/policy.toml --video "$video" \
    --truth "tests/data/$name.coco.json" --threads 2 --out "$OUT/$name"
done
