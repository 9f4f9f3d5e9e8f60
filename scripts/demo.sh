#!/usr/bin/env bash
# The demo: the bundled defect model and policy on the bundled recorded conveyor video.
# Writes out/verdicts.ndjson (one record per frame, one per part), out/annotated.webm
# (boxes coloured by severity, verdict banner), and prints a summary.
set -euo pipefail
cd "$(dirname "$0")/.."

VIDEO=${VIDEO:-tests/data/conveyor_color.mp4}
MODEL=${MODEL:-models/surface-defects.onnx}
POLICY=${POLICY:-pipelines/policy.toml}
OUT=${OUT:-out}

scripts/setup.sh
echo "demo: building the plugin (release)"
cargo build --release --locked --quiet
export GST_PLUGIN_PATH="$PWD/target/release"
mkdir -p "$OUT"

echo "demo: $MODEL with $POLICY on $VIDEO"
gst-launch-1.0 -e \
  filesrc location="$VIDEO" ! decodebin ! videoconvert ! video/x-raw,format=I420 ! \
  progressreport update-freq=2 ! \
  defectdetect model="$MODEL" policy="$POLICY" ! tee name=t \
  t. ! queue ! defectmetaconvert source-id=demo-line ! filesink location="$OUT/verdicts.ndjson" \
  t. ! queue ! defectoverlay ! videoconvert ! vp8enc deadline=1 target-bitrate=4000000 ! webmmux ! \
       filesink location="$OUT/annotated.webm"

.venv/bin/python - "$OUT/verdicts.ndjson" <<'PY'
import collections, json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
frames = [r for r in records if r["type"] == "frame"]
parts = [r for r in records if r["type"] == "part"]
verdicts = collections.Counter(r["verdict"] for r in frames)
classes = collections.Counter(d["class_name"] for r in frames for d in r["detections"])
latency = sorted(r["latency_ms"]["total"] for r in frames if r["latency_ms"])
print(f"demo: {len(frames)} frames: " + ", ".join(f"{v} {verdicts[v]}" for v in ("PASS", "REVIEW", "FAIL", "UNKNOWN") if v in verdicts or v != "UNKNOWN"))
if parts:
    print(f"demo: {len(parts)} parts: " + ", ".join(f"{p['part_id']}={p['verdict']}" for p in parts))
print("demo: detections by class: " + (", ".join(f"{k} {n}" for k, n in sorted(classes.items())) or "none"))
if latency:
    print(f"demo: defectdetect time per frame: median {latency[len(latency)//2]:.1f} ms")
PY
echo "demo: wrote $OUT/verdicts.ndjson and $OUT/annotated.webm"
