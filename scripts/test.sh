#!/usr/bin/env bash
# The project's one test command: installs what is missing (scripts/setup.sh --tests: Debian packages, the pinned
# ONNX Runtime wheel in .venv, the OpenVINO-enabled one in .venv-ov), checks formatting
# (cargo fmt) and lints (clippy, warnings are errors), builds the documentation site (mdbook,
# installed into .cache/mdbook when missing) and checks its links, builds the plugin, checks
# gst-inspect-1.0 sees it, then runs
# every Rust test (unit, Harness, pipelines, parity with the numpy reference) and the
# Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --tests
# CI builds once: incremental compilation state (gigabytes under target/) buys it nothing.
[[ -n "${CI:-}" ]] && export CARGO_INCREMENTAL=0
echo "test: $(df -h --output=avail . | tail -1 | tr -d ' ') free on the disk before building"
# A full disk shows up as a compiler crash ("IO failure on output stream"); say it first.
if (( $(df -k --output=avail . | tail -1) < 4 * 1024 * 1024 )) && [[ ! -d target/debug/deps ]]; then
  echo "test: warning: less than 4 GB free; a first build needs about 3.5 GB under target/" >&2
fi
command -v cargo >/dev/null || { echo "test: cargo not found; install Rust 1.95 (rustup)" >&2; exit 1; }

# mdBook for the documentation step below, a test-only tool (the demo does not need it): the
# pinned version, compiled from crates.io into the git-ignored .cache/mdbook once (a few minutes;
# without the `serve` and `watch` features, which building the site does not use).
MDBOOK_VERSION=0.5.4
MDBOOK=.cache/mdbook/bin/mdbook
if [[ "$("$MDBOOK" --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]]; then
  echo "test: installing mdbook $MDBOOK_VERSION into .cache/mdbook"
  cargo install mdbook --locked --version "$MDBOOK_VERSION" --no-default-features --features search \
    --root .cache/mdbook
fi

echo "== format and lints"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  command -v rustup >/dev/null || { echo "test: cargo fmt or clippy missing and no rustup to add them" >&2; exit 1; }
  rustup component add rustfmt clippy
fi
cargo fmt --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== documentation: the site (mdbook build into target/book) and its internal links"
book=$("$MDBOOK" build 2>&1) || { echo "$book" >&2; echo "test: mdbook build failed" >&2; exit 1; }
echo "$book"
if grep -q "WARN" <<<"$book"; then echo "test: mdbook warned about the pages (above)" >&2; exit 1; fi
python3 scripts/check_doc_links.py

echo "== build"
cargo build --workspace --all-targets --locked

echo "== gst-inspect-1.0"
inspect=$(GST_PLUGIN_PATH="$PWD/target/debug" gst-inspect-1.0 defectdetect)
for property in model labels conf-threshold iou-threshold max-detections layout execution-provider threads spin openvino-device precision ort-library policy shadow-mode frames-per-part batch-size batch-timeout-ms batched-frames; do
  grep -q "^  $property " <<<"$inspect" || { echo "test: gst-inspect-1.0 lacks property $property" >&2; exit 1; }
done
echo "defectdetect and its properties are visible to gst-inspect-1.0"

# --- monitoring (docs/monitoring.md): the Prometheus alert rules and their unit tests ---
echo "== alert rules (promtool)"
promtool check rules monitoring/alerts.yml
promtool test rules monitoring/alerts_test.yml
# --- end monitoring ---

echo "== cargo test"
cargo test --workspace --all-targets --locked --no-fail-fast

echo "== python tests"
.venv/bin/python -m pytest -q scripts tests/python
echo "test: target/ holds $(du -sh target | cut -f1); $(df -h --output=avail . | tail -1 | tr -d ' ') free on the disk"
