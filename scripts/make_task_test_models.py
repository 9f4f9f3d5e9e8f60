#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Build the tiny, deterministic classification, anomaly and segmentation test models in
models/test/.

No training, no downloads, no ``ultralytics`` or ``anomalib`` (the first is AGPL): every weight
is a fixed constant written with the ``onnx.helper`` API (opset 17, IR version 8) and the
metadata date is fixed, so re-running the script produces byte-identical files.  The
signatures follow what the real exporters write (see docs/anomaly-models.md and
models/neu-classifier.md); the answers follow simple rules so that tests know them.

Colour classifier (``cls_colour_224.onnx``, ``cls_colour_224_logits.onnx``)
-----------------------------------------------------------------------------
The signature and metadata of an Ultralytics 8.x ``-cls`` export
(``YOLO("yolov8n-cls.pt").export(format="onnx")``): input ``images`` [1, 3, 224, 224] float32
RGB in [0, 1], output ``output0`` [1, 1000] softmax probabilities; metadata ``description``,
``author``, ``date``, ``version``, ``license``, ``docs``, ``stride`` '1', ``task`` 'classify',
``batch`` '1', ``imgsz`` '[224, 224]', ``names`` (1000 entries, Python dict repr), ``args``,
``channels`` '3'.

Graph: ReduceMean over H, W -> m = (r, g, b) mean colour of the (centre-cropped) input;
class k has the prototype colour c_k = (k // 100, k // 10 % 10, k % 10) / 9 and the logit
A * (2 m.c_k - |c_k|^2) (= -A |m - c_k|^2 + A |m|^2, A = 1000), then Softmax.  So
    class = 100 * round(9 r) + 10 * round(9 g) + round(9 b)   (r, g, b in [0, 1])
and a frame of the exact grid colour (255 * i / 9 per channel, e.g. 0, 28, 57, 85, 113, 142,
170, 198, 227, 255) gets its class with probability > 0.9999.  Names: ``r{i}g{j}b{k}`` except
0 'black', 999 'white', 900 'red', 90 'green', 9 'blue', and 444 "jack-o'-lantern" and
555 "potter's wheel" (apostrophes, so the names dict repr holds double-quoted strings, as the
real ImageNet names do).  Mid grey 128 lies on the 4/5 boundary (128 / 255 * 9 = 4.52 -> 5):
tests use 113 (class 444) or 142 (class 555).
``cls_colour_224_logits.onnx`` is the same without the Softmax (output0 = the logits, values
about -3000..1000, not a distribution): softmax(output0) equals the first model's output.

Anomaly models (brightness is the anomaly)
------------------------------------------
``anomalib_v2_style.onnx``: what Anomalib 2.x ``engine.export(model, ExportType.ONNX)`` writes
(the whole AnomalibModule: pre-processor + model + post-processor), no metadata_props:
    input  ``input``        [batch_size, 3, height, width] float32 RGB in [0, 1] (any size)
    in-graph Resize to 256 x 256 (bilinear, half-pixel, no antialias), raw map
    a = mean over channels (brightness), raw score = max of a;
    post-processor (thresholds and min-max baked in): image/pixel threshold 0.7, min 0.2,
    max 1.0:  n(v) = clamp((v - 0.7) / 0.8 + 0.5, 0, 1);
    outputs ``pred_score``  [batch_size]            float32 n(max a)
            ``pred_label``  [batch_size]            bool    pred_score > 0.5
            ``anomaly_map`` [batch_size, 1, 256, 256] float32 n(a)
            ``pred_mask``   [batch_size, 1, 256, 256] bool    anomaly_map > 0.5
    so a pixel is anomalous when brighter than 0.7 (178.5 / 255).
``anomaly_ours.onnx``: the signature of models/surface-anomaly.onnx (ours): input ``images``
[1, 3, 64, 112] (frame stretched to 112 x 64, RGB [0, 1]), outputs ``pred_score`` [1, 1] =
max of the map and ``anomaly_map`` [1, 1, 64, 112] = 10 * brightness (raw, unnormalised);
metadata task 'anomaly', names {0: 'anomaly'}, imgsz '[64, 112]', image_threshold '7.0',
pixel_threshold '7.0' (run-time thresholds: nothing thresholded in the graph).
``anomaly_cells.onnx``: a map whose defect cells hold a value the frame's colour chooses, for
NaN and infinity tests: input ``images`` [1, 3, 32, 32] (frame stretched, RGB [0, 1]), one
output ``anomaly_map`` [1, 1, 32, 32] = B / G where R > 0.5, else 0 (no image score: the
map's maximum is the score).  A red cell (255, 0, 0) is 0 / 0 = NaN, a magenta one
(255, 0, 255) 1 / 0 = +inf, (255, 255, 230) 0.9; black is 0.  Metadata task 'anomaly',
image_threshold and pixel_threshold '0.5'.

Segmentation model (``seg_squares.onnx``)
-----------------------------------------
The two outputs of an Ultralytics ``-seg`` export (``output0`` [1, 4+nc+32, N], ``output1``
[1, 32, H/4, W/4]) and its ``task`` 'segment' metadata; see ``segment_squares``.

Usage: .venv/bin/python scripts/make_task_test_models.py [--out models/test] [--no-verify]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
DATE = "2025-01-01T00:00:00"
A = 1000.0
SPECIAL_NAMES = {0: "black", 999: "white", 900: "red", 90: "green", 9: "blue",
                 444: "jack-o'-lantern", 555: "potter's wheel"}


def colour_names():
    return {k: SPECIAL_NAMES.get(k, f"r{k // 100}g{k // 10 % 10}b{k % 10}") for k in range(1000)}


def prototypes():
    k = np.arange(1000)
    return (np.stack([k // 100, k // 10 % 10, k % 10], 1) / 9.0).astype(np.float32)  # [1000, 3]


def save(model, path, meta):
    del model.metadata_props[:]
    for key, value in meta.items():
        p = model.metadata_props.add()
        p.key, p.value = key, value
    model.ir_version = IR_VERSION
    model.producer_name = "gst-plugin-defect scripts/make_task_test_models.py"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def colour_classifier(softmax=True):
    c = prototypes()
    w = (2 * A * c.T).astype(np.float32)                  # [3, 1000]
    b = (-A * (c * c).sum(1)).astype(np.float32)          # [1000]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["mean", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["logits" if softmax else "output0"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["output0"], axis=1))
    g = helper.make_graph(
        nodes, "colour_classifier",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 1000])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    names = colour_names()
    meta = {  # the keys, order and value formats (str() of Python values) of an Ultralytics 8.x export
        "description": "Ultralytics YOLOv8n-cls model trained on imagenet (test stand-in: class = "
                       "nearest of 10x10x10 grid colours to the mean RGB of the input"
                       + ("" if softmax else "; logits, no softmax") + ")",
        "author": "Ultralytics",
        "date": DATE,
        "version": "8.3.0",
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "stride": "1",
        "task": "classify",
        "batch": "1",
        "imgsz": "[224, 224]",
        "names": str(names),
        "args": str({"batch": 1, "imgsz": 224, "half": False, "dynamic": False, "simplify": True,
                     "opset": None, "nms": False}),
        "channels": "3",
    }
    return m, meta


def normalise_nodes(prefix, src, dst, thr, lo, hi):
    """Anomalib's PostProcessor._normalize: clamp((v - thr) / (hi - lo) + 0.5, 0, 1)."""
    consts = [numpy_helper.from_array(np.array(v, np.float32), f"{prefix}_{n}")
              for n, v in (("thr", thr), ("range", hi - lo), ("half", 0.5), ("zero", 0.0), ("one", 1.0))]
    nodes = [
        helper.make_node("Sub", [src, f"{prefix}_thr"], [f"{prefix}_a"]),
        helper.make_node("Div", [f"{prefix}_a", f"{prefix}_range"], [f"{prefix}_b"]),
        helper.make_node("Add", [f"{prefix}_b", f"{prefix}_half"], [f"{prefix}_c"]),
        helper.make_node("Clip", [f"{prefix}_c", f"{prefix}_zero", f"{prefix}_one"], [dst]),
    ]
    return nodes, consts


def anomalib_v2_style():
    size = 256
    inits = [numpy_helper.from_array(np.array([0, 1], np.int64), "nc_idx"),
             numpy_helper.from_array(np.array([size, size], np.int64), "target_hw"),
             numpy_helper.from_array(np.array(0.5, np.float32), "label_thr")]
    nodes = [
        # pre-processor: Resize(256, 256, antialias=False) of whatever size comes in (Anomalib's
        # Normalize with ImageNet mean/std would follow; omitted: this stand-in's "model" reads
        # brightness, which the normalisation would only rescale)
        helper.make_node("Shape", ["input"], ["in_shape"]),
        helper.make_node("Gather", ["in_shape", "nc_idx"], ["nc"]),
        helper.make_node("Concat", ["nc", "target_hw"], ["sizes"], axis=0),
        helper.make_node("Resize", ["input", "", "", "sizes"], ["resized"], mode="linear",
                         coordinate_transformation_mode="pytorch_half_pixel"),
        # model: raw anomaly map = brightness, raw score = its maximum
        helper.make_node("ReduceMean", ["resized"], ["raw_map"], axes=[1], keepdims=1),
        helper.make_node("ReduceMax", ["raw_map"], ["raw_score"], axes=[1, 2, 3], keepdims=0),
    ]
    n1, c1 = normalise_nodes("img", "raw_score", "pred_score", 0.7, 0.2, 1.0)
    n2, c2 = normalise_nodes("pix", "raw_map", "anomaly_map", 0.7, 0.2, 1.0)
    nodes += n1 + n2 + [
        helper.make_node("Greater", ["pred_score", "label_thr"], ["pred_label"]),
        helper.make_node("Greater", ["anomaly_map", "label_thr"], ["pred_mask"]),
    ]
    g = helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", 3, "height", "width"])],
        [helper.make_tensor_value_info("pred_score", TensorProto.FLOAT, ["batch_size"]),
         helper.make_tensor_value_info("pred_label", TensorProto.BOOL, ["batch_size"]),
         helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["batch_size", 1, size, size]),
         helper.make_tensor_value_info("pred_mask", TensorProto.BOOL, ["batch_size", 1, size, size])],
        inits + c1 + c2)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)]), {}


def anomaly_ours():
    h, w = 64, 112
    inits = [numpy_helper.from_array(np.array(10.0, np.float32), "ten")]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["bright"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["bright", "ten"], ["anomaly_map"]),
        helper.make_node("ReduceMax", ["anomaly_map"], ["pred_score"], axes=[2, 3], keepdims=0),
    ]
    g = helper.make_graph(
        nodes, "anomaly_ours",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("pred_score", TensorProto.FLOAT, [1, 1]),
         helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, [1, 1, h, w])],
        inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    meta = {
        "description": "test stand-in for surface-anomaly.onnx: anomaly map = 10 x brightness (mean RGB)",
        "author": "gst-plugin-defect",
        "date": DATE,
        "version": "0.0.1",
        "license": "MIT OR Apache-2.0",
        "task": "anomaly",
        "stride": "8",
        "batch": "1",
        "imgsz": f"[{h}, {w}]",
        "names": "{0: 'anomaly'}",
        "channels": "3",
        "preprocess": "resize (stretch, bilinear) to imgsz, RGB, /255",
        "output": "pred_score [1, 1] = max of anomaly_map; anomaly_map [1, 1, H, W] raw scores (not thresholded)",
        "image_threshold": "7.0",
        "pixel_threshold": "7.0",
    }
    return m, meta


def anomaly_cells():
    size = 32
    inits = [numpy_helper.from_array(np.array(v, np.int64), n)
             for n, v in (("c0", [0]), ("c1", [1]), ("c2", [2]), ("c3", [3]), ("ax", [1]))]
    inits += [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("half", 0.5), ("zero", 0.0))]
    nodes = [
        helper.make_node("Slice", ["images", "c0", "c1", "ax"], ["r"]),
        helper.make_node("Slice", ["images", "c1", "c2", "ax"], ["g"]),
        helper.make_node("Slice", ["images", "c2", "c3", "ax"], ["b"]),
        helper.make_node("Greater", ["r", "half"], ["defect"]),
        helper.make_node("Div", ["b", "g"], ["ratio"]),
        helper.make_node("Where", ["defect", "ratio", "zero"], ["anomaly_map"]),
    ]
    g = helper.make_graph(
        nodes, "anomaly_cells",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, [1, 1, size, size])],
        inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    meta = {
        "description": "test model: anomaly map = B / G where R > 0.5, else 0 (NaN, +inf or any value in chosen cells)",
        "author": "gst-plugin-defect",
        "date": DATE,
        "version": "0.0.1",
        "license": "MIT OR Apache-2.0",
        "task": "anomaly",
        "batch": "1",
        "imgsz": f"[{size}, {size}]",
        "names": "{0: 'anomaly'}",
        "channels": "3",
        "image_threshold": "0.5",
        "pixel_threshold": "0.5",
    }
    return m, meta


SEG_SIZE, SEG_CELL, SEG_NM = 320, 40, 32


def segment_squares():
    """``seg_squares.onnx``: the outputs of an Ultralytics ``-seg`` export, from rules.

    Input ``images`` [1, 3, 320, 320]; the input is cut into an 8 x 8 grid of 40-px cells, one
    anchor each (N = 64).  ``output0`` [1, 4 + 2 + 32, 64]: cx, cy = the cell's centre, w = h =
    20 + 60 (r + b) where r, g, b are the cell's mean red, green and blue; class 0 ('red')
    scores r - g, class 1 ('blue') b - g (grey and the letterbox padding score 0); coefficient 0 is 1, coefficient 1 is r - b, the other 30 are 0.
    ``output1`` [1, 32, 80, 80]: prototype 0 = 8 (v - 0.5125) pooled over 4 x 4, v the largest of
    red, green and blue (positive where the frame is brighter than mid grey), prototype 1 = 2 (red - blue) pooled over 4 x 4,
    the other 30 are 0.  So the mask of a red square's cell is where the frame is bright (and
    redder than blue), clipped to the cell's box: boxes and masks are known from the frame.
    """
    n = (SEG_SIZE // SEG_CELL) ** 2
    g = SEG_SIZE // SEG_CELL
    centres = (np.arange(g, dtype=np.float32) + 0.5) * SEG_CELL
    cx = np.tile(centres, g).reshape(1, 1, n)
    cy = np.repeat(centres, g).reshape(1, 1, n)
    inits = [
        numpy_helper.from_array(cx.astype(np.float32), "cx"),
        numpy_helper.from_array(cy.astype(np.float32), "cy"),
        numpy_helper.from_array(np.array(60.0, np.float32), "sixty"),
        numpy_helper.from_array(np.array(20.0, np.float32), "twenty"),
        numpy_helper.from_array(np.ones((1, 1, n), np.float32), "one_row"),
        numpy_helper.from_array(np.zeros((1, SEG_NM - 2, n), np.float32), "zero_rows"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array([1, SEG_NM - 2, SEG_SIZE // 4, SEG_SIZE // 4], np.int64), "protos_shape"),
        numpy_helper.from_array(np.array([1, 1, n], np.int64), "row_shape"),
        numpy_helper.from_array(np.array(0.5125, np.float32), "mid"),
        numpy_helper.from_array(np.array(8.0, np.float32), "eight"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array([0], np.int64), "c0"),
        numpy_helper.from_array(np.array([1], np.int64), "c1"),
        numpy_helper.from_array(np.array([2], np.int64), "c2"),
        numpy_helper.from_array(np.array([3], np.int64), "c3"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Slice", ["images", "c0", "c1", "axis1"], ["red"]),
        helper.make_node("Slice", ["images", "c2", "c3", "axis1"], ["blue"]),
        helper.make_node("Slice", ["images", "c1", "c2", "axis1"], ["green"]),
        helper.make_node("AveragePool", ["green"], ["green_cells"], kernel_shape=[SEG_CELL, SEG_CELL], strides=[SEG_CELL, SEG_CELL]),
        helper.make_node("Reshape", ["green_cells", "row_shape"], ["g"]),
        helper.make_node("ReduceMax", ["images"], ["grey"], axes=[1], keepdims=1),
        helper.make_node("AveragePool", ["red"], ["red_cells"], kernel_shape=[SEG_CELL, SEG_CELL], strides=[SEG_CELL, SEG_CELL]),
        helper.make_node("AveragePool", ["blue"], ["blue_cells"], kernel_shape=[SEG_CELL, SEG_CELL], strides=[SEG_CELL, SEG_CELL]),
        helper.make_node("Reshape", ["red_cells", "row_shape"], ["r"]),
        helper.make_node("Reshape", ["blue_cells", "row_shape"], ["b"]),
        helper.make_node("Add", ["r", "b"], ["rb"]),
        helper.make_node("Mul", ["rb", "sixty"], ["rb60"]),
        helper.make_node("Add", ["rb60", "twenty"], ["side"]),
        helper.make_node("Sub", ["r", "b"], ["r_minus_b"]),
        helper.make_node("Sub", ["r", "g"], ["red_score"]),
        helper.make_node("Sub", ["b", "g"], ["blue_score"]),
        helper.make_node("Concat", ["cx", "cy", "side", "side", "red_score", "blue_score", "one_row", "r_minus_b", "zero_rows"],
                         ["output0"], axis=1),
        helper.make_node("Sub", ["grey", "mid"], ["grey_c"]),
        helper.make_node("Mul", ["grey_c", "eight"], ["grey8"]),
        helper.make_node("AveragePool", ["grey8"], ["p0"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Sub", ["red", "blue"], ["rmb"]),
        helper.make_node("Mul", ["rmb", "two"], ["rmb2"]),
        helper.make_node("AveragePool", ["rmb2"], ["p1"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Expand", ["zero", "protos_shape"], ["zero_protos"]),
        helper.make_node("Concat", ["p0", "p1", "zero_protos"], ["output1"], axis=1),
    ]
    q = SEG_SIZE // 4
    graph = helper.make_graph(
        nodes, "seg_squares",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SEG_SIZE, SEG_SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + 2 + SEG_NM, n]),
         helper.make_tensor_value_info("output1", TensorProto.FLOAT, [1, SEG_NM, q, q])],
        inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    meta = {
        "description": "test stand-in for an Ultralytics -seg export: cells of red or blue squares, masks where bright",
        "author": "gst-plugin-defect",
        "date": DATE,
        "version": "0.0.1",
        "license": "MIT OR Apache-2.0",
        "stride": "32",
        "task": "segment",
        "batch": "1",
        "imgsz": f"[{SEG_SIZE}, {SEG_SIZE}]",
        "names": "{0: 'red', 1: 'blue'}",
        "channels": "3",
    }
    return m, meta


FILES = {
    "cls_colour_224.onnx": lambda: colour_classifier(True),
    "cls_colour_224_logits.onnx": lambda: colour_classifier(False),
    "anomalib_v2_style.onnx": anomalib_v2_style,
    "anomaly_ours.onnx": anomaly_ours,
    "anomaly_cells.onnx": anomaly_cells,
    "seg_squares.onnx": segment_squares,
}


def verify(out):
    import onnxruntime as ort

    def run(name, feed):
        s = ort.InferenceSession(os.path.join(out, name), providers=["CPUExecutionProvider"])
        return s.run(None, feed)

    x = np.zeros((1, 3, 224, 224), np.float32)
    x[0, 0], x[0, 1], x[0, 2] = 227 / 255, 57 / 255, 142 / 255   # grid colour (8, 2, 5)
    p = run("cls_colour_224.onnx", {"images": x})[0]
    lg = run("cls_colour_224_logits.onnx", {"images": x})[0]
    assert p.shape == (1, 1000) and int(p.argmax()) == 825 and p.max() > 0.9999, p.max()
    e = np.exp(lg - lg.max())
    assert np.allclose(e / e.sum(), p, atol=1e-6) and int(lg.argmax()) == 825
    img = np.zeros((1, 3, 300, 500), np.float32)
    img[:, :, 100:200, 200:300] = 0.9
    score, label, amap, mask = run("anomalib_v2_style.onnx", {"input": img})
    assert score.shape == (1,) and label.dtype == bool and amap.shape == (1, 1, 256, 256) and mask.dtype == bool
    assert abs(score[0] - 0.75) < 1e-5 and label[0] and abs(amap.min()) < 1e-6
    y = np.zeros((1, 3, 64, 112), np.float32)
    y[..., 10:20, 30:40] = 0.8
    s, m = run("anomaly_ours.onnx", {"images": y})
    assert s.shape == (1, 1) and m.shape == (1, 1, 64, 112) and abs(s[0, 0] - 8.0) < 1e-5
    c = np.zeros((1, 3, 32, 32), np.float32)
    c[0, 0, 4:8, 4:8], c[0, 2, 4:8, 4:8] = 1.0, 1.0          # magenta: +inf
    c[0, 0, 20:24, 20:24] = 1.0                              # red: NaN
    c[0, 0:2, 10:12, 10:12], c[0, 2, 10:12, 10:12] = 1.0, 0.9  # 0.9
    (cm,) = run("anomaly_cells.onnx", {"images": c})
    assert cm.shape == (1, 1, 32, 32)
    assert np.isposinf(cm[0, 0, 4:8, 4:8]).all() and np.isnan(cm[0, 0, 20:24, 20:24]).all()
    assert np.allclose(cm[0, 0, 10:12, 10:12], 0.9) and np.isfinite(cm).sum() == 32 * 32 - 32
    z = np.zeros((1, 3, SEG_SIZE, SEG_SIZE), np.float32)
    z[0, 0, 40:80, 80:120] = 1.0                             # a red cell: (row 1, column 2)
    o0, o1 = run("seg_squares.onnx", {"images": z})
    assert o0.shape == (1, 38, 64) and o1.shape == (1, 32, 80, 80)
    k = 1 * 8 + 2
    assert np.allclose(o0[0, :6, k], [100, 60, 80, 80, 1, 0]) and o0[0, 6, k] == 1 and o0[0, 7, k] == 1
    assert o1[0, 0, 10:20, 20:30].min() > 0 and o1[0, 0, 0:10].max() < 0
    print("verified: colour classifier -> 825 (p > 0.9999), logits softmax equal, anomalib-style score 0.75, "
          "ours score 8.0")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/test")
    ap.add_argument("--no-verify", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name, make in FILES.items():
        model, meta = make()
        path = os.path.join(a.out, name)
        save(model, path, meta)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    if not a.no_verify:
        verify(a.out)


if __name__ == "__main__":
    main()
