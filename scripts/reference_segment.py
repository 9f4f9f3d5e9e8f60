#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Plain onnxruntime + numpy reference of the Ultralytics segmentation predictor.

Used for the mask parity test of ``defectdetect`` (tests/segment.rs).  Implemented from a
written description of the predictor's post-processing (no Ultralytics code, no ``ultralytics``
import); the letterbox, decoding and NMS are ``reference_detect.py``'s.

A ``-seg`` model has two outputs: ``output0`` [1, 4 + nc + nm, N] (cx, cy, w, h, nc class
scores, nm mask coefficients) and ``output1`` [1, nm, mh, mw] (prototypes).

Detections
    as reference_detect.py's v8 layout on the first 4 + nc rows (strict score > conf,
    class-wise greedy NMS, max_det), boxes scaled back to the frame and clipped.
Masks (the predictor with ``retina_masks=True``: ``process_mask_native``)
    logits = coefficients @ prototypes.reshape(nm, -1)          -> [n, mh, mw]
    scale_masks: gain = min(mh / H, mw / W); pad = ((mw - W gain) / 2, (mh - H gain) / 2);
        top, left = int(pad_h), int(pad_w); bottom, right = int(mh - pad_h), int(mw - pad_w);
        logits[:, top:bottom, left:right] resized to (H, W), bilinear, align_corners=False
        (PyTorch's F.interpolate: src = (dst + 0.5) * in / out - 0.5, clamped at 0 below;
        the next cell clamped to the last)
    crop_mask: pixels (x, y) outside x1 <= x < x2, y1 <= y < y2 of the frame box set to 0
    mask = logits > 0  (sigmoid > 0.5)

CLI
    reference_segment.py --batch MANIFEST.json [--conf 0.25] [--iou 0.45] [--max-det 300]
    MANIFEST: a list of {"model", "raw", "width", "height"} (raw RGB frames); prints a list of
    {"detections": [{"class_id", "confidence", "box": [x1, y1, x2, y2],
                     "mask": {"size": [H, W], "counts": "..."}}]}  (COCO RLE, pycocotools)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from pycocotools import mask as coco_mask

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_detect as rd  # noqa: E402


def bilinear_taps(out_size: int, in_size: int):
    """PyTorch's align_corners=False source cells and weights for each output sample."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0))
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    i1 = np.where(i0 < in_size - 1, i0 + 1, i0)
    w1 = (src - i0).astype(np.float32)
    return i0, i1, w1


def scale_masks(logits: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """[n, mh, mw] prototype-resolution logits -> [n, H, W] frame-resolution logits."""
    _, mh, mw = logits.shape
    h, w = frame_hw
    gain = min(mh / h, mw / w)
    pad_w, pad_h = (mw - w * gain) / 2, (mh - h * gain) / 2
    top, left = int(pad_h), int(pad_w)
    bottom, right = int(mh - pad_h), int(mw - pad_w)
    cut = logits[:, top:bottom, left:right]
    ch, cw = cut.shape[1:]
    y0, y1, wy = bilinear_taps(h, ch)
    x0, x1, wx = bilinear_taps(w, cw)
    rows = cut[:, y0, :] * (1 - wy)[None, :, None] + cut[:, y1, :] * wy[None, :, None]
    return rows[:, :, x0] * (1 - wx)[None, None, :] + rows[:, :, x1] * wx[None, None, :]


def crop_mask(masks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    _, h, w = masks.shape
    x = np.arange(w)[None, None, :]
    y = np.arange(h)[None, :, None]
    x1, y1, x2, y2 = (boxes[:, i][:, None, None] for i in range(4))
    return masks * ((x >= x1) & (x < x2) & (y >= y1) & (y < y2))


class ReferenceSegmenter:
    def __init__(self, model_path: str):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
        self.info = rd.introspect(self.sess)

    def segment(self, img: np.ndarray, conf=0.25, iou=0.45, max_det=300) -> dict:
        info = self.info
        x = rd.preprocess(img, info.imgsz, info.channels)
        outs = self.sess.run(None, {info.input_name: x})
        det, protos = (outs[0], outs[1]) if outs[0].ndim == 3 else (outs[1], outs[0])
        nm = protos.shape[1]
        p = det[0].T.astype(np.float64)  # [N, 4 + nc + nm]
        nc = p.shape[1] - 4 - nm
        cls_scores = p[:, 4:4 + nc]
        cls = cls_scores.argmax(1)
        score = cls_scores.max(1)
        boxes = rd.xywh2xyxy(p[:, :4])
        keep = score > conf
        idx = np.nonzero(keep)[0]
        boxes, score, cls = boxes[keep], score[keep], cls[keep]
        order = rd.nms(boxes + (cls * rd.MAX_WH)[:, None], score, iou)[:max_det]
        idx, boxes, score, cls = idx[order], boxes[order], score[order], cls[order]
        frame_hw = img.shape[:2]
        boxes = rd.scale_boxes_to_frame(boxes, info.imgsz, frame_hw)
        dets = []
        if len(idx):
            coeffs = det[0][4 + nc:, idx].T.astype(np.float32)  # [n, nm]
            logits = (coeffs @ protos[0].reshape(nm, -1)).reshape(-1, *protos.shape[2:])
            masks = crop_mask(scale_masks(logits, frame_hw), boxes) > 0
            for b, s, c, m in zip(boxes, score, cls, masks):
                rle = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
                dets.append({
                    "class_id": int(c),
                    "confidence": float(s),
                    "box": [float(v) for v in b],
                    "mask": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()},
                })
        return {"detections": dets}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="onnxruntime + numpy reference YOLO segmenter")
    ap.add_argument("--batch", required=True, help="JSON list of {model, raw, width, height}")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45)
    ap.add_argument("--max-det", type=int, default=300)
    args = ap.parse_args(argv)
    models: dict[str, ReferenceSegmenter] = {}
    results = []
    with open(args.batch) as f:
        cases = json.load(f)
    for case in cases:
        if case["model"] not in models:
            models[case["model"]] = ReferenceSegmenter(case["model"])
        img = rd.load_raw(case["raw"], case["width"], case["height"], "RGB")
        results.append(models[case["model"]].segment(img, args.conf, args.iou, args.max_det))
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
