#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Build the tiny, deterministic YOLO-style test detectors in models/test/.

No training, no downloads: every weight is a fixed constant, so re-running the
script produces byte-identical files.  Written from scratch with the
``onnx.helper`` API (opset 17, IR version 8).

"Squares" detector (shared by all the good models)
---------------------------------------------------
* Input ``images``: float32 NCHW RGB in [0, 1], shape [1, 3, 256, 256].
* A 1x1 Conv computes two per-pixel features, already scaled for the sigmoid
  (the affine map commutes with the average pool):
      white = (R + G + B) / 3          -> 40 * white - 34
      red   = R - (G + B) / 2          -> 40 * red   - 34
* AveragePool kernel 32x32, stride 8, no padding -> 29 x 29 windows.
  Window (row i, col j) covers x in [8j, 8j+32), y in [8i, 8i+32) of the model
  input; its box is cx = 8j + 16, cy = 8i + 16, w = h = 32 (model-input
  pixels).  Anchors are row-major: k = i * 29 + j, N = 841.
* Sigmoid -> s0 = sigmoid(40 * (avgWhite - 0.85))  class 0 ``white_square``
             s1 = sigmoid(40 * (avgRed   - 0.85))  class 1 ``red_square``
  A 32x32 white square exactly on a window gives s0 = sigmoid(6) = 0.99753,
  s1 ~ 0; a pure red (255, 0, 0) square the reverse.  A window shifted by 8 px
  covers 75 % of the square -> sigmoid(-4) = 0.018; letterbox grey (114) gives
  sigmoid(-16) ~ 1e-7; black gives sigmoid(-34) ~ 2e-15.

Files
-----
squares_v8.onnx          output0 [1, 6, 841]   rows cx, cy, w, h, s0, s1
squares_v5.onnx          output0 [1, 841, 7]   cx, cy, w, h, obj, c0, c1
                         obj = max(s0, s1); c_k = s_k / (obj + 1e-9), so the
                         YOLOv5 confidence obj * c_k = s_k * obj / (obj + 1e-9)
                         which equals s_k to within 1e-9 relative (for obj >=
                         1e-3) and is always <= s_k; argmax_k(obj*c_k) is the
                         argmax of s_k.
squares_e2e.onnx         output0 [1, 100, 6]   x1, y1, x2, y2, score, class
                         TopK (K = 100, largest, sorted descending) over all
                         841 * 2 (anchor, class) scores, flattened as
                         index = k * 2 + class.  No NMS inside: an exactly
                         aligned square produces just one candidate above 0.25
                         (its 8-px-shifted neighbours score sigmoid(-4) = 0.018).
                         Metadata end2end = 'True'.
squares_v8_dynamic.onnx  input [1, 3, 'height', 'width'], output [1, 6, 'anchors'].
                         Grid centres are computed in-graph from the pooled
                         shape (Shape -> Range), so it is correct for any size
                         >= 32 (anchors = ((H-32)//8+1) * ((W-32)//8+1), row-major);
                         metadata imgsz '[256, 256]' is the intended size.
squares_v8_batch.onnx    squares_v8 with a dynamic batch dimension: input ['batch', 3, 256, 256],
                         output ['batch', 6, 841] (the grid boxes expanded to the batch); for
                         defectdetect's batch-size (cross-stream batching).
squares_v8_gray.onnx     input [1, 1, 256, 256], output [1, 5, 841]; single class
                         s0 = sigmoid(40 * (avgGray - 0.85)), names {0: 'white_square'}.
bad_not_image.onnx       input [1, 10] float -> output [1, 4] (not image-like).
bad_layout.onnx          image input [1, 3, 256, 256] -> output [1, 2, 3, 4]
                         (4-D, no known layout).
nan_v8.onnx              a fixed [1, 6, 4] YOLOv8 output holding NaN and Inf.
squares_v8_int8_full.onnx  squares_v8 quantised in QDQ form as an INT8 copy is: input and the
                         convolution's output uint8 per tensor, weights int8 per channel over the
                         full range (|w| = 127), bias int32. Its u8 x s8 products can saturate on
                         x86 CPUs without VNNI: defectdetect warns there (int8-risk).
squares_v8_int8_7bit.onnx  the same with 7-bit weights (|w| <= 64, reduce_range): no warning.

Robustness models (issue 14), all tiny:
slow_e2e.onnx            end-to-end [1, 8, 6]: two fixed detections on every frame
                         (white_square at (16, 16)-(80, 80) 0.9, red_square at
                         (160, 160)-(224, 224) 0.9) after a chain of SLOW_STEPS
                         512x512 MatMul + Tanh nodes on a matrix grown from the
                         image mean (weights made in-graph by ConstantOfShape): a
                         slow model (about 0.1-1 s a run on one thread) for the
                         asynchronous-inference and race tests.
huge_input.onnx          input [1, 3, 100000, 100000] (120 GB as float32): must be
                         refused by max-input-pixels before any allocation.
huge_imgsz.onnx          squares_v8_dynamic with imgsz metadata [100000, 100000].
zero_dim.onnx            input [1, 3, 0, 256]: a zero dimension.
nonames_v8.onnx          squares_v8 without `names` metadata (classes class0, class1).
badnames_v8.onnx         fixed YOLOv8 output [1, 6, 8]; names "{0: 'a', 1: " (malformed).
nulnames_v8.onnx         the same; names holds a NUL byte inside a quoted name.
nonutf8names_v8.onnx     the same; names holds the bytes ff fe (not UTF-8).
e2e_bad_values.onnx      fixed end-to-end output [1, 8, 6]: a row with class 2^31,
                         an inverted box, a score of 1e30 (class 1) and a valid
                         class-0 detection at 0.9; names {0: 'white_square', 1: 'red_square'}.
border_probe.onnx        end-to-end [1, 8, 6]: one detection (0, 0)-(8, 8) of class 0
                         whose score is the mean of the top-left 8x8 of the input: the
                         letterbox border there gives 114/255 = 0.447 when grey, 0 when
                         black (tests that every model swap re-plans the letterbox).

Usage: .venv/bin/python scripts/make_test_models.py [--out models/test] [--no-verify]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
IMG = 256
KERNEL = 32
STRIDE = 8
GRID = (IMG - KERNEL) // STRIDE + 1  # 29
N_ANCHORS = GRID * GRID  # 841
GAIN = 40.0
THRESH = 0.85
TOPK = 100

NAMES2 = "{0: 'white_square', 1: 'red_square'}"
NAMES1 = "{0: 'white_square'}"


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def init(name: str, arr) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr), name=name)


def i64(name: str, values) -> onnx.TensorProto:
    return init(name, np.asarray(values, dtype=np.int64))


def f32(name: str, values) -> onnx.TensorProto:
    return init(name, np.asarray(values, dtype=np.float32))


def grid_boxes_cxcywh() -> np.ndarray:
    """[4, N] rows cx, cy, w, h for the 29x29 window grid, row-major."""
    idx = np.arange(GRID, dtype=np.float32)
    cy, cx = np.meshgrid(idx * STRIDE + KERNEL / 2, idx * STRIDE + KERNEL / 2, indexing="ij")
    w = np.full(N_ANCHORS, KERNEL, dtype=np.float32)
    return np.stack([cx.reshape(-1), cy.reshape(-1), w, w]).astype(np.float32)


def feature_conv_weights(channels: int):
    """1x1 conv producing 40*feature - 34 (sigmoid argument before pooling)."""
    if channels == 3:
        w = np.array([[1 / 3, 1 / 3, 1 / 3], [1.0, -0.5, -0.5]], dtype=np.float64)
    else:
        w = np.array([[1.0]], dtype=np.float64)
    w = (w * GAIN).astype(np.float32).reshape(w.shape[0], channels, 1, 1)
    b = np.full(w.shape[0], -GAIN * THRESH, dtype=np.float32)
    return w, b


def score_nodes(channels: int, flat: bool = True):
    """Nodes images -> 'scores' [1, nc, N] (or [1, nc, gh, gw] if not flat)."""
    w, b = feature_conv_weights(channels)
    nc = w.shape[0]
    inits = [f32("feat_w", w), f32("feat_b", b)]
    nodes = [
        helper.make_node("Conv", ["images", "feat_w", "feat_b"], ["feat"], name="feat_conv"),
        helper.make_node(
            "AveragePool",
            ["feat"],
            ["pooled"],
            name="window_pool",
            kernel_shape=[KERNEL, KERNEL],
            strides=[STRIDE, STRIDE],
            pads=[0, 0, 0, 0],
        ),
        helper.make_node("Sigmoid", ["pooled"], ["scores_grid"], name="score_sigmoid"),
    ]
    if flat:
        inits.append(i64("scores_shape", [1, nc, -1]))
        nodes.append(helper.make_node("Reshape", ["scores_grid", "scores_shape"], ["scores"], name="scores_flat"))
    return nodes, inits, nc


def finish(graph_name, nodes, inits, inp, out, names, extra_meta=None, description=""):
    graph = helper.make_graph(nodes, graph_name, [inp], [out], initializer=inits)
    model = helper.make_model(
        graph,
        producer_name="gst-plugin-defect-make_test_models",
        producer_version="1",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    model.doc_string = description
    meta = {
        "description": description,
        "version": "1",
        "task": "detect",
        "stride": "8",
        "imgsz": f"[{IMG}, {IMG}]",
    }
    if names is not None:
        meta["names"] = names
    if extra_meta:
        meta.update(extra_meta)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def image_input(channels=3, h=IMG, w=IMG):
    return helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, channels, h, w])


# --------------------------------------------------------------------------- #
# models
# --------------------------------------------------------------------------- #
def make_v8(channels=3):
    nodes, inits, nc = score_nodes(channels)
    inits.append(f32("grid_boxes", grid_boxes_cxcywh()[None]))  # [1, 4, N]
    nodes.append(helper.make_node("Concat", ["grid_boxes", "scores"], ["output0"], name="concat_out", axis=1))
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + nc, N_ANCHORS])
    if channels == 3:
        desc = "Test squares detector, YOLOv8 layout [1, 6, 841] (cx, cy, w, h, s_white, s_red)"
        return finish("squares_v8", nodes, inits, image_input(3), out, NAMES2, description=desc)
    desc = "Test squares detector, 1-channel gray input, YOLOv8 layout [1, 5, 841]"
    return finish("squares_v8_gray", nodes, inits, image_input(1), out, NAMES1, description=desc)


def make_v8_int8(max_q: int):
    """squares_v8 with a QDQ convolution: x -> Q/DQ (u8) -> Conv(DQ(int8 w), DQ(int32 b)) ->
    Q/DQ (u8) -> pool -> sigmoid; per-channel symmetric weights whose largest |w| is max_q."""
    w, b = feature_conv_weights(3)
    x_scale = 1.0 / 255.0
    w_scale = (np.abs(w).reshape(w.shape[0], -1).max(1) / max_q).astype(np.float32)
    w_q = np.round(w / w_scale[:, None, None, None]).astype(np.int8)
    b_scale = (x_scale * w_scale).astype(np.float32)
    b_q = np.round(b / b_scale).astype(np.int32)
    y_scale, y_zp = np.float32(40.0 / 255.0), np.uint8(217)  # feat in [-34, 6]
    inits = [
        f32("x_scale", x_scale), init("x_zp", np.uint8(0)),
        init("w_q", w_q), f32("w_scale", w_scale), init("w_zp", np.zeros(w.shape[0], np.int8)),
        init("b_q", b_q), f32("b_scale", b_scale), init("b_zp", np.zeros(w.shape[0], np.int32)),
        f32("y_scale", y_scale), init("y_zp", y_zp),
        i64("scores_shape", [1, 2, -1]), f32("grid_boxes", grid_boxes_cxcywh()[None]),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["images", "x_scale", "x_zp"], ["x_q"], name="x_quant"),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x_dq"], name="x_dequant"),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_dq"], name="w_dequant", axis=0),
        helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zp"], ["b_dq"], name="b_dequant", axis=0),
        helper.make_node("Conv", ["x_dq", "w_dq", "b_dq"], ["feat_f"], name="feat_conv"),
        helper.make_node("QuantizeLinear", ["feat_f", "y_scale", "y_zp"], ["feat_q"], name="feat_quant"),
        helper.make_node("DequantizeLinear", ["feat_q", "y_scale", "y_zp"], ["feat"], name="feat_dequant"),
        helper.make_node("AveragePool", ["feat"], ["pooled"], name="window_pool",
                         kernel_shape=[KERNEL, KERNEL], strides=[STRIDE, STRIDE], pads=[0, 0, 0, 0]),
        helper.make_node("Sigmoid", ["pooled"], ["scores_grid"], name="score_sigmoid"),
        helper.make_node("Reshape", ["scores_grid", "scores_shape"], ["scores"], name="scores_flat"),
        helper.make_node("Concat", ["grid_boxes", "scores"], ["output0"], name="concat_out", axis=1),
    ]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, N_ANCHORS])
    how = "full range (|w| <= 127)" if max_q == 127 else f"{max_q.bit_length() }-bit range (|w| <= {max_q})"
    desc = f"Test squares detector, QDQ int8: weights int8 per channel, {how}; YOLOv8 layout [1, 6, 841]"
    return finish(f"squares_v8_int8_{max_q}", nodes, inits, image_input(3), out, NAMES2,
                  extra_meta={"quantization": f"QDQ, weights int8 per channel, {how}, activations uint8"},
                  description=desc)


def make_v8_batch():
    nodes, inits, nc = score_nodes(3, flat=False)
    inits += [
        i64("scores_shape_b", [0, nc, -1]),  # 0: keep the batch dimension
        f32("grid_boxes", grid_boxes_cxcywh()[None]),  # [1, 4, N]
        i64("b_start", [0]),
        i64("b_end", [1]),
        i64("box_rows", [4, N_ANCHORS]),
    ]
    nodes += [
        helper.make_node("Reshape", ["scores_grid", "scores_shape_b"], ["scores"], name="scores_flat"),
        helper.make_node("Shape", ["scores"], ["sshape"], name="sshape"),
        helper.make_node("Slice", ["sshape", "b_start", "b_end"], ["bdim"], name="bdim"),
        helper.make_node("Concat", ["bdim", "box_rows"], ["boxes_shape"], name="boxes_shape", axis=0),
        helper.make_node("Expand", ["grid_boxes", "boxes_shape"], ["boxes"], name="boxes"),
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], name="concat_out", axis=1),
    ]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, IMG, IMG])
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + nc, N_ANCHORS])
    desc = "Test squares detector, dynamic batch: input [batch, 3, 256, 256], YOLOv8 layout [batch, 6, 841]"
    return finish("squares_v8_batch", nodes, inits, inp, out, NAMES2, description=desc)


def make_v5():
    nodes, inits, nc = score_nodes(3)
    inits += [
        f32("grid_boxes", grid_boxes_cxcywh()[None]),
        f32("eps", np.array(1e-9, dtype=np.float32)),
    ]
    nodes += [
        helper.make_node("ReduceMax", ["scores"], ["obj"], name="obj_max", axes=[1], keepdims=1),
        helper.make_node("Add", ["obj", "eps"], ["obj_eps"], name="obj_eps"),
        helper.make_node("Div", ["scores", "obj_eps"], ["cls"], name="cls_div"),
        helper.make_node("Concat", ["grid_boxes", "obj", "cls"], ["out_t"], name="concat_out", axis=1),
        helper.make_node("Transpose", ["out_t"], ["output0"], name="to_rows", perm=[0, 2, 1]),
    ]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, N_ANCHORS, 5 + nc])
    desc = (
        "Test squares detector, YOLOv5 layout [1, 841, 7] (cx, cy, w, h, obj, c0, c1); "
        "obj = max(s0, s1), c_k = s_k / (obj + 1e-9)"
    )
    return finish("squares_v5", nodes, inits, image_input(3), out, NAMES2, description=desc)


def make_e2e():
    nodes, inits, nc = score_nodes(3)
    b = grid_boxes_cxcywh()
    xyxy = np.stack([b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2], axis=1)  # [N, 4]
    inits += [
        f32("boxes_xyxy", xyxy.astype(np.float32)),
        i64("flat_shape", [1, -1]),
        i64("k", [TOPK]),
        i64("nc", np.array(nc, dtype=np.int64)),
        i64("axis_last", [-1]),
    ]
    nodes += [
        # [1, nc, N] -> [1, N, nc] -> [1, N*nc]; flat index = anchor * nc + class
        helper.make_node("Transpose", ["scores"], ["scores_t"], name="scores_t", perm=[0, 2, 1]),
        helper.make_node("Reshape", ["scores_t", "flat_shape"], ["scores_all"], name="scores_all"),
        helper.make_node(
            "TopK", ["scores_all", "k"], ["top_scores", "top_idx"], name="topk", axis=-1, largest=1, sorted=1
        ),
        helper.make_node("Div", ["top_idx", "nc"], ["anchor_idx"], name="anchor_idx"),  # int64 floor div
        helper.make_node("Mod", ["top_idx", "nc"], ["class_idx"], name="class_idx"),
        helper.make_node("Gather", ["boxes_xyxy", "anchor_idx"], ["top_boxes"], name="gather_boxes", axis=0),
        helper.make_node("Cast", ["class_idx"], ["class_f"], name="class_f", to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["top_scores", "axis_last"], ["score_col"], name="score_col"),
        helper.make_node("Unsqueeze", ["class_f", "axis_last"], ["class_col"], name="class_col"),
        helper.make_node("Concat", ["top_boxes", "score_col", "class_col"], ["output0"], name="concat_out", axis=2),
    ]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, TOPK, 6])
    desc = (
        "Test squares detector, end-to-end layout [1, 100, 6] (x1, y1, x2, y2, score, class); "
        "TopK over all (anchor, class) scores, no NMS"
    )
    return finish(
        "squares_e2e", nodes, inits, image_input(3), out, NAMES2, extra_meta={"end2end": "True"}, description=desc
    )


def make_v8_dynamic():
    nodes, inits, nc = score_nodes(3)
    inits += [
        i64("idx_h", np.array(2, dtype=np.int64)),
        i64("idx_w", np.array(3, dtype=np.int64)),
        f32("f_start", np.array(0, dtype=np.float32)),
        f32("f_delta", np.array(1, dtype=np.float32)),
        f32("f_stride", np.array(STRIDE, dtype=np.float32)),
        f32("f_half", np.array(KERNEL / 2, dtype=np.float32)),
        f32("f_zero", np.array(0, dtype=np.float32)),
        f32("f_size", np.array(KERNEL, dtype=np.float32)),
        i64("ax0", [0]),
        i64("ax1", [1]),
        i64("row_shape", [1, 1, -1]),
    ]
    nodes += [
        helper.make_node("Shape", ["scores_grid"], ["pshape"], name="pshape"),
        helper.make_node("Gather", ["pshape", "idx_h"], ["gh_i"], name="gh_i", axis=0),
        helper.make_node("Gather", ["pshape", "idx_w"], ["gw_i"], name="gw_i", axis=0),
        helper.make_node("Cast", ["gh_i"], ["gh"], name="gh", to=TensorProto.FLOAT),
        helper.make_node("Cast", ["gw_i"], ["gw"], name="gw", to=TensorProto.FLOAT),
        helper.make_node("Range", ["f_start", "gh", "f_delta"], ["ri"], name="ri"),
        helper.make_node("Range", ["f_start", "gw", "f_delta"], ["rj"], name="rj"),
        helper.make_node("Mul", ["ri", "f_stride"], ["ri8"], name="ri8"),
        helper.make_node("Mul", ["rj", "f_stride"], ["rj8"], name="rj8"),
        helper.make_node("Add", ["ri8", "f_half"], ["cy_1d"], name="cy_1d"),
        helper.make_node("Add", ["rj8", "f_half"], ["cx_1d"], name="cx_1d"),
        helper.make_node("Unsqueeze", ["cy_1d", "ax1"], ["cy_col"], name="cy_col"),  # [gh, 1]
        helper.make_node("Unsqueeze", ["cx_1d", "ax0"], ["cx_row"], name="cx_row"),  # [1, gw]
        helper.make_node("Mul", ["cy_col", "f_zero"], ["zero_col"], name="zero_col"),
        helper.make_node("Mul", ["cx_row", "f_zero"], ["zero_row"], name="zero_row"),
        helper.make_node("Add", ["cx_row", "zero_col"], ["cx_g"], name="cx_g"),  # [gh, gw]
        helper.make_node("Add", ["cy_col", "zero_row"], ["cy_g"], name="cy_g"),  # [gh, gw]
        helper.make_node("Reshape", ["cx_g", "row_shape"], ["cx"], name="cx"),  # [1, 1, N]
        helper.make_node("Reshape", ["cy_g", "row_shape"], ["cy"], name="cy"),
        helper.make_node("Mul", ["cx", "f_zero"], ["zero_n"], name="zero_n"),
        helper.make_node("Add", ["zero_n", "f_size"], ["wh"], name="wh"),
        helper.make_node("Concat", ["cx", "cy", "wh", "wh", "scores"], ["output0"], name="concat_out", axis=1),
    ]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "height", "width"])
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + nc, "anchors"])
    desc = (
        "Test squares detector, dynamic input [1, 3, height, width], YOLOv8 layout [1, 6, anchors]; "
        "grid computed in-graph; use imgsz [256, 256]"
    )
    return finish("squares_v8_dynamic", nodes, inits, inp, out, NAMES2, description=desc)


def make_bad_not_image():
    w = (np.arange(40, dtype=np.float32).reshape(10, 4) / 40.0).astype(np.float32)
    inits = [f32("w", w)]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")]
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    return finish("bad_not_image", nodes, inits, inp, out, NAMES2, description="Invalid detector: input [1, 10]")


def make_bad_layout():
    inits = [i64("shape_a", [1, 1, 3, 1]), i64("shape_b", [1, 2, 3, 4])]
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["g"], name="gap"),  # [1, 3, 1, 1]
        helper.make_node("Reshape", ["g", "shape_a"], ["g2"], name="reshape"),  # [1, 1, 3, 1]
        helper.make_node("Expand", ["g2", "shape_b"], ["output0"], name="expand"),  # [1, 2, 3, 4]
    ]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 2, 3, 4])
    return finish(
        "bad_layout", nodes, inits, image_input(3), out, NAMES2, description="Invalid detector: 4-D output [1, 2, 3, 4]"
    )


def make_nan_v8():
    """A [1, 6, 4] YOLOv8-layout output with NaN and infinite values: anchor 0 has a NaN box,
    anchor 1 an infinite score, anchor 2 an infinite width, anchor 3 is a valid box (class 1,
    0.9). The constant is added to 0 x mean(image) so that the output depends on the input."""
    nan, inf = float("nan"), float("inf")
    table = np.array(
        [
            [nan, 100.0, 100.0, 128.0],  # cx
            [100.0, 100.0, 100.0, 128.0],  # cy
            [20.0, 20.0, inf, 32.0],  # w
            [20.0, 20.0, 20.0, 32.0],  # h
            [0.9, inf, 0.9, 0.1],  # class 0
            [0.1, 0.1, 0.1, 0.9],  # class 1
        ],
        dtype=np.float32,
    ).reshape(1, 6, 4)
    inits = [f32("table", table), f32("zero", np.zeros((1,), np.float32))]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0, name="mean"),
        helper.make_node("Mul", ["m", "zero"], ["z"], name="times_zero"),
        helper.make_node("Add", ["table", "z"], ["output0"], name="add"),
    ]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 4])
    return finish("nan_v8", nodes, inits, image_input(3), out, NAMES2, description="Outputs NaN and Inf (robustness tests)")


SLOW_STEPS = 40
SLOW_SIDE = 512
# Rows of the fixed end-to-end outputs: more than 6, so that [1, K, 6] reads as end-to-end by
# its shape alone (rows past the detections have score 0).
E2E_ROWS = 8


def constant_output(name, table, names, description, extra_meta=None, channels=3):
    """A model whose output is `table` + 0 * mean(image): it depends on the input, so that
    ONNX Runtime runs it, but its values are fixed."""
    table = np.asarray(table, dtype=np.float32)
    inits = [f32("table", table), f32("zero", np.zeros((1,), np.float32))]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0, name="mean"),
        helper.make_node("Mul", ["m", "zero"], ["z"], name="times_zero"),
        helper.make_node("Add", ["table", "z"], ["output0"], name="add"),
    ]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(table.shape))
    return finish(name, nodes, inits, image_input(channels), out, names, extra_meta, description=description)


def make_slow_e2e():
    """Two fixed detections after SLOW_STEPS heavy MatMul + Tanh nodes."""
    table = np.zeros((1, E2E_ROWS, 6), np.float32)
    table[0, :2] = [[16, 16, 80, 80, 0.9, 0], [160, 160, 224, 224, 0.9, 1]]
    inits = [
        f32("table", table),
        f32("zero", np.zeros((1,), np.float32)),
        i64("side", [SLOW_SIDE, SLOW_SIDE]),
        i64("one_one", [1, 1]),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0, name="mean"),
        helper.make_node("Reshape", ["m", "one_one"], ["m2"], name="m2"),
        helper.make_node("Expand", ["m2", "side"], ["x0"], name="grow"),
        helper.make_node(
            "ConstantOfShape",
            ["side"],
            ["w"],
            name="weights",
            value=numpy_helper.from_array(np.array([1.0 / SLOW_SIDE], dtype=np.float32)),
        ),
    ]
    x = "x0"
    for k in range(SLOW_STEPS):
        nodes.append(helper.make_node("MatMul", [x, "w"], [f"p{k}"], name=f"matmul{k}"))
        nodes.append(helper.make_node("Tanh", [f"p{k}"], [f"x{k + 1}"], name=f"tanh{k}"))
        x = f"x{k + 1}"
    nodes += [
        helper.make_node("ReduceMean", [x], ["r"], keepdims=0, name="reduce"),
        helper.make_node("Mul", ["r", "zero"], ["z"], name="times_zero"),
        helper.make_node("Add", ["table", "z"], ["output0"], name="add"),
    ]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, E2E_ROWS, 6])
    desc = f"Slow test model: {SLOW_STEPS} MatMul {SLOW_SIDE}x{SLOW_SIDE} + Tanh, then two fixed end-to-end detections"
    return finish("slow_e2e", nodes, inits, image_input(3), out, NAMES2, {"end2end": "True"}, description=desc)


def make_huge_input():
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0, name="mean"),
        helper.make_node("Add", ["table", "m"], ["output0"], name="add"),
    ]
    inits = [f32("table", np.zeros((1, 6, 1), np.float32))]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 100000, 100000])
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 1])
    return finish(
        "huge_input", nodes, inits, inp, out, NAMES2, description="Declares a [1, 3, 100000, 100000] input (120 GB)"
    )


def make_huge_imgsz():
    model = make_v8_dynamic()
    helper.set_model_props(
        model, {**{p.key: p.value for p in model.metadata_props}, "imgsz": "[100000, 100000]"}
    )
    return model


def make_zero_dim():
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0, name="mean"),
        helper.make_node("Add", ["table", "m"], ["output0"], name="add"),
    ]
    inits = [f32("table", np.zeros((1, 6, 1), np.float32))]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 0, 256])
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 1])
    return finish("zero_dim", nodes, inits, inp, out, NAMES2, description="Input with a dimension of 0")


def make_nonames_v8():
    model = make_v8(3)
    keep = [(p.key, p.value) for p in model.metadata_props if p.key != "names"]
    del model.metadata_props[:]
    for key, value in keep:
        model.metadata_props.add(key=key, value=value)
    return model


# [1, 6, 8]: one class-0 box at 0.9, seven candidates below any threshold (more anchors than
# rows, so that the layout reads as YOLOv8).
ONE_V8 = [[
    [128.0] + [64.0] * 7,
    [128.0] + [64.0] * 7,
    [32.0] * 8,
    [32.0] * 8,
    [0.9] + [0.01] * 7,
    [0.1] + [0.01] * 7,
]]


def make_badnames_v8():
    return constant_output("badnames_v8", ONE_V8, "{0: 'a', 1: ", "names metadata malformed")


def make_nulnames_v8():
    return constant_output("nulnames_v8", ONE_V8, "{0: 'a\0b', 1: 'c'}", "names metadata holding a NUL")


# Replaced by bytes that are not UTF-8 after serialisation (same length).
NON_UTF8_PLACEHOLDER = "{0: 'QQ', 1: 'c'}"


def make_nonutf8names_v8():
    return constant_output("nonutf8names_v8", ONE_V8, NON_UTF8_PLACEHOLDER, "names metadata not UTF-8")


def make_e2e_bad_values():
    table = np.zeros((1, E2E_ROWS, 6), np.float32)
    table[0, :4] = [
        [10, 10, 40, 40, 0.9, 2147483648.0],  # class 2^31
        [90, 10, 60, 40, 0.9, 0],  # inverted (x2 < x1)
        [100, 100, 140, 140, 1e30, 1],  # score 1e30
        [160, 160, 224, 224, 0.9, 0],  # valid
    ]
    return constant_output(
        "e2e_bad_values", table, NAMES2, "End-to-end output with bad values", extra_meta={"end2end": "True"}
    )


def make_border_probe():
    inits = [
        i64("starts", [0, 0]),
        i64("ends", [8, 8]),
        i64("axes", [2, 3]),
        f32("table", np.pad(np.array([[[0, 0, 8, 8, 0, 0]]], np.float32), ((0, 0), (0, E2E_ROWS - 1), (0, 0)))),
        f32("onehot", np.pad(np.array([[[0, 0, 0, 0, 1, 0]]], np.float32), ((0, 0), (0, E2E_ROWS - 1), (0, 0)))),
    ]
    nodes = [
        helper.make_node("Slice", ["images", "starts", "ends", "axes"], ["corner"], name="corner"),
        helper.make_node("ReduceMean", ["corner"], ["score"], keepdims=0, name="mean"),
        helper.make_node("Mul", ["onehot", "score"], ["scored"], name="scored"),
        helper.make_node("Add", ["table", "scored"], ["output0"], name="add"),
    ]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, E2E_ROWS, 6])
    desc = "One end-to-end detection scored by the mean of the input's top-left 8x8 (letterbox border probe)"
    return finish("border_probe", nodes, inits, image_input(3), out, NAMES2, {"end2end": "True"}, description=desc)


MODELS = {
    "squares_v8.onnx": lambda: make_v8(3),
    "squares_v5.onnx": make_v5,
    "squares_e2e.onnx": make_e2e,
    "squares_v8_dynamic.onnx": make_v8_dynamic,
    "squares_v8_batch.onnx": make_v8_batch,
    "squares_v8_gray.onnx": lambda: make_v8(1),
    "squares_v8_int8_full.onnx": lambda: make_v8_int8(127),
    "squares_v8_int8_7bit.onnx": lambda: make_v8_int8(64),
    "bad_not_image.onnx": make_bad_not_image,
    "bad_layout.onnx": make_bad_layout,
    "nan_v8.onnx": make_nan_v8,
    "slow_e2e.onnx": make_slow_e2e,
    "huge_input.onnx": make_huge_input,
    "huge_imgsz.onnx": make_huge_imgsz,
    "zero_dim.onnx": make_zero_dim,
    "nonames_v8.onnx": make_nonames_v8,
    "badnames_v8.onnx": make_badnames_v8,
    "nulnames_v8.onnx": make_nulnames_v8,
    "nonutf8names_v8.onnx": make_nonutf8names_v8,
    "e2e_bad_values.onnx": make_e2e_bad_values,
    "border_probe.onnx": make_border_probe,
}

# Not run by verify(): they cannot run (that is what they are for).
NOT_RUN = {"huge_input.onnx", "huge_imgsz.onnx", "zero_dim.onnx"}


# --------------------------------------------------------------------------- #
# verification
# --------------------------------------------------------------------------- #
def test_image(channels=3) -> np.ndarray:
    """[1, C, 256, 256] float: black, white square x 64..96 / y 32..64 (window i=4, j=8),
    red square x 160..192 / y 128..160 (window i=16, j=20).  The 1-channel version
    (green plane) holds only the white square."""
    img = np.zeros((3, IMG, IMG), dtype=np.float32)
    img[:, 32:64, 64:96] = 1.0
    img[0, 128:160, 160:192] = 1.0
    if channels == 1:
        img = img[1:2]  # green plane: only the white square is bright
    return img[None]


def verify(path: str) -> None:
    import onnxruntime as ort

    name = os.path.basename(path)
    if name == "nonutf8names_v8.onnx":
        # The python protobuf refuses to parse strings that are not UTF-8; ONNX Runtime does not.
        assert b"\xff\xfe" in open(path, "rb").read()
    else:
        onnx.checker.check_model(onnx.load(path), full_check=name not in NOT_RUN)
    if name in NOT_RUN:
        print(f"{name:26s} {os.path.getsize(path):7d} B  (not run)")
        return
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if name == "bad_not_image.onnx":
        x = np.ones((1, 10), dtype=np.float32)
    else:
        x = test_image(1 if inp.shape[1] == 1 else 3)
    if name == "squares_v8_batch.onnx":
        # Each frame of a batch gets its own result: the second frame's squares are swapped.
        y1 = x[:, :, ::-1, ::-1].copy()
        (yb,) = sess.run(None, {inp.name: np.concatenate([x, y1])})
        (ya,) = sess.run(None, {inp.name: x})
        (yc,) = sess.run(None, {inp.name: y1})
        assert yb.shape[0] == 2 and np.array_equal(yb[0], ya[0]) and np.array_equal(yb[1], yc[0])
        assert not np.array_equal(ya, yc)
    started = time.perf_counter()
    (y,) = sess.run(None, {inp.name: x})
    took = time.perf_counter() - started
    size = os.path.getsize(path)
    if name == "slow_e2e.onnx":
        print(f"    one run: {took:.2f} s")
    print(f"{name:26s} {size:7d} B  in {inp.shape} -> out {list(y.shape)}")
    if not name.startswith("squares"):
        return
    if "e2e" in name:
        for row in y[0][:3]:
            print("    x1=%.1f y1=%.1f x2=%.1f y2=%.1f score=%.5f class=%d" % (*row[:5], int(row[5])))
        assert abs(y[0, 0, 4] - 0.99753) < 1e-3 and abs(y[0, 1, 4] - 0.99753) < 1e-3
        assert y[0, 2, 4] < 0.25
        return
    if "v5" in name:
        rows = y[0]
        conf = rows[:, 4:5] * rows[:, 5:]
        boxes = rows[:, :4]
    else:
        rows = y[0].T
        conf = rows[:, 4:]
        boxes = rows[:, :4]
    for c in range(conf.shape[1]):
        order = np.argsort(-conf[:, c], kind="stable")[:2]
        desc = ", ".join("k=%d (cx=%.0f cy=%.0f w=%.0f h=%.0f) %.5f" % (k, *boxes[k], conf[k, c]) for k in order)
        print(f"    class {c}: {desc}")
        assert conf[order[0], c] > 0.99 and conf[order[1], c] < 0.25


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "models", "test"))
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for fname, builder in MODELS.items():
        path = os.path.join(args.out, fname)
        data = builder().SerializeToString(deterministic=True)
        if fname == "nonutf8names_v8.onnx":
            data = data.replace(b"'QQ'", b"'\xff\xfe'")
        with open(path, "wb") as f:
            f.write(data)
    if not args.no_verify:
        for fname in MODELS:
            verify(os.path.join(args.out, fname))
    return 0


if __name__ == "__main__":
    sys.exit(main())
