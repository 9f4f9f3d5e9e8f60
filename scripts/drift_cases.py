#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Runs the drift cases through defectdetect and prints the table of detection delays.

Every case goes through a real pipeline (gst-launch-1.0, the plugin from target/<profile>):

  <source> ! videoconvert ! defectdetect model=models/surface-defects.onnx
      policy=pipelines/policy.toml ! defectmetaconvert ! filesink location=<case>.ndjson

and the drift records (`"type": "drift"`) of the NDJSON give the episodes.

- the changed cases (scripts/make_drift_cases.py: dimmed, defocus, dust, product, each from
  frame 450 of the recording looped three times, colour and mono): defectdetect learns its
  baseline from the first 300 frames (one loop, the default learn-frames); the delay is the
  frame of the first episode's start minus the onset;
- the clean runs: each bundled recording looped 10 times (3,000 frames, `concat`), learning
  from its first loop; and the NEU-DET validation images (n % 10 == 5) in a seeded shuffled
  order, looped to 3,000 frames, against a baseline written by
  `defect-replay --baseline-out` from the NEU-DET training images (n % 10 not 0 or 5). A clean
  run must have no episode.

  .venv/bin/python scripts/make_drift_cases.py --out target/drift-cases
  .venv/bin/python scripts/drift_cases.py --cases target/drift-cases [--only dimmed ...]
"""

import argparse
import glob
import json
import os
import random
import re
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
NEU = "/work/data/NEU-DET-Steel-Surface-Defect-Detection"
ONSET = 450
LIMIT = 150


def launch(description, env, timeout):
    started = time.time()
    result = subprocess.run(["gst-launch-1.0", "-q", *description.split()], env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        sys.exit(f"pipeline failed ({result.returncode}): {description}\n{result.stderr[-2000:]}")
    return time.time() - started, result.stderr


def records(path):
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    frames = sum(1 for r in lines if r["type"] == "frame")
    return frames, [r for r in lines if r["type"] == "drift"]


def detect(mono, extra=""):
    caps = "video/x-raw,format=GRAY8 ! " if mono else ""
    return (f"videoconvert ! {caps}defectdetect model={ROOT}/models/surface-defects.onnx "
            f"policy={ROOT}/pipelines/policy.toml threads=2 {extra} ! defectmetaconvert source-id=drift ! ")


def neu_number(path):
    m = re.search(r"_(\d+)\.jpg$", path)
    return int(m.group(1)) if m else None


def neu_folders(work, loops_to):
    """Symlink folders: the training split (baseline), and the shuffled validation split
    looped to `loops_to` frames (never copies of the images)."""
    images = sorted(glob.glob(os.path.join(NEU, "IMAGES", "*.jpg")))
    train = [p for p in images if neu_number(p) % 10 not in (0, 5)]
    val = [p for p in images if neu_number(p) % 10 == 5]
    random.Random(5).shuffle(val)
    train_dir, seq_dir = os.path.join(work, "neu-train"), os.path.join(work, "neu-val-seq")
    for d, files in ((train_dir, train), (seq_dir, [val[i % len(val)] for i in range(loops_to)])):
        os.makedirs(d, exist_ok=True)
        for old in glob.glob(os.path.join(d, "*.jpg")):
            os.remove(old)
        for i, p in enumerate(files):
            os.symlink(p, os.path.join(d, f"{i:05d}.jpg"))
    return train_dir, seq_dir, len(train), len(val)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=os.path.join(ROOT, "target", "drift-cases"))
    parser.add_argument("--profile", default="debug")
    parser.add_argument("--only", nargs="*", help="case names (dimmed, defocus, dust, product, clean, neu)")
    parser.add_argument("--loops", type=int, default=10, help="loops of the clean recordings")
    parser.add_argument("--neu-frames", type=int, default=3000)
    parser.add_argument("--videos", nargs="*", default=["color", "mono"], choices=["color", "mono"])
    args = parser.parse_args()
    env = dict(os.environ, GST_PLUGIN_PATH=os.path.join(ROOT, "target", args.profile))
    work = os.path.join(args.cases, "runs")
    os.makedirs(work, exist_ok=True)
    wanted = lambda name: not args.only or name in args.only
    rows = []
    for video in args.videos:
        mono = video == "mono"
        for case in ("dimmed", "defocus", "dust", "product"):
            if not wanted(case):
                continue
            src = os.path.join(args.cases, f"{video}-{case}.avi")
            out = os.path.join(work, f"{video}-{case}.ndjson")
            seconds, _ = launch(f"filesrc location={src} ! avidemux ! jpegdec ! {detect(mono)}"
                                f"filesink location={out}", env, 3600)
            frames, drift = records(out)
            starts = [r for r in drift if r["event"] == "start"]
            early = [r for r in starts if r["frame"] < ONSET]
            first = next((r for r in starts if r["frame"] >= ONSET), None)
            delay = first["frame"] - ONSET if first else None
            rows.append((f"{video} {case}", frames, ONSET, first["frame"] if first else "-",
                         delay if delay is not None else "none",
                         ", ".join(first["moved"][:4]) if first else "-",
                         len(early), seconds))
            print(rows[-1], flush=True)
        if wanted("clean"):
            out = os.path.join(work, f"{video}-clean-loop.ndjson")
            mp4 = os.path.join(ROOT, "tests", "data", f"conveyor_{video}.mp4")
            loops = " ".join(f"filesrc location={mp4} ! qtdemux ! h264parse ! avdec_h264 ! c."
                             for _ in range(args.loops))
            seconds, _ = launch(f"concat name=c ! {detect(mono)}filesink location={out} {loops}",
                                env, 7200)
            frames, drift = records(out)
            starts = [r for r in drift if r["event"] == "start"]
            rows.append((f"{video} clean x{args.loops}", frames, "-", "-", "-",
                         ", ".join(starts[0]["moved"][:4]) if starts else "-", len(starts), seconds))
            print(rows[-1], flush=True)
    if wanted("neu") and os.path.isdir(NEU):
        train_dir, seq_dir, n_train, n_val = neu_folders(work, args.neu_frames)
        baseline = os.path.join(work, "neu-baseline.json")
        replay = os.path.join(ROOT, "target", args.profile, "defect-replay")
        started = time.time()
        subprocess.run([replay, "--model", os.path.join(ROOT, "models", "surface-defects.onnx"),
                        "--images", train_dir, "--baseline-out", baseline, "--threads", "2",
                        "--progress", "none"], check=True, env=env, timeout=7200)
        learn_seconds = time.time() - started
        out = os.path.join(work, "neu-val-seq.ndjson")
        seconds, _ = launch(
            f"multifilesrc location={seq_dir}/%05d.jpg index=0 stop-index={args.neu_frames - 1} "
            f"caps=image/jpeg,framerate=30/1 ! jpegdec ! "
            f"videoconvert ! defectdetect model={ROOT}/models/surface-defects.onnx threads=2 "
            f"drift-baseline={baseline} ! defectmetaconvert source-id=neu ! filesink location={out}",
            env, 7200)
        frames, drift = records(out)
        starts = [r for r in drift if r["event"] == "start"]
        rows.append((f"NEU val x{args.neu_frames // n_val} (baseline: {n_train} train, "
                     f"{learn_seconds:.0f} s)", frames, "-", "-", "-",
                     ", ".join(starts[0]["moved"][:4]) if starts else "-", len(starts), seconds))
        print(rows[-1], flush=True)
    print()
    print("| case | frames | onset | episode starts at | delay (frames) | moved (first 4) | "
          "episodes before onset / on clean | run time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(f"{v:.0f}" if isinstance(v, float) else str(v) for v in row) + " |")
    failed = [r for r in rows if (r[2] != "-" and (r[4] == "none" or r[4] > LIMIT)) or r[6] > 0]
    if failed:
        print(f"\nFAILED: {[r[0] for r in failed]}")
        sys.exit(1)


if __name__ == "__main__":
    main()
