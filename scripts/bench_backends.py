#!/usr/bin/env python3
"""Back ends and the plugin side by side, interleaved in one run, on the bundled model and on a
YOLOv8n-size model at 640; one table of frames per second and ratios.

    scripts/setup.sh --tests              # .venv-ov: onnxruntime-openvino and openvino
    cargo build --lib                     # the plugin, in target/debug
    .venv-ov/bin/python scripts/bench_backends.py [--rounds 3] [--runs 10] [--frames 60] \\
        [--streams 1,2,4] [--models bundled,yolov8n] [--openvino-python PYTHON] [--no-plugin]

Rows (each skipped with a note when its package, provider or model is missing):
- raw: ONNX Runtime's CPU provider on the fp32 model and on the INT8 copy (bundled model only);
  the OpenVINO runtime at its defaults (``compile_model`` of the ONNX file on CPU with no
  configuration: what DL Streamer does, bf16 on CPUs that have it; in a process of its own, as
  the `openvino` package's libopenvino and the provider's cannot share one); ONNX Runtime's
  OpenVINO provider with the f32 and bf16 precision hints. Inference calls on a ready input, in
  this process (.venv-ov, whose onnxruntime is the onnxruntime-openvino wheel: its CPU provider
  is the plain wheel's code, one release older).
- plugin: whole ``videotestsrc ! defectdetect ! fakesink`` pipelines (gst-launch-1.0, PLAYING to
  end of stream, model loading excluded; preprocessing and decoding included; each stream's
  first frame, which passes while the sinks preroll, before that clock, is not counted; the CPU
  time a frame is the whole process's, model loading included), with each
  provider and precision; then 1, 2 and 4 streams in one pipeline, each stream its own
  ``videotestsrc ! defectdetect``: "sessions" gives every stream's element its own session
  (every stream loads a byte-different copy of the model: only the metadata differs), "batched"
  shares one session with ``batch-size`` = streams (one run per batch). Frames per second are
  all streams' frames together. The stream rows use a dynamic-batch copy of the model
  (scripts/make_batch_models.py), for batched and unbatched rows alike.
- contended: the same with a second process spinning on core 0 (``taskset -c 0``) for the whole
  measurement: a plant PC whose decoders, encoders and other programs share the cores.

Each round runs every row on every model once, in turn, so a slow spell of a shared machine
falls on all alike; printed: the median over rounds of each row's frames per second and its
ratio to the first row of the same model (raw ORT CPU fp32), then the batched/sessions ratios.
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(ROOT, "target", "bench-models")
THREADS = 2


def cpu_description():
    """The CPU model and its vector flags, from /proc/cpuinfo."""
    model, flags = "?", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "?":
                    model = value.strip()
                if key.strip() == "flags" and not flags:
                    flags = value.split()
    except OSError:
        pass
    vector = [f for f in flags if f.startswith(("avx", "amx", "fma", "f16c", "sse4"))]
    bf16 = "yes" if {"avx512_bf16", "amx_bf16"} & set(flags) else "no"
    return f"{model}; {os.cpu_count()} CPUs; native bf16: {bf16}; flags: {' '.join(vector)}"


@contextlib.contextmanager
def busy(on):
    """A second process spinning on core 0 while the block runs (when `on`)."""
    spinner = None
    if on:
        spinner = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)
    try:
        yield
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def make(*command):
    """Runs scripts/make_batch_models.py with the project's .venv (which has the onnx package)."""
    python = os.path.join(ROOT, ".venv", "bin", "python")
    subprocess.run([python, os.path.join(ROOT, "scripts", "make_batch_models.py"), *command], check=True)


def prepare_models(names):
    """{name: (fp32 model, int8 model or None, dynamic-batch model, [copies of it], (h, w))}, made in
    target/bench-models when missing."""
    os.makedirs(MODELS_DIR, exist_ok=True)
    out = {}
    for name in names:
        if name == "bundled":
            fp32 = os.path.join(ROOT, "models", "surface-defects.onnx")
            int8 = os.path.join(ROOT, "models", "surface-defects-int8.onnx")
            dynamic = os.path.join(MODELS_DIR, "surface-defects-batch.onnx")
            if not os.path.exists(dynamic):
                make("dynamic", fp32, dynamic)
            size = (384, 640)
        elif name == "yolov8n":
            fp32 = dynamic = os.path.join(MODELS_DIR, "yolov8n-640.onnx")
            int8 = None
            if not os.path.exists(fp32):
                make("yolov8n", fp32, "--batch", "dynamic")
            size = (640, 640)
        else:
            raise SystemExit(f"bench_backends: unknown model {name!r}")
        copies = []
        for i in range(4):
            copy = dynamic.replace(".onnx", f"-copy{i}.onnx")
            if not os.path.exists(copy):
                make("copy", dynamic, copy, f"bench_copy={i}")
            copies.append(copy)
        out[name] = (fp32, int8, dynamic, copies, size)
    return out


def raw_rows(args, models):
    """Raw inference rows: name -> {model name: fps function(busy)}."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    rows = {}

    def ort_row(row, model_name, path, providers, size):
        if path is None:
            return
        try:
            session = ort.InferenceSession(path, options, providers=providers)
        except Exception as e:  # noqa: BLE001 - reported, row skipped
            print(f"bench_backends: {row} on {model_name}: {e}; skipped", flush=True)
            return
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        if session.get_providers()[0] != wanted:
            print(f"bench_backends: {row}: the provider did not load; skipped", flush=True)
            return
        x = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
        name = session.get_inputs()[0].name

        def fps(contended):
            with busy(contended):
                started, cpu = time.perf_counter(), time.process_time()
                for _ in range(args.runs):
                    session.run(None, {name: x})
                return args.runs / (time.perf_counter() - started), 1000 * (time.process_time() - cpu) / args.runs

        fps(False)  # warm up
        rows.setdefault(row, {})[model_name] = fps

    for model_name, (fp32, int8, _, _, size) in models.items():
        ort_row("raw ORT CPU fp32", model_name, fp32, ["CPUExecutionProvider"], size)
        ort_row("raw ORT CPU int8", model_name, int8, ["CPUExecutionProvider"], size)
        # The provider's own libopenvino first: importing `openvino` here would break it.
        if "OpenVINOExecutionProvider" in ort.get_available_providers():
            for precision in ("f32", "bf16"):
                config = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": precision}})
                ort_row(f"raw ORT OpenVINO EP {precision}", model_name, fp32,
                        [("OpenVINOExecutionProvider", {"device_type": "CPU", "load_config": config,
                                                        "num_of_threads": str(THREADS)})], size)
        else:
            print("bench_backends: this onnxruntime has no OpenVINO provider: its rows are skipped", flush=True)
        python = args.openvino_python or sys.executable
        worker = subprocess.Popen([python, os.path.abspath(__file__), "--openvino-worker", fp32, str(size[0]),
                                   str(size[1])], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = worker.stdout.readline().strip()
        if not ready.startswith("ready"):
            print(f"bench_backends: raw OpenVINO skipped ({ready or 'no `openvino` package'})", flush=True)
            continue

        def call_worker(contended, worker=worker):
            with busy(contended):
                worker.stdin.write(f"{args.runs}\n")
                worker.stdin.flush()
                return args.runs / float(worker.stdout.readline()), None

        call_worker(False)
        rows.setdefault(f"raw OpenVINO runtime defaults ({ready.split()[1]})", {})[model_name] = call_worker
    return rows


def plugin_rows(args, models):
    """Pipeline rows: name -> {model name: fps function(busy)}."""
    import bench_pipeline

    rows = {}

    def pipeline_row(row, model_name, streams, frames, size):
        h, w = size

        def fps(contended):
            description = "  ".join(
                f"videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=RGB,width={w},height={h} ! "
                f"defectdetect {properties} ! fakesink sync=false"
                for properties in streams
            )
            seconds, cpu = bench_pipeline.run(description, contended)
            # Each stream's first frame goes through while the sinks preroll, before the clock
            # that gst-launch-1.0's time starts with.
            return len(streams) * (frames - 1) / seconds, 1000 * cpu / (len(streams) * frames)

        rows.setdefault(row, {})[model_name] = fps

    for model_name, (fp32, int8, dynamic, copies, size) in models.items():
        frames = args.frames if model_name == "bundled" else max(8, args.frames // 2)
        cpu = "execution-provider=cpu"
        pipeline_row("plugin CPU fp32", model_name, [f"model={fp32} {cpu}"], frames, size)
        if int8:
            pipeline_row("plugin CPU int8", model_name, [f"model={int8} {cpu}"], frames, size)
        for precision in ("f32", "bf16"):
            pipeline_row(f"plugin OpenVINO {precision}", model_name,
                         [f"model={fp32} execution-provider=openvino precision={precision}"], frames, size)
        for n in args.streams:
            per_stream = max(4, frames // n)
            if n == 1:
                pipeline_row("plugin CPU, 1 stream (dynamic-batch copy)", model_name,
                             [f"model={dynamic} {cpu}"], per_stream, size)
                continue
            pipeline_row(f"plugin CPU, {n} streams, {n} sessions", model_name,
                         [f"model={copies[i]} {cpu}" for i in range(n)], per_stream, size)
            pipeline_row(f"plugin CPU, {n} streams, 1 session, turns", model_name,
                         [f"model={dynamic} {cpu}" for _ in range(n)], per_stream, size)
            pipeline_row(f"plugin CPU, {n} streams, batched (batch-size={n})", model_name,
                         [f"model={dynamic} {cpu} batch-size={n}" for _ in range(n)], per_stream, size)
    return rows


def openvino_worker(model, height, width):
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
    x = np.random.default_rng(0).random((1, 3, int(height), int(width)), dtype=np.float32)
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
        return openvino_worker(*argv[1:4])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10, help="raw inference calls a row makes a round")
    ap.add_argument("--frames", type=int, default=60,
                    help="frames of a plugin row on the bundled model (all streams together; half at 640)")
    ap.add_argument("--streams", default="1,2,4")
    ap.add_argument("--models", default="bundled,yolov8n")
    ap.add_argument("--openvino-python", help="python with the `openvino` package (default: this one)")
    ap.add_argument("--no-plugin", action="store_true", help="raw rows only")
    ap.add_argument("--no-contended", action="store_true")
    args = ap.parse_args(argv)
    args.streams = [int(n) for n in args.streams.split(",")]
    models = prepare_models(args.models.split(","))
    print(f"CPU: {cpu_description()}", flush=True)
    rows = raw_rows(args, models)
    if not args.no_plugin:
        rows.update(plugin_rows(args, models))
    contended = []
    if not args.no_contended:
        for name in list(rows):
            if name.startswith(("raw ORT CPU fp32", "raw OpenVINO runtime")) or name in (
                    "plugin CPU fp32", "plugin CPU, 2 streams, 2 sessions", "plugin CPU, 2 streams, batched (batch-size=2)",
                    "plugin CPU, 2 streams, 1 session, turns"):
                contended.append(name)
    plan = [(name, False) for name in rows] + [(name, True) for name in contended]
    fps = {(name, c, m): [] for name, c in plan for m in models}
    cpu_ms = {(name, c, m): [] for name, c in plan for m in models}
    print(f"load average at the start {os.getloadavg()[0]:.1f} (shared machine: compare ratios within this run)",
          flush=True)
    for r in range(args.rounds):
        for name, c in plan:
            for model_name, measure in rows[name].items():
                value, cpu = measure(c)
                fps[(name, c, model_name)].append(value)
                if cpu is not None:
                    cpu_ms[(name, c, model_name)].append(cpu)
                print(f"round {r + 1}: {name}{' [contended]' if c else ''} on {model_name}: {value:.2f} fps"
                      + (f", {cpu:.1f} ms CPU a frame" if cpu is not None else ""), flush=True)
    median = {k: statistics.median(v) for k, v in fps.items() if v}
    cpu_median = {k: statistics.median(v) for k, v in cpu_ms.items() if v}
    base = {m: median.get(("raw ORT CPU fp32", False, m)) for m in models}
    header = f"{'':<52}" + "".join(f"{m + ' fps':>14} {'ratio':>6} {'CPU ms':>7}" for m in models)
    print(f"\nmedians of {args.rounds} rounds; ratio: fps / raw ORT CPU fp32 fps of the same model, quiet; "
          f"CPU ms: CPU time (all threads) a frame\n{header}")
    for name, c in plan:
        cells = ""
        for m in models:
            v = median.get((name, c, m))
            cpu = cpu_median.get((name, c, m))
            cells += f"{v:14.2f} {v / base[m]:6.2f}" if v and base[m] else f"{'-':>14} {'':>6}"
            cells += f" {cpu:7.1f}" if cpu else f" {'':>7}"
        print(f"{name + (' [contended]' if c else ''):<52}{cells}")
    print("\nbatched / sessions (total fps of the same streams):")
    for n in args.streams:
        for c in (False, True):
            for m in models:
                a = median.get((f"plugin CPU, {n} streams, batched (batch-size={n})", c, m))
                b = median.get((f"plugin CPU, {n} streams, {n} sessions", c, m))
                if a and b:
                    ca = cpu_median.get((f"plugin CPU, {n} streams, batched (batch-size={n})", c, m))
                    cb = cpu_median.get((f"plugin CPU, {n} streams, {n} sessions", c, m))
                    print(f"  {n} streams on {m}{' [contended]' if c else ''}: fps {a / b:.2f}x, CPU a frame "
                          f"{ca / cb:.2f}x" if ca and cb else "")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
