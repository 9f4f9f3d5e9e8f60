#!/usr/bin/env bash
# Installs what the plugin needs, idempotently (a second run installs nothing).
#
#   scripts/setup.sh           the demo's needs only (scripts/demo.sh): Debian packages to build
#                              and run the plugin on a recorded video (GStreamer 1.22 dev files,
#                              tools, the base/good/bad/libav plugins, Python GI), a .venv with the
#                              pinned ONNX Runtime wheel (scripts/requirements-demo.txt) and a
#                              stable link to libonnxruntime under .ort/ which the plugin finds
#                              by default.
#   scripts/setup.sh --tests   that, plus what the tests and benchmarks add (scripts/test.sh runs
#                              this): Debian packages for the protocol and camera tests, the test
#                              and tool packages in .venv (scripts/requirements.txt), and the
#                              OpenVINO-enabled ONNX Runtime and OpenVINO in .venv-ov
#                              (SKIP_OPENVINO=1 leaves those out).
#   --list                     prints what the chosen set-up installs, and installs nothing.
# Training needs (torch) are NOT installed here: see training/retrain.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

TESTS=0
LIST=0
for arg in "$@"; do
  case "$arg" in
    --tests) TESTS=1 ;;
    --list) LIST=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "setup: unknown argument $arg (expected --tests or --list)" >&2; exit 2 ;;
  esac
done

ORT_VERSION=1.32.0
# The demo: build the plugin, decode the bundled H.264 recording (qtdemux: good, h264parse: bad,
# avdec_h264: libav), encode the annotated WebM (vp8enc, webmmux: good), scripts/demo_line.py
# (Debian's python3 with PyGObject).
APT_PACKAGES=(
  pkg-config build-essential
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-libav
  python3 python3-venv python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
)
# What the tests and benchmarks add.
TEST_APT_PACKAGES=(
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
TEST_APT_PACKAGES+=(prometheus)
# --- end test-only: monitoring ---
((TESTS)) && APT_PACKAGES+=("${TEST_APT_PACKAGES[@]}")
OV_ORT_VERSION=1.24.1
OV_VERSION=2026.4.1

if ((LIST)); then
  echo "Debian packages: ${APT_PACKAGES[*]}"
  reqs=(scripts/requirements-demo.txt)
  ((TESTS)) && reqs+=(scripts/requirements.txt)
  echo ".venv (Python): $(grep -hv '^\s*\(#\|-r\|$\)' "${reqs[@]}" | tr '\n' ' ')"
  if ((TESTS)) && [[ "${SKIP_OPENVINO:-0}" != 1 ]]; then
    echo ".venv-ov (Python): onnxruntime-openvino==$OV_ORT_VERSION openvino==$OV_VERSION"
  fi
  exit 0
fi

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
if ((TESTS)); then
  requirements=scripts/requirements.txt
  modules="onnxruntime, onnx, numpy, cv2, pytest, jsonschema, pycocotools, pymodbus, supervision"
else
  requirements=scripts/requirements-demo.txt
  modules="onnxruntime, numpy"
fi
if ! .venv/bin/python -c "import $modules; assert onnxruntime.__version__ == '$ORT_VERSION'" 2>/dev/null; then
  echo "setup: installing Python packages into .venv ($requirements)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
fi

lib=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* 2>/dev/null | head -n1)
[[ -n "$lib" ]] || { echo "setup: libonnxruntime not found in the onnxruntime wheel" >&2; exit 1; }
mkdir -p .ort
ln -sf "$PWD/$lib" .ort/libonnxruntime.so
echo "setup: ONNX Runtime $ORT_VERSION at .ort/libonnxruntime.so"

# The OpenVINO-enabled ONNX Runtime for execution-provider=openvino, in a venv of its own: the
# onnxruntime-openvino wheel installs under the same module name as onnxruntime and lags it.
# .ort-openvino links the wheel's library folder (the OpenVINO provider and runtime libraries
# are found next to libonnxruntime); the plugin looks there for that provider. Only with
# --tests (the demo runs the CPU provider); SKIP_OPENVINO=1 leaves it out there too (84 MB
# download); the plain CPU path never needs it.
# The `openvino` package (the OpenVINO runtime's Python API, DL Streamer's engine) is there too,
# for the raw-OpenVINO row of scripts/bench_backends.py (which runs it in a process of its own).
if ((TESTS)) && [[ "${SKIP_OPENVINO:-0}" != 1 ]]; then
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
