#!/usr/bin/env python3
"""Frames per second of whole gst-launch-1.0 pipelines, measured interleaved in one run.

    python scripts/bench_pipeline.py --frames 300 --rounds 3 \
        --config 'fp32=filesrc location=V ! qtdemux ! avdec_h264 ! videoconvert ! defectdetect model=A ! fakesink' \
        --config 'int8=... defectdetect model=B ...' [--busy-config 'fp32 busy=...']

Each round runs every configuration once, in order, so a slow spell of a shared machine falls on
all of them alike; the time is gst-launch-1.0's own "Execution ended after" (PLAYING to EOS, model
loading excluded). ``--busy-config`` configurations run with a second process spinning on one
core (``taskset -c 0``) for their whole length: the contended case of a plant PC where decoders,
encoders and other programs share the cores.  Printed: median fps (and the range) per
configuration and its ratio to the first configuration's median, and the CPU time the pipeline
process used per frame (user + system, median): what it takes from everything else on the
machine, and less sensitive to other tenants than the fps.

The plugin is found in target/debug unless GST_PLUGIN_PATH says otherwise.
"""
import argparse
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENDED = re.compile(r"Execution ended after (\d+):(\d+):(\d+\.\d+)")


def run(pipeline, busy):
    env = dict(os.environ)
    env.setdefault("GST_PLUGIN_PATH", os.path.join(ROOT, "target", "debug"))
    spinner = None
    if busy:
        spinner = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(["gst-launch-1.0", "-e", *shlex.split(pipeline)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)
    finally:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = done.stdout + done.stderr
    match = ENDED.search(text)
    if done.returncode != 0 or not match:
        raise SystemExit(f"bench_pipeline: the pipeline failed ({done.returncode}):\n{pipeline}\n{text[-2000:]}")
    h, m, s = match.groups()
    return int(h) * 3600 + int(m) * 60 + float(s), cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", default=[], help="NAME=PIPELINE (gst-launch-1.0 syntax)")
    ap.add_argument("--busy-config", action="append", default=[],
                    help="NAME=PIPELINE run beside a process spinning on core 0")
    ap.add_argument("--frames", type=int, required=True, help="frames each pipeline passes (for fps)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    configs = [(c, False) for c in args.config] + [(c, True) for c in args.busy_config]
    if not configs:
        ap.error("no --config")
    parsed = []
    for spec, busy in configs:
        name, _, pipeline = spec.partition("=")
        if not pipeline:
            ap.error(f"{spec!r} is not NAME=PIPELINE")
        parsed.append((name, pipeline, busy))
    fps = {name: [] for name, _, _ in parsed}
    cpu_ms = {name: [] for name, _, _ in parsed}
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared; figures are ratios "
          f"within this run)", flush=True)
    for r in range(args.rounds):
        for name, pipeline, busy in parsed:
            seconds, cpu = run(pipeline, busy)
            fps[name].append(args.frames / seconds)
            cpu_ms[name].append(1000 * cpu / args.frames)
            print(f"round {r + 1}: {name:<28} {args.frames / seconds:7.2f} fps  "
                  f"{1000 * cpu / args.frames:6.1f} ms CPU a frame", flush=True)
    base = statistics.median(fps[parsed[0][0]])
    print(f"\n{'configuration':<28} {'median fps':>10} {'range':>15} {'ratio':>7} {'CPU ms/frame':>13}")
    for name, _, busy in parsed:
        med = statistics.median(fps[name])
        print(f"{name:<28} {med:10.2f} {min(fps[name]):7.2f}-{max(fps[name]):<7.2f} {med / base:7.3f} "
              f"{statistics.median(cpu_ms[name]):13.1f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
