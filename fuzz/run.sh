#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, starting from fuzz/corpus/<target>.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); libFuzzer's instrumentation needs nightly
# features, which RUSTC_BOOTSTRAP=1 unlocks on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-60}
mkdir -p target  # logs go here; cargo fuzz makes it only on its first build
export RUSTC_BOOTSTRAP=1
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/../.ort/libonnxruntime.so}
for target in decode policy model_meta mqtt; do
  mkdir -p "corpus/$target"
  echo "== fuzzing $target for ${SECONDS_EACH}s"
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 > "target/$target.log" 2>&1 || { tail -n 60 "target/$target.log"; exit 1; }
  grep -E "^Done" "target/$target.log"
done
echo "fuzz: every target ran ${SECONDS_EACH}s without a crash"
