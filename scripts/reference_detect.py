#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Plain onnxruntime + numpy reference detector (YOLO / Ultralytics conventions).

Used for parity tests against the Rust ``defectdetect`` element.  Implemented
from a written description of the conventions (no Ultralytics code):

Pre-processing (letterbox)
    r = min(nh / H, nw / W); new_unpad = (int(round(W * r)), int(round(H * r)))
    (Python round, i.e. round-half-to-even); dw = (nw - new_w) / 2,
    dh = (nh - new_h) / 2; cv2.resize(INTER_LINEAR) only if the size changes;
    top = int(round(dh - 0.1)), bottom = int(round(dh + 0.1)),
    left = int(round(dw - 0.1)), right = int(round(dw + 0.1)); constant pad 114.
    HWC -> CHW, float32 / 255, batch dim.  Grey frame + 3-channel model: the
    grey plane is replicated; RGB frame + 1-channel model: cv2 RGB2GRAY.

Decoding (layout chosen from the output shape unless forced)
    v8  [1, 4 + nc, N]: cx, cy, w, h, class scores; score = max, class = argmax.
    v5  [1, N, 5 + nc]: cx, cy, w, h, obj, class scores; score = max_k(obj * cls_k).
    e2e [1, K, 6]     : x1, y1, x2, y2, score, class; no NMS.
    Auto rule for a 3-D output [1, a, b]: a < b -> v8; else metadata
    end2end == 'True' or (b == 6 and number of names != 1) -> e2e; else v5.
    Anything else (not 3-D, batch != 1) -> ValueError.

Post-processing
    keep candidates with score > conf (STRICT greater-than, default 0.25);
    v8/v5: class-wise greedy NMS (descending score, stable order on ties,
    suppress a box when IoU > iou (STRICT), default 0.45), implemented with the
    offset-by-class trick (class_id * 7680 added to the xyxy coordinates);
    at most max_det = 300 detections.  e2e: threshold + max_det only.
    Boxes back to frame coordinates: gain = min(nh / H, nw / W),
    pad_x = round((nw - W * gain) / 2 - 0.1), pad_y = round((nh - H * gain) / 2 - 0.1);
    x = (x - pad_x) / gain, y = (y - pad_y) / gain; clip x to [0, W], y to [0, H].

    This is what the Ultralytics predictor does with an exported ONNX model (its
    `LetterBox(auto=False)`, `/ 255`, `non_max_suppression`, `scale_boxes`), except that
    its default IoU threshold is 0.7 and this one's is 0.45, `defectdetect`'s default.
    The predictor keeps boxes in float32 where this keeps float64: they differ by about
    1e-4 px.

CLI
    reference_detect.py --model M.onnx [--conf 0.25] [--iou 0.45] [--max-det 300]
        [--layout auto|v8|v5|e2e] (--raw FILE --width W --height H --format RGB|GRAY8
        | --image file.png)
    prints {"detections": [{"class_id", "label", "confidence", "box": [x1, y1, x2, y2]}],
            "input_size": [h, w], "layout": "v8"}   (detections by confidence, descending)
    reference_detect.py --batch MANIFEST.json [--conf ...] [--iou ...]
    MANIFEST is a list of {"model", "raw", "width", "height", "format"}; prints the list of
    results, in order (each model is loaded once).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field

import cv2
import numpy as np
import onnxruntime as ort

PAD_VALUE = 114
MAX_WH = 7680  # class offset for batched NMS
DEFAULT_IMGSZ = 640


# --------------------------------------------------------------------------- #
# letterbox
# --------------------------------------------------------------------------- #
def letterbox(img: np.ndarray, new_shape: tuple[int, int]) -> np.ndarray:
    """Resize keeping aspect ratio and pad to new_shape = (nh, nw) with 114.

    img: HxW (grey) or HxWxC uint8.  Returns the padded image (same channel count).
    """
    h, w = img.shape[:2]
    nh, nw = new_shape
    r = min(nh / h, nw / w)
    new_unpad = (int(round(w * r)), int(round(h * r)))  # (w, h)
    dw = (nw - new_unpad[0]) / 2
    dh = (nh - new_unpad[1]) / 2
    if (w, h) != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    value = PAD_VALUE if img.ndim == 2 else (PAD_VALUE,) * img.shape[2]
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)


def preprocess(img: np.ndarray, imgsz: tuple[int, int], channels: int) -> np.ndarray:
    """RGB (HxWx3) or grey (HxW / HxWx1) uint8 -> [1, channels, nh, nw] float32 in [0, 1]."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if channels == 1 and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    lb = letterbox(np.ascontiguousarray(img), imgsz)
    if lb.ndim == 2:
        lb = lb[:, :, None]
    if channels == 3 and lb.shape[2] == 1:
        lb = np.repeat(lb, 3, axis=2)
    x = lb.transpose(2, 0, 1).astype(np.float32) / 255.0
    return np.ascontiguousarray(x[None])


def scale_boxes_to_frame(boxes: np.ndarray, imgsz: tuple[int, int], frame_hw: tuple[int, int]) -> np.ndarray:
    """xyxy boxes in model-input pixels -> frame pixels (clipped)."""
    nh, nw = imgsz
    h, w = frame_hw
    gain = min(nh / h, nw / w)
    pad_x = round((nw - w * gain) / 2 - 0.1)
    pad_y = round((nh - h * gain) / 2 - 0.1)
    out = boxes.astype(np.float64).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - pad_x) / gain
    out[:, [1, 3]] = (out[:, [1, 3]] - pad_y) / gain
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out


# --------------------------------------------------------------------------- #
# model introspection
# --------------------------------------------------------------------------- #
def _parse_imgsz(text: str | None):
    if not text:
        return None
    try:
        v = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return None
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 1 and isinstance(v[0], int):
        return (v[0], v[0])
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(t, int) for t in v):
        return (int(v[0]), int(v[1]))
    return None


def _parse_names(text: str | None) -> dict[int, str] | None:
    if not text:
        return None
    try:
        v = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return None
    if isinstance(v, dict):
        return {int(k): str(n) for k, n in v.items()}
    if isinstance(v, (list, tuple)):
        return {i: str(n) for i, n in enumerate(v)}
    return None


@dataclass
class ModelInfo:
    input_name: str
    channels: int
    imgsz: tuple[int, int]  # (h, w)
    names: dict[int, str] | None
    metadata: dict[str, str] = field(default_factory=dict)

    def label(self, class_id: int) -> str:
        if self.names and class_id in self.names:
            return self.names[class_id]
        return f"class{class_id}"


def introspect(sess: ort.InferenceSession) -> ModelInfo:
    inp = sess.get_inputs()[0]
    shape = list(inp.shape)
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    if len(shape) != 4:
        raise ValueError(f"model input {inp.name} has shape {shape}: not an NCHW image")
    ch = shape[1] if isinstance(shape[1], int) and shape[1] > 0 else 3
    if ch not in (1, 3):
        raise ValueError(f"model input {inp.name} has {ch} channels (need 1 or 3)")
    h, w = shape[2], shape[3]
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        imgsz = (h, w)
    else:
        imgsz = _parse_imgsz(meta.get("imgsz")) or (DEFAULT_IMGSZ, DEFAULT_IMGSZ)
    return ModelInfo(inp.name, ch, imgsz, _parse_names(meta.get("names")), meta)


# --------------------------------------------------------------------------- #
# decoding
# --------------------------------------------------------------------------- #
def choose_layout(shape, info: ModelInfo) -> str:
    if len(shape) != 3 or shape[0] != 1:
        raise ValueError(f"unsupported output shape {list(shape)}")
    _, a, b = shape
    if a < b:
        return "v8"
    nnames = len(info.names) if info.names else 0
    if info.metadata.get("end2end") == "True" or (b == 6 and nnames != 1):
        return "e2e"
    return "v5"


def xywh2xyxy(b: np.ndarray) -> np.ndarray:
    out = np.empty_like(b)
    out[:, 0] = b[:, 0] - b[:, 2] / 2
    out[:, 1] = b[:, 1] - b[:, 3] / 2
    out[:, 2] = b[:, 0] + b[:, 2] / 2
    out[:, 3] = b[:, 1] + b[:, 3] / 2
    return out


def box_iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    a = (box[2] - box[0]) * (box[3] - box[1])
    b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = a + b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thres: float) -> np.ndarray:
    """Greedy NMS; returns kept indices in descending score order."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou_one(boxes[i], boxes[order[1:]])
        order = order[1:][ious <= iou_thres]
    return np.asarray(keep, dtype=np.int64)


def decode(out: np.ndarray, layout: str, conf: float, iou: float, max_det: int):
    """-> (boxes xyxy [M,4] model pixels, scores [M], class ids [M]) sorted by score desc."""
    p = out[0].astype(np.float64)
    if layout == "v8":
        p = p.T  # [N, 4+nc]
        cls_scores = p[:, 4:]
        cls = cls_scores.argmax(1)
        score = cls_scores.max(1)
        boxes = xywh2xyxy(p[:, :4])
    elif layout == "v5":
        cls_scores = p[:, 5:] * p[:, 4:5]
        cls = cls_scores.argmax(1)
        score = cls_scores.max(1)
        boxes = xywh2xyxy(p[:, :4])
    elif layout == "e2e":
        boxes = p[:, :4]
        score = p[:, 4]
        cls = np.round(p[:, 5]).astype(np.int64)
    else:
        raise ValueError(f"unknown layout {layout}")
    m = score > conf
    boxes, score, cls = boxes[m], score[m], cls[m]
    if layout == "e2e":
        order = np.argsort(-score, kind="stable")[:max_det]
    else:
        keep = nms(boxes + (cls * MAX_WH)[:, None], score, iou)
        order = keep[:max_det]
    return boxes[order], score[order], cls[order].astype(np.int64)


# --------------------------------------------------------------------------- #
# public API
# --------------------------------------------------------------------------- #
class ReferenceDetector:
    def __init__(self, model_path: str):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
        self.info = introspect(self.sess)

    def detect(self, img: np.ndarray, conf: float = 0.25, iou: float = 0.45, layout: str = "auto",
               max_det: int = 300) -> dict:
        info = self.info
        x = preprocess(img, info.imgsz, info.channels)
        out = self.sess.run(None, {info.input_name: x})[0]
        lay = choose_layout(out.shape, info) if layout == "auto" else layout
        boxes, scores, cls = decode(out, lay, conf, iou, max_det)
        boxes = scale_boxes_to_frame(boxes, info.imgsz, img.shape[:2])
        dets = [
            {
                "class_id": int(c),
                "label": info.label(int(c)),
                "confidence": float(s),
                "box": [float(v) for v in b],
            }
            for b, s, c in zip(boxes, scores, cls)
        ]
        return {"detections": dets, "input_size": [int(info.imgsz[0]), int(info.imgsz[1])], "layout": lay}


def detect(model_path: str, img: np.ndarray, **kw) -> dict:
    return ReferenceDetector(model_path).detect(img, **kw)


def load_raw(path: str, width: int, height: int, fmt: str) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    if fmt == "RGB":
        need = width * height * 3
        shape = (height, width, 3)
    elif fmt == "GRAY8":
        need = width * height
        shape = (height, width)
    else:
        raise ValueError(f"unsupported format {fmt}")
    if data.size < need:
        raise ValueError(f"{path}: {data.size} bytes, need {need} for {width}x{height} {fmt}")
    return data[:need].reshape(shape)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="onnxruntime + numpy reference YOLO detector")
    ap.add_argument("--model")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45)
    ap.add_argument("--max-det", type=int, default=300)
    ap.add_argument("--layout", choices=["auto", "v8", "v5", "e2e"], default="auto")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--batch", help="JSON list of {model, raw, width, height, format}")
    src.add_argument("--raw", help="raw packed frame bytes")
    src.add_argument("--image", help="image file read with OpenCV")
    ap.add_argument("--width", type=int)
    ap.add_argument("--height", type=int)
    ap.add_argument("--format", choices=["RGB", "GRAY8"], default="RGB")
    args = ap.parse_args(argv)

    if args.batch:
        detectors: dict[str, ReferenceDetector] = {}
        results = []
        with open(args.batch) as f:
            cases = json.load(f)
        for case in cases:
            if case["model"] not in detectors:
                detectors[case["model"]] = ReferenceDetector(case["model"])
            img = load_raw(case["raw"], case["width"], case["height"], case["format"])
            results.append(detectors[case["model"]].detect(
                img, conf=args.conf, iou=args.iou, layout=args.layout, max_det=args.max_det))
        json.dump(results, sys.stdout)
        sys.stdout.write("\n")
        return 0
    if not args.model:
        ap.error("--model is required (or --batch)")
    if args.raw:
        if not args.width or not args.height:
            ap.error("--raw needs --width and --height")
        img = load_raw(args.raw, args.width, args.height, args.format)
    else:
        bgr = cv2.imread(args.image, cv2.IMREAD_UNCHANGED)
        if bgr is None:
            ap.error(f"cannot read {args.image}")
        if bgr.ndim == 2:
            img = bgr
        elif bgr.shape[2] == 4:
            img = cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
        else:
            img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    result = ReferenceDetector(args.model).detect(
        img, conf=args.conf, iou=args.iou, layout=args.layout, max_det=args.max_det
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
