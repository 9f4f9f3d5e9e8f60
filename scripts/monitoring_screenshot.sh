#!/usr/bin/env bash
# Draws docs/monitoring-prometheus.png: the bundled recording through defectdetect and
# defectmetricssink (played LOOPS times, at its frame rate), scraped every second by a Prometheus on 127.0.0.1,
# and its /graph page (two of the dashboard's queries) shot with headless Chromium.
# Needs: the plugin built (cargo build), prometheus, chromium (apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
LOOPS=${LOOPS:-4}
OUT=${OUT:-docs/monitoring-prometheus.png}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metrics_port=$(free_port)
prom_port=$(free_port)
cat > "$work/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: defect
    static_configs: [{targets: ['127.0.0.1:$metrics_port']}]
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn &
pids+=($!)

# One process, the recording played LOOPS times (a multifilesrc-free loop: concat).
inputs=""
for _ in $(seq "$LOOPS"); do inputs+=" filesrc location=tests/data/conveyor_color.mp4 ! decodebin ! videoconvert ! c."; done
GST_PLUGIN_PATH="$PWD/target/debug" gst-launch-1.0 -q concat name=c ! defectdetect model=models/surface-defects.onnx policy=pipelines/policy.toml \
  threads=2 interval=2 frames-per-part=30 ! \
  defectmetricssink source-id=line-1 port="$metrics_port" sync=true $inputs &
gst=$!
pids+=($gst)
wait "$gst"
sleep 3

enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
q0=$(enc 'sum by (verdict) (rate(defect_frames_total{source="line-1"}[10s]))')
q1=$(enc 'sum by (class) (rate(defect_detections_total{source="line-1"}[10s]))')
url="http://127.0.0.1:$prom_port/graph?g0.expr=$q0&g0.tab=0&g0.range_input=1m&g1.expr=$q1&g1.tab=0&g1.range_input=1m"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,1680 \
  --virtual-time-budget=15000 --screenshot="$work/shot.png" "$url" 2>/dev/null
cp "$work/shot.png" "$OUT"
ls -l "$OUT"
