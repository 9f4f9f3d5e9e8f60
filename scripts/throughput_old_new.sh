#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Throughput of `defectdetect` before and after a change, measured by the existing benchmark
# (benches/throughput.rs) of each commit, in one session on one machine:
#
#   scripts/throughput_old_new.sh OLD_COMMIT [ROUNDS]
#
# 1. OLD_COMMIT is checked out in a worktree of its own (OLD_DIR, default
#    ../<this worktree's name>-old-<commit>) with a target directory of its own (a hard-linked
#    copy of this one's, so that only what changed is built again);
# 2. both benchmarks are built (release, nice 19);
# 3. the two binaries run alternately, old, new, old, new, ... ROUNDS (default 3) each, under
#    nice 19; each run prints, per frame size and format, defectdetect's frames per second
#    beside the raw limit (ONNX Runtime session runs on a ready tensor) measured in the same
#    run, in alternating blocks;
# 4. per case, the median over the rounds of old's and new's pipeline / raw-limit ratio, and
#    new / old of those: the ratio of ratios does not depend on how fast the machine was in
#    either run.
#
# BENCH_SECONDS (default 2) sets the length of each measurement; the steady-state part of the
# benchmark is cut to BENCH_STEADY_FRAMES (default 200) frames, its figures are not compared.
# Logs stay in LOG_DIR (default target/throughput-old-new).
set -euo pipefail

old_commit=${1:?usage: $0 OLD_COMMIT [ROUNDS]}
rounds=${2:-3}
root=$(git rev-parse --show-toplevel)
cd "$root"
new_target=${CARGO_TARGET_DIR:-$root/target}
short=$(git rev-parse --short "$old_commit")
old_dir=${OLD_DIR:-$(dirname "$root")/$(basename "$root")-old-$short}
log_dir=${LOG_DIR:-$new_target/throughput-old-new}
mkdir -p "$log_dir"

if [ ! -d "$old_dir" ]; then
    git worktree add --detach "$old_dir" "$old_commit"
fi
if [ ! -d "$old_dir/target" ] && [ -d "$new_target" ]; then
    cp -al "$new_target" "$old_dir/target"
    # A hard-linked lock file would be shared with this target: each gets its own.
    find "$old_dir/target" -maxdepth 2 -name .cargo-lock -exec sh -c 'rm "$1" && touch "$1"' _ {} \;
fi
for link in .venv .ort; do
    if [ -e "$root/$link" ] && [ ! -e "$old_dir/$link" ]; then
        ln -s "$(readlink -f "$root/$link")" "$old_dir/$link"
    fi
done

# The benchmark's executable, built in $1 with target directory $2.
bench_binary() {
    (cd "$1" && CARGO_TARGET_DIR=$2 nice -n 19 cargo bench --bench throughput --no-run \
        --message-format=json 2>/dev/null) |
        python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "throughput" and m.get("executable"):
        print(m["executable"])
'
}
# The old commit does not change: a benchmark built there before is reused (cargo would build
# the old library again whenever the repository's refs move, as its version names the commit).
old_bin=$(find "$old_dir/target/release/deps" -maxdepth 1 -type f -executable -name 'throughput-*' \
    -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n 1 | cut -d' ' -f2-)
[ -n "$old_bin" ] || old_bin=$(bench_binary "$old_dir" "$old_dir/target")
new_bin=$(bench_binary "$root" "$new_target")
echo "old ($short): $old_bin"
echo "new ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes')): $new_bin"

model=${BENCH_MODEL:-}
if [ -z "$model" ]; then
    model=$root/models/surface-defects.onnx
    [ -f "$model" ] || model=$root/models/test/squares_v8.onnx
fi
export BENCH_MODEL=$model
export BENCH_SECONDS=${BENCH_SECONDS:-2}
export BENCH_STEADY_FRAMES=${BENCH_STEADY_FRAMES:-200}

for round in $(seq 1 "$rounds"); do
    for side in old new; do
        if [ "$side" = old ]; then bin=$old_bin; dir=$old_dir; else bin=$new_bin; dir=$root; fi
        echo "round $round: $side"
        (cd "$dir" && nice -n 19 "$bin" --bench) >"$log_dir/$side-$round.log" 2>&1
    done
done

python3 - "$log_dir" "$rounds" <<'EOF'
import re, statistics, sys
log_dir, rounds = sys.argv[1], int(sys.argv[2])
line = re.compile(
    r"^\s+(\d+x\d+) (\w+)\s+([\d.]+) fps, raw limit\s+([\d.]+) fps: ([\d.]+) of the raw limit")
ratios = {}
for side in ("old", "new"):
    for r in range(1, rounds + 1):
        text = open(f"{log_dir}/{side}-{r}.log").read()
        if r == 1 and side == "new":
            print(next((l for l in text.splitlines() if l.startswith("CPU:")), "CPU: ?"))
        for m in map(line.match, text.splitlines()):
            if m:
                case = f"{m.group(1)} {m.group(2)}"
                ratios.setdefault(case, {"old": [], "new": []})[side].append(
                    (float(m.group(3)), float(m.group(4)), float(m.group(5))))
print(f"{'case':<16} {'old fps/raw':>22} {'new fps/raw':>22} {'new/old':>8}")
for case, sides in ratios.items():
    med = {s: statistics.median(x[2] for x in v) for s, v in sides.items() if v}
    if len(med) < 2:
        continue
    show = lambda s: " ".join(f"{x[2]:.3f}" for x in sides[s])
    print(f"{case:<16} {show('old'):>22} {show('new'):>22} {med['new'] / med['old']:8.3f}")
print(f"(each column: the pipeline / raw-limit ratio of each round; new/old: ratio of the medians;"
      f" {rounds} rounds, BENCH_SECONDS as set)")
EOF
