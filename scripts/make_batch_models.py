#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Models for cross-stream batching (defectdetect's batch-size) and its benchmark; nothing is
downloaded, nothing trained.

    .venv/bin/python scripts/make_batch_models.py dynamic IN.onnx OUT.onnx
        A copy of IN whose first input and output dimension is the symbolic 'batch' (the graph
        must compute its reshapes from shapes, as Ultralytics exports and the bundled model
        do). Checked with ONNX Runtime: each frame of a batch of 3 gives its batch-1 output
        within 1e-4 (relative to the output's largest value).

    .venv/bin/python scripts/make_batch_models.py copy IN.onnx OUT.onnx KEY=VALUE
        A copy of IN with one more metadata entry: the same graph in a file of other content (the
        plugin shares one session between elements loading the same content; the benchmark
        gives each stream a copy to measure one session per stream).

    .venv/bin/python scripts/make_batch_models.py yolov8n OUT.onnx [--imgsz 640] [--batch 1|dynamic]
        A YOLOv8n-size detector written layer by layer from the YOLOv8n architecture (width 0.25,
        depth 0.33: Conv/C2f/SPPF backbone, PAN neck, decoupled DFL head, 80 classes, output
        [n, 84, 8400] at 640) with fixed pseudo-random weights (seed 0; class biases -8 so few
        boxes pass the confidence threshold): the same layers and FLOPs (about 8.7 GFLOPs at 640,
        printed) as the real one, for speed only; its boxes mean nothing. 12.6 MB: made by the
        benchmark when needed, not committed.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def dynamic_copy(src: str, dst: str) -> None:
    model = onnx.load(src)
    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    # Intermediate shapes recorded for batch 1 would contradict the new input.
    del graph.value_info[:]
    for prop in model.metadata_props:
        if prop.key == "batch":
            prop.value = "-1"
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    check_batches(dst)


def check_batches(path: str, n: int = 3) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 0 for d in inp.shape]
    _, c, h, w = shape
    x = np.random.default_rng(1).random((n, c, h, w), dtype=np.float32)
    batched = session.run(None, {inp.name: x})
    for i in range(n):
        alone = session.run(None, {inp.name: x[i : i + 1]})
        for b, a in zip(batched, alone):
            scale = max(float(np.abs(a).max()), 1e-6)
            diff = float(np.abs(b[i : i + 1] - a).max()) / scale
            assert b.shape[0] == n and diff < 1e-4, (path, b.shape, diff)
    print(f"{path}: input {inp.shape}, a batch of {n} gives each frame its own output")


class Builder:
    """Conv + BN (folded) + SiLU layers with fixed pseudo-random weights; counts MACs."""

    def __init__(self, imgsz: int):
        self.rng = np.random.default_rng(0)
        self.nodes: list = []
        self.inits: list = []
        self.macs = 0
        self.n = 0
        self.imgsz = imgsz

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n}"

    def const(self, prefix: str, array) -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name=name))
        return name

    def conv(self, x, cin, cout, k, s, size, act=True, bias=None):
        """`size` is the input's spatial size (square); returns (name, output size)."""
        w = self.rng.standard_normal((cout, cin, k, k)).astype(np.float32) * np.float32(
            np.sqrt(1.0 / (cin * k * k))
        )
        b = np.zeros(cout, np.float32) if bias is None else np.full(cout, bias, np.float32)
        out = self.name("conv")
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self.const("w", w), self.const("b", b)],
                [out],
                kernel_shape=[k, k],
                strides=[s, s],
                pads=[k // 2] * 4,
            )
        )
        size = (size + 2 * (k // 2) - k) // s + 1
        self.macs += cout * cin * k * k * size * size
        if not act:
            return out, size
        sig = self.name("sig")
        mul = self.name("silu")
        self.nodes += [helper.make_node("Sigmoid", [out], [sig]), helper.make_node("Mul", [out, sig], [mul])]
        return mul, size

    def op(self, op, inputs, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def c2f(self, x, cin, cout, n, shortcut, size):
        c = cout // 2
        y, _ = self.conv(x, cin, 2 * c, 1, 1, size)
        a = self.name("split_a")
        b = self.name("split_b")
        self.nodes.append(helper.make_node("Split", [y, self.const("split", np.array([c, c], np.int64))], [a, b], axis=1))
        parts = [a, b]
        last = b
        for _ in range(n):
            h1, _ = self.conv(last, c, c, 3, 1, size)
            h2, _ = self.conv(h1, c, c, 3, 1, size)
            last = self.op("Add", [last, h2]) if shortcut else h2
            parts.append(last)
        cat = self.op("Concat", parts, axis=1)
        return self.conv(cat, (2 + n) * c, cout, 1, 1, size)[0]

    def sppf(self, x, cin, cout, size):
        c = cin // 2
        y, _ = self.conv(x, cin, c, 1, 1, size)
        pools = [y]
        for _ in range(3):
            pools.append(self.op("MaxPool", [pools[-1]], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2]))
        return self.conv(self.op("Concat", pools, axis=1), 4 * c, cout, 1, 1, size)[0]

    def up(self, x):
        scales = self.const("scales", np.array([1, 1, 2, 2], np.float32))
        return self.op("Resize", [x, "", scales], mode="nearest")


def yolov8n(imgsz: int, batch: str, nc: int = 80) -> tuple[onnx.ModelProto, float]:
    g = Builder(imgsz)
    s = imgsz
    x, s = g.conv("images", 3, 16, 3, 2, s)
    x, s = g.conv(x, 16, 32, 3, 2, s)
    x = g.c2f(x, 32, 32, 1, True, s)
    x, s = g.conv(x, 32, 64, 3, 2, s)
    p3 = g.c2f(x, 64, 64, 2, True, s)
    s3 = s
    x, s = g.conv(p3, 64, 128, 3, 2, s)
    p4 = g.c2f(x, 128, 128, 2, True, s)
    s4 = s
    x, s = g.conv(p4, 128, 256, 3, 2, s)
    x = g.c2f(x, 256, 256, 1, True, s)
    p5 = g.sppf(x, 256, 256, s)
    s5 = s
    # Neck (PAN).
    n4 = g.c2f(g.op("Concat", [g.up(p5), p4], axis=1), 384, 128, 1, False, s4)
    o3 = g.c2f(g.op("Concat", [g.up(n4), p3], axis=1), 192, 64, 1, False, s3)
    d, _ = g.conv(o3, 64, 64, 3, 2, s3)
    o4 = g.c2f(g.op("Concat", [d, n4], axis=1), 192, 128, 1, False, s4)
    d, _ = g.conv(o4, 128, 128, 3, 2, s4)
    o5 = g.c2f(g.op("Concat", [d, p5], axis=1), 384, 256, 1, False, s5)
    # Decoupled head with DFL, decoded to [n, 4 + nc, anchors] in input pixels.
    reg, c2, c3 = 16, 64, max(64, min(nc, 100))
    proj = g.const("dfl", np.arange(reg, dtype=np.float32).reshape(1, 1, reg, 1))
    boxes, scores, anchors, strides = [], [], [], []
    for feat, ch, size in ((o3, 64, s3), (o4, 128, s4), (o5, 256, s5)):
        b, _ = g.conv(feat, ch, c2, 3, 1, size)
        b, _ = g.conv(b, c2, c2, 3, 1, size)
        b, _ = g.conv(b, c2, 4 * reg, 1, 1, size, act=False)
        c, _ = g.conv(feat, ch, c3, 3, 1, size)
        c, _ = g.conv(c, c3, c3, 3, 1, size)
        c, _ = g.conv(c, c3, nc, 1, 1, size, act=False, bias=-8.0)
        b = g.op("Reshape", [b, g.const("shape", np.array([0, 4, reg, -1], np.int64))])
        b = g.op("Softmax", [b], axis=2)
        b = g.op("ReduceSum", [g.op("Mul", [b, proj]), g.const("axes", np.array([2], np.int64))], keepdims=0)
        boxes.append(b)
        scores.append(g.op("Reshape", [c, g.const("shape", np.array([0, nc, -1], np.int64))]))
        stride = imgsz // size
        ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
        anchors.append(np.stack([xs.reshape(-1), ys.reshape(-1)]).astype(np.float32))
        strides.append(np.full((1, size * size), stride, np.float32))
    dist = g.op("Concat", boxes, axis=2)  # [n, 4, A]: left, top, right, bottom
    anchor = g.const("anchors", np.concatenate(anchors, axis=1)[None])
    stride = g.const("strides", np.concatenate(strides, axis=1)[None])
    lt = g.op("Slice", [dist, g.const("s", np.array([0], np.int64)), g.const("e", np.array([2], np.int64)),
                        g.const("a", np.array([1], np.int64))])
    rb = g.op("Slice", [dist, g.const("s", np.array([2], np.int64)), g.const("e", np.array([4], np.int64)),
                        g.const("a", np.array([1], np.int64))])
    x1y1 = g.op("Sub", [anchor, lt])
    x2y2 = g.op("Add", [anchor, rb])
    half = g.const("half", np.array(0.5, np.float32))
    cxcy = g.op("Mul", [g.op("Add", [x1y1, x2y2]), half])
    wh = g.op("Sub", [x2y2, x1y1])
    box = g.op("Mul", [g.op("Concat", [cxcy, wh], axis=1), stride])
    cls = g.op("Sigmoid", [g.op("Concat", scores, axis=2)])
    g.nodes.append(helper.make_node("Concat", [box, cls], ["output0"], axis=1))
    total = sum(s * s for s in (s3, s4, s5))
    bdim = "batch" if batch == "dynamic" else 1
    graph = helper.make_graph(
        g.nodes,
        "yolov8n_size",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [bdim, 3, imgsz, imgsz])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [bdim, 4 + nc, total])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="gst-plugin-defect-make_batch_models")
    model.ir_version = 8
    gflops = 2 * g.macs / 1e9
    names = "{" + ", ".join(f"{i}: 'class{i}'" for i in range(nc)) + "}"
    helper.set_model_props(model, {
        "description": f"YOLOv8n-size detector with fixed pseudo-random weights (speed only), {gflops:.1f} GFLOPs",
        "task": "detect", "stride": "32", "imgsz": f"[{imgsz}, {imgsz}]", "names": names, "version": "1",
    })
    onnx.checker.check_model(model)
    return model, gflops


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    dyn = sub.add_parser("dynamic")
    dyn.add_argument("src")
    dyn.add_argument("dst")
    copy = sub.add_parser("copy")
    copy.add_argument("src")
    copy.add_argument("dst")
    copy.add_argument("entry")
    yolo = sub.add_parser("yolov8n")
    yolo.add_argument("dst")
    yolo.add_argument("--imgsz", type=int, default=640)
    yolo.add_argument("--batch", choices=["1", "dynamic"], default="1")
    args = ap.parse_args(argv)
    if args.what == "dynamic":
        dynamic_copy(args.src, args.dst)
    elif args.what == "copy":
        model = onnx.load(args.src)
        key, _, value = args.entry.partition("=")
        props = {p.key: p.value for p in model.metadata_props}
        props[key] = value
        helper.set_model_props(model, props)
        onnx.save(model, args.dst)
    else:
        model, gflops = yolov8n(args.imgsz, args.batch)
        onnx.save(model, args.dst)
        params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
        print(f"{args.dst}: YOLOv8n-size at {args.imgsz}, {params / 1e6:.2f} M values, {gflops:.2f} GFLOPs")
        if args.batch == "dynamic":
            check_batches(args.dst, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
