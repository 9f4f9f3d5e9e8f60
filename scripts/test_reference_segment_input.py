# SPDX-License-Identifier: MIT OR Apache-2.0
"""Self-check of scripts/reference_segment_input.py on hand-made model outputs.

Run: .venv/bin/python -m pytest scripts/test_reference_segment_input.py -q
"""

import os
import sys

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import reference_segment_input as rs  # noqa: E402


def outputs(boxes_cxcywh, scores, coefs, protos, nc=2):
    """output0 [1, 4 + nc + nm, N] and output1 [1, nm, mh, mw] from per-anchor rows."""
    n = len(boxes_cxcywh)
    nm = protos.shape[0]
    out0 = np.zeros((1, 4 + nc + nm, n), np.float32)
    out0[0, :4] = np.asarray(boxes_cxcywh, np.float32).T
    out0[0, 4:4 + nc] = np.asarray(scores, np.float32).T
    out0[0, 4 + nc:] = np.asarray(coefs, np.float32).T
    return out0, protos[None].astype(np.float32)


def test_upsampling_is_half_pixel_bilinear():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 20, 30)).astype(np.float32)
    up = rs.upsample_bilinear(x, (80, 120))
    for i in range(2):
        ref = cv2.resize(x[i], (120, 80), interpolation=cv2.INTER_LINEAR)
        assert np.abs(up[i] - ref).max() < 1e-5


def test_mask_is_cropped_to_the_box_and_thresholded_at_zero_logit():
    # one prototype that is +1 everywhere: the mask is exactly the box (at prototype scale)
    protos = np.ones((1, 16, 16), np.float32)
    # box x 8..40, y 16..48 in a 64 x 64 input -> prototype columns 2..9, rows 4..11
    out0, out1 = outputs([[24, 32, 32, 32]], [[0.9, 0.1]], [[1.0]], protos[0:1])
    boxes, scores, cls, coef = rs.decode_segment(out0, 2, 0.25, 0.45, 300)
    assert cls.tolist() == [0] and abs(scores[0] - 0.9) < 1e-6
    m = rs.input_masks(out1[0], coef, boxes, (64, 64))[0]
    ys, xs = np.nonzero(m)
    # logits 1 inside, 0 outside: after bilinear upsampling (half-pixel centres) a logit > 0
    # reaches the input pixels whose source position is within one prototype pixel of a kept
    # one: x = 6 (source 1.125) to 41 (source 9.875), y = 14 to 49
    assert xs.min() == 6 and xs.max() == 41
    assert ys.min() == 14 and ys.max() == 49
    assert m.sum() == (41 - 6 + 1) * (49 - 14 + 1)
    # a negative coefficient gives no mask at all
    out0, out1 = outputs([[24, 32, 32, 32]], [[0.9, 0.1]], [[-1.0]], protos[0:1])
    boxes, _, _, coef = rs.decode_segment(out0, 2, 0.25, 0.45, 300)
    assert not rs.input_masks(out1[0], coef, boxes, (64, 64)).any()


def test_masks_follow_the_prototypes_and_the_frame():
    # prototype 0 marks the left half, prototype 1 the right half
    protos = -np.ones((2, 16, 16), np.float32)
    protos[0, :, :8] = 1
    protos[1, :, 8:] = 1
    out0, out1 = outputs([[32, 32, 64, 64], [32, 32, 60, 60]], [[0.8, 0.0], [0.0, 0.7]],
                         [[1.0, 0.0], [0.0, 1.0]], protos)
    # 128 x 64 frame letterboxed to 64 x 64: gain 0.5, 16 px bars top and bottom
    r = rs.postprocess(out0, out1, (64, 64), (64, 128), 2, conf=0.25, iou=0.45)
    assert r["classes"].tolist() == [0, 1]
    left, right = r["masks"]
    assert left.shape == (64, 128)
    assert left[:, :60].all() and not left[:, 68:].any()
    assert right[:, 68:124].all() and not right[:, :60].any()
    # boxes back in frame pixels: y from (0 - 16) / 0.5 clipped to 0, to (64 - 16) / 0.5 = 96 -> 64
    assert np.allclose(r["boxes"][0], [0, 0, 128, 64])
    # different classes: both kept; same class and IoU > 0.45: the weaker one suppressed
    out0[0, 4:6, 1] = [0.7, 0.0]
    r = rs.postprocess(out0, out1, (64, 64), (64, 128), 2, conf=0.25, iou=0.45)
    assert r["classes"].tolist() == [0]


def test_rle_round_trip():
    from pycocotools import mask as mask_util

    m = np.zeros((7, 9), bool)
    m[2:5, 3:8] = True
    r = rs.rle(m)
    back = mask_util.decode({"size": r["size"], "counts": r["counts"].encode("ascii")})
    assert r["size"] == [7, 9] and (back.astype(bool) == m).all()
