#!/usr/bin/env python3
"""Does an INT8 copy agree with its fp32 parent on this CPU, and on an emulated older one?

ONNX Runtime picks its integer kernels from the CPU it runs on: with AVX512-VNNI or AVX-VNNI the
u8 x s8 products are summed in int32 (vpdpbusd); with AVX2 only (and AVX-512 without VNNI) they go
through vpmaddubsw, whose int16 sum of two u8 x s8 products saturates when the weights use the
full int8 range. An INT8 copy can therefore be right on one CPU and wrong on another. This script
runs both models on the same frames and prints boxes kept and mAP@0.5, in three steps:

    # 1. natively: decode and letterbox frames (OpenCV) into one .npz
    python training/int8_cpu_check.py prepare --video tests/data/conveyor_color.mp4 \
        --coco tests/data/conveyor_color.coco.json --every 15 --out /tmp/frames.npz
    # 2. run both models (numpy + onnxruntime only), natively or under an emulated CPU:
    python training/int8_cpu_check.py run --frames /tmp/frames.npz --out /tmp/native.npz \
        models/surface-defects.onnx models/surface-defects-int8.onnx
    qemu-x86_64 -cpu Haswell .venv/bin/python training/int8_cpu_check.py run \
        --frames /tmp/frames.npz --out /tmp/haswell.npz models/surface-defects.onnx ...
    # 3. natively: score (boxes kept vs the first model, mAP@0.5 of each against the truth)
    python training/int8_cpu_check.py score --frames /tmp/frames.npz /tmp/native.npz /tmp/haswell.npz
    # or the same models on two CPUs (output differences, boxes kept), the first run the reference
    python training/int8_cpu_check.py score --across --frames /tmp/frames.npz /tmp/native.npz /tmp/haswell.npz

``run`` records the CPU the process sees through CPUID (what ONNX Runtime's MLAS reads; under
``qemu-x86_64 -cpu MODEL`` that is the emulated model, while /proc/cpuinfo still shows the host)
and names the instruction set of the u8 x s8 kernels MLAS takes on it.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def cpuid_features():
    """CPU features as CPUID reports them to this process (x86-64 Linux only): the flags that
    decide MLAS's integer GEMM kernels. Runs the CPUID instruction from a tiny mmap'ed stub."""
    import ctypes
    import mmap

    # mov eax, edi; mov ecx, esi; push rbx; cpuid; mov [rdx], eax; mov [rdx+4], ebx;
    # mov [rdx+8], ecx; mov [rdx+12], edx; pop rbx; ret   (args: leaf, subleaf, out*)
    code = bytes([0x89, 0xF8, 0x89, 0xF1, 0x49, 0x89, 0xD0, 0x53, 0x0F, 0xA2,
                  0x41, 0x89, 0x00, 0x41, 0x89, 0x58, 0x04, 0x41, 0x89, 0x48, 0x08,
                  0x41, 0x89, 0x50, 0x0C, 0x5B, 0xC3])
    buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    fn = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))(addr)

    def cpuid(leaf, sub=0):
        out = (ctypes.c_uint32 * 4)()
        fn(leaf, sub, out)
        return list(out)

    max_leaf = cpuid(0)[0]
    brand = b""
    if cpuid(0x80000000)[0] >= 0x80000004:
        for leaf in (0x80000002, 0x80000003, 0x80000004):
            brand += b"".join(r.to_bytes(4, "little") for r in cpuid(leaf))
    _, _, ecx1, _ = cpuid(1)
    _, ebx7, ecx7, edx7 = cpuid(7) if max_leaf >= 7 else (0, 0, 0, 0)
    eax71 = cpuid(7, 1)[0] if max_leaf >= 7 else 0
    flags = {
        "fma": ecx1 >> 12 & 1, "avx": ecx1 >> 28 & 1, "avx2": ebx7 >> 5 & 1,
        "avx512f": ebx7 >> 16 & 1, "avx512bw": ebx7 >> 30 & 1, "avx512vl": ebx7 >> 31 & 1,
        "avx512_vnni": ecx7 >> 11 & 1, "avx_vnni": eax71 >> 4 & 1, "amx_int8": edx7 >> 25 & 1,
    }
    del fn
    return brand.rstrip(b"\0").decode(errors="replace").strip(), sorted(k for k, v in flags.items() if v)


def u8s8_kernel(flags):
    """The u8 x s8 GEMM kernel MLAS (onnxruntime/core/mlas/lib/platform.cpp) selects for these
    CPUID flags, and whether its pair sums can saturate."""
    if "amx_int8" in flags:
        return "AMX-INT8 (tdpbusd, int32 sums)", False
    if "avx512_vnni" in flags and "avx512bw" in flags:
        return "AVX512-VNNI (vpdpbusd, int32 sums)", False
    if "avx_vnni" in flags:
        return "AVX-VNNI (vpdpbusd, int32 sums)", False
    if "avx512bw" in flags:
        return "AVX512BW core (vpmaddubsw, int16 pair sums that saturate)", True
    if "avx2" in flags:
        return "AVX2 (vpmaddubsw, int16 pair sums that saturate)", True
    return "SSE4.1/SSE2 (16-bit widening, int32 sums)", False


def prepare(args):
    import json

    import cv2
    from evaluate import to_input

    with open(args.coco) as f:
        coco = json.load(f)
    frame_of = {im["id"]: im.get("frame_index", im["id"]) for im in coco["images"]}
    gts = {}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        gts.setdefault(frame_of[a["image_id"]], []).append([a["category_id"], x, y, x + w, y + h])
    import onnx

    dims = onnx.load(args.model).graph.input[0].type.tensor_type.shape.dim
    hw = (dims[2].dim_value, dims[3].dim_value)
    cap = cv2.VideoCapture(args.video)
    inputs, meta, truth, n = [], [], [], 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if n % args.every == 0:
            h, w = img.shape[:2]
            x, r, pad = to_input(img, hw)
            inputs.append(x[0])
            meta.append([n, r, pad[0], pad[1], w, h])
            for g in gts.get(n, []):
                truth.append([len(meta) - 1, *g])
        n += 1
    np.savez_compressed(args.out, inputs=np.stack(inputs), meta=np.array(meta, np.float64),
                        truth=np.array(truth, np.float32).reshape(-1, 6))
    print(f"prepare: {len(inputs)} of {n} frames ({hw[1]}x{hw[0]}) -> {args.out}")


def run(args):
    import onnxruntime as ort

    brand, flags = cpuid_features()
    kernel, saturates = u8s8_kernel(flags)
    print(f"run: CPU (CPUID) {brand or '?'}; flags {' '.join(flags)}")
    print(f"run: MLAS u8 x s8 kernel: {kernel}")
    frames = np.load(args.frames)["inputs"]
    if args.limit:
        frames = frames[:args.limit]
    outs = {}
    for model in args.models:
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        start, results = time.perf_counter(), []
        for x in frames:
            results.append(sess.run(None, {name: x[None]})[0][0])
        ms = (time.perf_counter() - start) * 1000 / len(frames)
        outs[os.path.basename(model)] = np.stack(results)
        print(f"run: {model}: {len(frames)} frames, {ms:.0f} ms a frame")
    np.savez_compressed(args.out, cpu=np.array(brand), flags=np.array(" ".join(flags)),
                        kernel=np.array(kernel), saturates=np.array(saturates),
                        models=np.array(list(outs)), **{f"out_{i}": v for i, v in enumerate(outs.values())})
    print(f"run: -> {args.out}")


def score(args):
    """Boxes kept are counted against the fp32 parent run on the same CPU (same flags): the
    first model of the first run with those flags; mAP@0.5 against the truth."""
    from evaluate import Accumulator, box_iou, postprocess, unletterbox

    data = np.load(args.frames)
    meta, truth = data["meta"], data["truth"]

    def kept_boxes(parent, copy):
        kept = total = 0
        for a, b in zip(parent, copy):
            for d in a:
                total += 1
                same = b[b[:, 5] == d[5]]
                if len(same) and box_iou(d[None, :4], same[:, :4])[0].max() > 0.9:
                    kept += 1
        return kept, total

    def detections(outs):
        acc, per_frame = Accumulator(outs.shape[1] - 4), []
        for k, out in enumerate(outs):
            n, gain, left, top, w, h = meta[k]
            det = unletterbox(postprocess(out, 0.001, 0.45), gain, (left, top), w, h)
            acc.add(det, truth[truth[:, 0] == k][:, 1:])
            per_frame.append(det[det[:, 4] >= 0.25])
        return acc.results()[1]["map50"], per_frame

    runs = [(path, np.load(path)) for path in args.runs]
    if args.across:
        # The same model on two CPUs: the first run's CPU is the reference.
        (ref_path, ref), others = runs[0], runs[1:]
        ref_models = [str(m) for m in ref["models"]]
        for path, r in others:
            for i, name in enumerate(r["models"]):
                if str(name) not in ref_models:
                    continue
                a = ref[f"out_{ref_models.index(str(name))}"]
                b = r[f"out_{i}"]
                n = min(len(a), len(b))
                diff = np.abs(a[:n] - b[:n])
                _, da = detections(a[:n])
                _, db = detections(b[:n])
                kept, total = kept_boxes(da, db)
                print(f"{name}: {r['kernel']} [{r['flags']}] against {ref['kernel']}, {n} frames: "
                      f"largest output difference {diff.max():.4g} (scores {diff[:, 4:].max():.4g}); "
                      f"{kept}/{total} boxes kept at IoU > 0.9")
        return
    parents = {}
    for path, r in runs:
        parents.setdefault(str(r["flags"]), (str(r["models"][0]), detections(r["out_0"])[1]))
    for path, r in runs:
        print(f"{path}: CPU {r['cpu']} [{r['flags']}]; u8 x s8 kernel {r['kernel']}")
        parent_name, parent = parents[str(r["flags"])]
        for i, name in enumerate(r["models"]):
            outs = r[f"out_{i}"]
            map50, per_frame = detections(outs)
            line = f"  {name}: {len(outs)} frames, mAP@0.5 {map50:.3f}"
            if name != parent_name:
                kept = total = 0
                worst = 0.0
                for a, b in zip(parent, per_frame):
                    for d in a:
                        total += 1
                        same = b[b[:, 5] == d[5]]
                        if len(same):
                            ious = box_iou(d[None, :4], same[:, :4])[0]
                            j = int(ious.argmax())
                            if ious[j] > 0.9:
                                kept += 1
                                worst = max(worst, abs(float(same[j, 4] - d[4])))
                line += (f"; {kept}/{total} of {parent_name}'s boxes on the same CPU kept at IoU > 0.9 "
                         f"({100 * kept / max(total, 1):.1f} %), largest score difference {worst:.3f}")
            print(line)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--video", default="tests/data/conveyor_color.mp4")
    p.add_argument("--coco", default="tests/data/conveyor_color.coco.json")
    p.add_argument("--every", type=int, default=15, help="keep every Nth frame")
    p.add_argument("--model", default="models/surface-defects.onnx", help="takes its input size")
    p.add_argument("--out", required=True)
    p = sub.add_parser("run")
    p.add_argument("--frames", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=0, help="only the first N frames (0 = all)")
    p.add_argument("--out", required=True)
    p.add_argument("models", nargs="+", help="the fp32 parent first, then its copies")
    p = sub.add_parser("score")
    p.add_argument("--frames", required=True)
    p.add_argument("--across", action="store_true",
                   help="compare each model of the later runs with the same model in the first run")
    p.add_argument("runs", nargs="+")
    args = ap.parse_args(argv)
    {"prepare": prepare, "run": run, "score": score}[args.step](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
