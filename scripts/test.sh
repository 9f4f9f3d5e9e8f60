#!/usr/bin/env bash
# The project's one test command: installs what is missing (scripts/setup.sh --tests: Debian packages, the pinned
# ONNX Runtime wheel in .venv, the OpenVINO-enabled one in .venv-ov), checks formatting
# (cargo fmt) and lints (clippy, warnings are errors), builds the plugin, checks
# gst-inspect-1.0 sees it, then runs
# every Rust test (unit, Harness, pipelines, parity with the numpy reference) and the
# Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --tests
command -v cargo >/dev/null || { echo "test: cargo not found; install Rust 1.95 (rustup)" >&2; exit 1; }

echo "== format and lints"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  command -v rustup >/dev/null || { echo "test: cargo fmt or clippy missing and no rustup to add them" >&2; exit 1; }
  rustup component add rustfmt clippy
fi
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings

echo "== build"
cargo build --all-targets --locked

echo "== gst-inspect-1.0"
inspect=$(GST_PLUGIN_PATH="$PWD/target/debug" gst-inspect-1.0 defectdetect)
for property in model labels conf-threshold iou-threshold max-detections layout execution-provider threads spin openvino-device precision ort-library policy shadow-mode frames-per-part batch-size batch-timeout-ms batched-frames; do
  grep -q "^  $property " <<<"$inspect" || { echo "test: gst-inspect-1.0 lacks property $property" >&2; exit 1; }
done
echo "defectdetect and its properties are visible to gst-inspect-1.0"

echo "== cargo test"
cargo test --all-targets --locked

echo "== python tests"
.venv/bin/python -m pytest -q scripts tests/python
