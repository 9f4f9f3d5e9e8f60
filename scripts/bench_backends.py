#!/usr/bin/env python3
"""The model alone on each back end, interleaved in one run: raw inference calls on a ready input.

    .venv-ov/bin/python -m pip install openvino==2025.4.1   # once; for the raw OpenVINO row
    .venv-ov/bin/python scripts/bench_backends.py [--rounds 12] [--runs 10] [--threads 2]

Back ends (each skipped with a note when its package is missing): ONNX Runtime's CPU provider
on the fp32 model and on the INT8 copy; the OpenVINO runtime at its defaults (``compile_model``
of the ONNX file on CPU with no configuration: what DL Streamer does, bf16 on CPUs that have it);
ONNX Runtime's OpenVINO provider with the f32 and bf16 precision hints (``load_config``, as
``defectdetect precision=...`` passes it). Runs in .venv-ov, whose onnxruntime is the
onnxruntime-openvino wheel (its CPU provider is the same code as the plain wheel's, one release
older). Each round runs every back end ``--runs`` times in turn, so a slow spell of a shared
machine falls on all alike; printed: the median over rounds of each back end's mean ms per run,
and its speed against the first (ratio of fps).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def backends(args):
    import onnxruntime as ort

    fp32 = os.path.join(ROOT, "models", "surface-defects.onnx")
    int8 = os.path.join(ROOT, "models", "surface-defects-int8.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    x = np.random.default_rng(0).random((1, 3, 384, 640), dtype=np.float32)
    out = []

    def ort_backend(name, model, providers):
        session = ort.InferenceSession(model, options, providers=providers)
        if session.get_providers()[0] != (providers[0] if isinstance(providers[0], str) else providers[0][0]):
            print(f"bench_backends: {name}: the provider did not load; skipped", flush=True)
            return
        def call(n):
            started = time.perf_counter()
            for _ in range(n):
                session.run(None, {"images": x})
            return time.perf_counter() - started

        out.append((name, call))

    ort_backend("ORT CPU fp32", fp32, ["CPUExecutionProvider"])
    ort_backend("ORT CPU int8", int8, ["CPUExecutionProvider"])
    # The provider's own libopenvino first: importing `openvino` first makes the provider fail to load.
    if "OpenVINOExecutionProvider" in ort.get_available_providers():
        for precision in ("f32", "bf16"):
            config = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": precision}})
            ort_backend(f"ORT OpenVINO EP {precision}", fp32,
                        [("OpenVINOExecutionProvider", {"device_type": "CPU", "load_config": config,
                                                        "num_of_threads": str(args.threads)})])
    else:
        print("bench_backends: this onnxruntime has no OpenVINO provider: its rows are skipped", flush=True)
    # The raw OpenVINO runtime in a process of its own: the `openvino` package's libopenvino and
    # the one the provider brings cannot live in one process.
    worker = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--openvino-worker", fp32],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = worker.stdout.readline().strip()
    if ready.startswith("ready"):
        def call_worker(n):
            worker.stdin.write(f"{n}\n")
            worker.stdin.flush()
            return float(worker.stdout.readline())

        out.append((f"OpenVINO runtime defaults ({ready.split()[1]})", call_worker))
    else:
        print(f"bench_backends: raw OpenVINO skipped ({ready or 'no `openvino` package'})", flush=True)
    return out


def openvino_worker(model):
    """Compiles the model with the OpenVINO runtime at its defaults; then, for each line N on
    stdin, runs it N times and prints the seconds taken."""
    try:
        import openvino as ov
    except ImportError as e:
        print(f"no openvino package ({e})", flush=True)
        return 0
    compiled = ov.Core().compile_model(model, "CPU")
    hint = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).random((1, 3, 384, 640), dtype=np.float32)
    print(f"ready {hint.split(chr(39))[1] if chr(39) in hint else hint}", flush=True)
    for line in sys.stdin:
        started = time.perf_counter()
        for _ in range(int(line)):
            request.infer({0: x})
        print(time.perf_counter() - started, flush=True)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--openvino-worker"]:
        return openvino_worker(argv[1])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    runs = backends(args)
    for _, call in runs:  # warm up
        call(2)
    ms = {name: [] for name, _ in runs}
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    for r in range(args.rounds):
        for name, call in runs:
            ms[name].append(1000 * call(args.runs) / args.runs)
        print(f"round {r + 1}: " + "  ".join(f"{n} {ms[n][-1]:.1f}" for n, _ in runs), flush=True)
    base = statistics.median(ms[runs[0][0]])
    print(f"\n{'back end':<40} {'median ms':>9} {'range':>13} {'speed':>6}")
    for name, _ in runs:
        med = statistics.median(ms[name])
        print(f"{name:<40} {med:9.1f} {min(ms[name]):6.1f}-{max(ms[name]):<6.1f} {base / med:6.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
