#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Plain onnxruntime + numpy reference for YOLO instance-segmentation models (Ultralytics -seg
output layout) in the predictor's default mode: masks at the model's input size, then scaled to
the frame (``retina_masks=False``). Used by the training recipe's evaluation
(training/mtd_seg_eval.py). ``scripts/reference_segment.py`` is the ``retina_masks=True`` mode
(masks computed at frame resolution), which ``defectdetect task=segment`` reproduces and
tests/segment.rs checks.

Implemented from a written description of the Ultralytics segmentation predictor (no
Ultralytics code):

Model outputs
    output0 [1, 4 + nc + nm, N]: cx, cy, w, h (input pixels), nc class scores, nm mask
    coefficients; output1 [1, nm, mh, mw]: prototypes (mh = H / 4, mw = W / 4 for the usual
    models).  nc = rows - 4 - nm, nm = output1's channel count.

Pre-processing and boxes
    as scripts/reference_detect.py (letterbox INTER_LINEAR, pad 114, / 255; candidates with
    score > conf, class-wise greedy NMS with IoU > iou suppressing, max_det; boxes scaled back
    to the frame and clipped).

Masks, per kept detection (the predictor's ``process_mask`` with upsampling, then
``scale_image`` to the frame)
    1. logits = coefficients . prototypes  -> [mh, mw]  (float32 matrix product)
    2. crop at prototype scale: the box (input pixels) times mw / W, mh / H; a prototype pixel
       (column c, row r) is kept where x1 <= c < x2 and y1 <= r < y2, zero (logit 0) elsewhere
    3. bilinear upsampling (half-pixel centres, ``align_corners=False``) of the logits to the
       model input H x W; binary mask = logit > 0 (= sigmoid > 0.5)
    4. to the frame: the letterbox padding removed (top = round(pad_y - 0.1), bottom =
       round(H - pad_y + 0.1), likewise left / right), the 0 / 1 mask resized bilinearly
       (cv2.INTER_LINEAR) to the frame's W x H, then > 0.5.
    (Ultralytics' predictor keeps ``Results.masks`` at the input size (step 3); step 4 is its
    ``scale_image`` followed by a 0.5 threshold.)

CLI
    reference_segment.py --model M.onnx [--conf 0.25] [--iou 0.45] [--max-det 300]
        (--image FILE ... | --list FILES.txt) [--out result.json]
    writes [{"image", "width", "height", "input_size", "detections": [{"class_id", "label",
    "confidence", "box": [x1, y1, x2, y2] (frame px), "area" (mask pixels),
    "mask": COCO RLE {"size": [h, w], "counts": str} of the frame-size mask}]}], detections by
    confidence, descending.  RLE needs pycocotools (scripts/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import cv2
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from reference_detect import MAX_WH, nms, preprocess, scale_boxes_to_frame, xywh2xyxy  # noqa: E402


def decode_segment(out0: np.ndarray, nc: int, conf: float, iou: float, max_det: int):
    """-> (boxes xyxy [M,4] input px, scores [M], classes [M], coefficients [M, nm]), by score."""
    p = out0[0].astype(np.float64).T  # [N, 4 + nc + nm]
    cls_scores = p[:, 4:4 + nc]
    cls = cls_scores.argmax(1)
    score = cls_scores.max(1)
    boxes = xywh2xyxy(p[:, :4])
    coef = out0[0].T[:, 4 + nc:].astype(np.float32)
    m = score > conf
    boxes, score, cls, coef = boxes[m], score[m], cls[m], coef[m]
    keep = nms(boxes + (cls * MAX_WH)[:, None], score, iou)[:max_det]
    return boxes[keep], score[keep], cls[keep].astype(np.int64), coef[keep]


def _bilinear_1d(n_out: int, n_in: int):
    """Source indices and weights of half-pixel-centre bilinear resizing (align_corners=False)."""
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = src - i0
    return i0, i1, (1.0 - w1).astype(np.float32), w1.astype(np.float32)


def upsample_bilinear(x: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """[n, h, w] -> [n, H, W], as torch F.interpolate(mode='bilinear', align_corners=False)."""
    y0, y1, wy0, wy1 = _bilinear_1d(out_hw[0], x.shape[1])
    x0, x1, wx0, wx1 = _bilinear_1d(out_hw[1], x.shape[2])
    rows = x[:, y0, :] * wy0[None, :, None] + x[:, y1, :] * wy1[None, :, None]
    return rows[:, :, x0] * wx0[None, None, :] + rows[:, :, x1] * wx1[None, None, :]


def input_masks(protos: np.ndarray, coef: np.ndarray, boxes: np.ndarray, imgsz: tuple[int, int]) -> np.ndarray:
    """Binary masks [M, H, W] at the model input (steps 1 to 3).  protos [nm, mh, mw]."""
    nm, mh, mw = protos.shape
    ih, iw = imgsz
    if len(coef) == 0:
        return np.zeros((0, ih, iw), bool)
    logits = (coef @ protos.reshape(nm, -1).astype(np.float32)).reshape(-1, mh, mw)
    b = boxes.astype(np.float32) * np.array([mw / iw, mh / ih, mw / iw, mh / ih], np.float32)
    c = np.arange(mw, dtype=np.float32)[None, None, :]
    r = np.arange(mh, dtype=np.float32)[None, :, None]
    keep = ((c >= b[:, 0, None, None]) & (c < b[:, 2, None, None])
            & (r >= b[:, 1, None, None]) & (r < b[:, 3, None, None]))
    logits = logits * keep
    return upsample_bilinear(logits, imgsz) > 0.0


def to_frame(masks: np.ndarray, imgsz: tuple[int, int], frame_hw: tuple[int, int]) -> np.ndarray:
    """Input-size masks [M, H, W] -> frame-size masks [M, h, w] (step 4)."""
    nh, nw = imgsz
    h, w = frame_hw
    if len(masks) == 0:
        return np.zeros((0, h, w), bool)
    gain = min(nh / h, nw / w)
    px, py = (nw - w * gain) / 2, (nh - h * gain) / 2
    top, left = int(round(py - 0.1)), int(round(px - 0.1))
    bottom, right = int(round(nh - py + 0.1)), int(round(nw - px + 0.1))
    out = np.empty((len(masks), h, w), bool)
    for i, m in enumerate(masks):
        crop = m[top:bottom, left:right].astype(np.float32)
        out[i] = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
    return out


def postprocess(out0, out1, imgsz, frame_hw, nc, conf=0.25, iou=0.45, max_det=300):
    """Model outputs -> {"boxes" (frame px), "scores", "classes", "masks" (frame-size bool)}."""
    boxes, scores, cls, coef = decode_segment(out0, nc, conf, iou, max_det)
    masks = to_frame(input_masks(out1[0], coef, boxes, imgsz), imgsz, frame_hw)
    return {"boxes": scale_boxes_to_frame(boxes, imgsz, frame_hw), "scores": scores, "classes": cls,
            "masks": masks}


class ReferenceSegmenter:
    def __init__(self, model_path: str):
        import onnxruntime as ort

        from reference_detect import introspect

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
        self.info = introspect(self.sess)
        outs = self.sess.get_outputs()
        if len(outs) != 2:
            raise ValueError(f"{model_path}: {len(outs)} outputs, a segmentation model has 2")
        self.nm = outs[1].shape[1]
        rows = outs[0].shape[1]
        self.nc = rows - 4 - self.nm if isinstance(rows, int) else len(self.info.names or {})

    def run(self, img: np.ndarray):
        x = preprocess(img, self.info.imgsz, self.info.channels)
        return self.sess.run(None, {self.info.input_name: x})

    def segment(self, img: np.ndarray, conf: float = 0.25, iou: float = 0.45, max_det: int = 300) -> dict:
        out0, out1 = self.run(img)
        return postprocess(out0, out1, self.info.imgsz, img.shape[:2], self.nc, conf, iou, max_det)


def rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_util

    r = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def read_rgb(path: str) -> np.ndarray:
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"reference_segment: cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="onnxruntime + numpy reference YOLO segmentation")
    ap.add_argument("--model", required=True)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45)
    ap.add_argument("--max-det", type=int, default=300)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", nargs="+")
    src.add_argument("--list", help="text file, one image path a line")
    ap.add_argument("--out", help="JSON file (default: stdout)")
    a = ap.parse_args(argv)
    seg = ReferenceSegmenter(a.model)
    names = a.image or [ln.strip() for ln in open(a.list) if ln.strip()]
    results = []
    for path in names:
        img = read_rgb(path)
        r = seg.segment(img, a.conf, a.iou, a.max_det)
        results.append({
            "image": path, "width": int(img.shape[1]), "height": int(img.shape[0]),
            "input_size": [int(v) for v in seg.info.imgsz],
            "detections": [{"class_id": int(c), "label": seg.info.label(int(c)), "confidence": float(s),
                            "box": [float(v) for v in b], "area": int(m.sum()), "mask": rle(m)}
                           for b, s, c, m in zip(r["boxes"], r["scores"], r["classes"], r["masks"])],
        })
    text = json.dumps(results)
    if a.out:
        pathlib.Path(a.out).write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
