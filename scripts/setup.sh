#!/usr/bin/env bash
# Installs what building, running and testing the plugin needs, idempotently:
# Debian packages (GStreamer 1.22 dev files, tools, plugins, Python GI), a Python
# virtual environment in .venv with the pinned ONNX Runtime wheel, and a stable
# link to libonnxruntime under .ort/ which the plugin finds by default.
# Training needs (torch) are NOT installed here: see training/retrain.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.32.0
APT_PACKAGES=(
  pkg-config build-essential
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-libav
  python3 python3-venv python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  meson ninja-build mosquitto
  # certificates for the TLS tests of defectmqttsink (tests/mqtt.rs)
  openssl
  # camera sources of pipelines/ and their stand-ins in tests/python/test_pipelines.py:
  # aravissrc (in libaravis-0.8-0) and the fake GigE Vision camera (aravis-tools),
  # an RTSP server for Python (gst-rtsp-server), `ip` to see which interface reaches a GigE
  # camera (no network namespace is needed: pipelines/README.md), x264enc for the annotated
  # recordings of pipelines/ (gstreamer1.0-plugins-ugly)
  libaravis-0.8-0 aravis-tools gir1.2-gst-rtsp-server-1.0 iproute2 gstreamer1.0-plugins-ugly
)
# --- test-only: monitoring (docs/monitoring.md) ---
# Prometheus (server and promtool) for tests/metrics.rs, which scrapes defectmetricssink with a
# real server, and for `promtool check rules` / `promtool test rules` of monitoring/alerts.yml.
APT_PACKAGES+=(prometheus)
# --- end test-only: monitoring ---

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's interpreter, so that the apt-installed PyGObject is visible in the venv.
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import onnxruntime, onnx, numpy, cv2, pytest, jsonschema, pycocotools, pymodbus; assert onnxruntime.__version__ == '$ORT_VERSION'" 2>/dev/null; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/requirements.txt
fi

lib=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* 2>/dev/null | head -n1)
[[ -n "$lib" ]] || { echo "setup: libonnxruntime not found in the onnxruntime wheel" >&2; exit 1; }
mkdir -p .ort
ln -sf "$PWD/$lib" .ort/libonnxruntime.so
echo "setup: ONNX Runtime $ORT_VERSION at .ort/libonnxruntime.so"

# The OpenVINO-enabled ONNX Runtime for execution-provider=openvino, in a venv of its own: the
# onnxruntime-openvino wheel installs under the same module name as onnxruntime and lags it.
# .ort-openvino links the wheel's library folder (the OpenVINO provider and runtime libraries
# are found next to libonnxruntime); the plugin looks there for that provider. SKIP_OPENVINO=1
# leaves it out (84 MB download); the plain CPU path never needs it.
# The `openvino` package (the OpenVINO runtime's Python API, DL Streamer's engine) is there too,
# for the raw-OpenVINO row of scripts/bench_backends.py (which runs it in a process of its own).
OV_ORT_VERSION=1.24.1
OV_VERSION=2026.4.1
if [[ "${SKIP_OPENVINO:-0}" != 1 ]]; then
  if ! .venv-ov/bin/python -c "import onnxruntime; assert onnxruntime.__version__ == '$OV_ORT_VERSION'" 2>/dev/null; then
    echo "setup: installing onnxruntime-openvino $OV_ORT_VERSION into .venv-ov"
    [[ -x .venv-ov/bin/python ]] || /usr/bin/python3 -m venv .venv-ov
    .venv-ov/bin/python -m pip install -q --disable-pip-version-check "onnxruntime-openvino==$OV_ORT_VERSION"
  fi
  if ! .venv-ov/bin/python -c "from importlib.metadata import version; assert version('openvino') == '$OV_VERSION'" 2>/dev/null; then
    echo "setup: installing openvino $OV_VERSION into .venv-ov"
    .venv-ov/bin/python -m pip install -q --disable-pip-version-check "openvino==$OV_VERSION"
  fi
  capi=$(ls -d .venv-ov/lib/python3*/site-packages/onnxruntime/capi 2>/dev/null | head -n1)
  ovlib=$(ls "$capi"/libonnxruntime.so.1* 2>/dev/null | head -n1)
  [[ -n "$ovlib" ]] || { echo "setup: libonnxruntime not found in the onnxruntime-openvino wheel" >&2; exit 1; }
  ln -sf "$(basename "$ovlib")" "$capi/libonnxruntime.so"
  ln -sfn "$PWD/$capi" .ort-openvino
  echo "setup: ONNX Runtime $OV_ORT_VERSION with OpenVINO at .ort-openvino/libonnxruntime.so"
fi
