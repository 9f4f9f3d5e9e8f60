#!/usr/bin/env bash
# Called by meson.build: builds the plugin (the workspace's `gst-plugin-defect` package, with the
# engine it depends on; not the tools) with cargo in release mode into the meson build directory
# and copies the shared object to the path meson expects.
set -euo pipefail
output=$1 source_root=$2 build_root=$3
cargo build --release --locked -p gst-plugin-defect --manifest-path "$source_root/Cargo.toml" --target-dir "$build_root/target"
cp "$build_root/target/release/libgstdefect.so" "$output"
