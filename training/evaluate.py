#!/usr/bin/env python3
"""Evaluate a YOLOv8-convention ONNX detector on a YOLO-format split (onnxruntime).

Needs only numpy, opencv-python-headless and onnxruntime.

    python training/evaluate.py --model models/surface-defects.onnx --data training/data/test
    python training/evaluate.py --model M.onnx --data DIR --json out.json --bench 200
    python training/evaluate.py --model M.onnx --video tests/data/conveyor_color.mp4

Preprocessing is the Ultralytics letterbox (what the GStreamer element does): resize
keeping aspect with cv2.INTER_LINEAR to fit the model input (imgsz metadata or input
shape), centre, pad 114, RGB, /255; grey images are replicated to three channels.

Detections: per anchor the best class score; class-wise NMS at --iou (0.45).
Matching: greedy by descending confidence, one ground-truth box per detection, same
class, IoU >= --match-iou (0.5).
 - P, R, F1 per class are computed from the detections with confidence >= --conf (0.25).
 - AP@0.5 per class is the area under the (monotone) precision/recall curve built from
   all detections with confidence >= --ap-conf (0.001, as usual for mAP), 101-point
   COCO interpolation; mAP is the mean over classes.  AP restricted to the >= --conf
   operating point is printed as AP@0.5(c>=conf) too.
"""
import argparse
import ast
import glob
import json
import os
import sys
import time

import cv2
import numpy as np

DEFAULT_NAMES = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]


# ------------------------------------------------------------------------- preprocessing
def letterbox(img, hw, pad=114):
    """Ultralytics LetterBox(auto=False, scaleup=True, center=True). img HxWx3 uint8.
    Returns (out, gain, (left, top))."""
    h, w = img.shape[:2]
    r = min(hw[0] / h, hw[1] / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    if (nw, nh) != (w, h):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = (hw[1] - nw) / 2, (hw[0] - nh) / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    out = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(pad, pad, pad))
    return out, r, (left, top)


def to_input(img_bgr, hw):
    """BGR (or grey) uint8 image -> (1,3,H,W) float32 RGB [0,1], gain, (left, top)."""
    if img_bgr.ndim == 2:
        img_bgr = cv2.cvtColor(img_bgr, cv2.COLOR_GRAY2BGR)
    lb, r, pad = letterbox(img_bgr, hw)
    x = cv2.cvtColor(lb, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    return np.ascontiguousarray(x), r, pad


# ------------------------------------------------------------------------- postprocessing
def box_iou(a, b):
    """a (N,4), b (M,4) xyxy -> (N,M)."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    ab = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (aa[:, None] + ab[None] - inter + 1e-9)


def nms(boxes, scores, iou_thr):
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        iou = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][iou <= iou_thr]
    return np.array(keep, dtype=np.int64)


def postprocess(out, conf=0.25, iou=0.45, max_det=300, max_nms=3000):
    """out: (4+nc, N) YOLOv8 rows -> (K,6) [x1,y1,x2,y2,score,cls] in model-input pixels,
    best class per anchor, class-wise NMS."""
    p = out.T
    scores = p[:, 4:]
    cls = scores.argmax(1)
    sc = scores[np.arange(len(p)), cls]
    m = sc >= conf
    p, cls, sc = p[m], cls[m], sc[m]
    if len(sc) > max_nms:  # keep the top candidates only (as Ultralytics' max_nms)
        top = np.argsort(-sc, kind="stable")[:max_nms]
        p, cls, sc = p[top], cls[top], sc[top]
    if not len(p):
        return np.zeros((0, 6), np.float32)
    xy, wh = p[:, :2], p[:, 2:4]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
    # class-wise NMS via per-class coordinate offsets
    off = cls[:, None].astype(np.float32) * 8192.0
    keep = nms(boxes + off, sc, iou)[:max_det]
    return np.concatenate([boxes[keep], sc[keep, None], cls[keep, None].astype(np.float32)], 1)


def unletterbox(det, gain, pad, w, h):
    d = det.copy()
    d[:, [0, 2]] = np.clip((d[:, [0, 2]] - pad[0]) / gain, 0, w)
    d[:, [1, 3]] = np.clip((d[:, [1, 3]] - pad[1]) / gain, 0, h)
    return d


# ------------------------------------------------------------------------- metrics
def match(det, gt, iou_thr=0.5):
    """det (K,6) sorted by score desc, gt (M,5) [cls,x1,y1,x2,y2] -> tp flags (K,)."""
    tp = np.zeros(len(det), bool)
    if not len(det) or not len(gt):
        return tp
    ious = box_iou(det[:, :4], gt[:, 1:5])
    used = np.zeros(len(gt), bool)
    for i in np.argsort(-det[:, 4], kind="stable"):
        cand = (gt[:, 0] == det[i, 5]) & ~used & (ious[i] >= iou_thr)
        if cand.any():
            j = np.where(cand)[0][np.argmax(ious[i][cand])]
            used[j] = True
            tp[i] = True
    return tp


def average_precision(tp, conf, n_gt):
    """101-point interpolated AP (COCO style) from per-detection tp flags and scores."""
    if n_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    o = np.argsort(-conf, kind="stable")
    tpc = np.cumsum(tp[o])
    fpc = np.cumsum(~tp[o])
    rec = tpc / n_gt
    prec = tpc / (tpc + fpc)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[1.0], prec, [0.0]])
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    return float(np.trapezoid(np.interp(x, mrec, mpre), x)) if hasattr(np, "trapezoid") else \
        float(np.trapz(np.interp(x, mrec, mpre), x))


class Accumulator:
    """Collects detections (image pixels) and ground truth, then computes the metrics."""

    def __init__(self, nc, conf=0.25, match_iou=0.5):
        self.nc, self.conf, self.match_iou = nc, conf, match_iou
        self.tp, self.sc, self.cl = [], [], []
        self.n_gt = np.zeros(nc, int)
        self.images = 0

    def add(self, det, gt):
        """det (K,6) [x1,y1,x2,y2,score,cls]; gt (M,5) [cls,x1,y1,x2,y2]."""
        self.images += 1
        for c in gt[:, 0].astype(int):
            self.n_gt[c] += 1
        if len(det):
            det = det[np.argsort(-det[:, 4], kind="stable")]
            self.tp.append(match(det, gt, self.match_iou))
            self.sc.append(det[:, 4])
            self.cl.append(det[:, 5].astype(int))
            # tp at the operating point must be matched among operating-point detections only
            hi = det[det[:, 4] >= self.conf]
            self._tp_hi = getattr(self, "_tp_hi", [])
            self._tp_hi.append((match(hi, gt, self.match_iou), hi[:, 5].astype(int)))

    def results(self):
        tp = np.concatenate(self.tp) if self.tp else np.zeros(0, bool)
        sc = np.concatenate(self.sc) if self.sc else np.zeros(0)
        cl = np.concatenate(self.cl) if self.cl else np.zeros(0, int)
        hi = getattr(self, "_tp_hi", [])
        tph = np.concatenate([t for t, _ in hi]) if hi else np.zeros(0, bool)
        clh = np.concatenate([c for _, c in hi]) if hi else np.zeros(0, int)
        rows = []
        for c in range(self.nc):
            n = int(self.n_gt[c])
            m = clh == c
            ntp, ndet = int(tph[m].sum()), int(m.sum())
            P = ntp / ndet if ndet else (1.0 if n == 0 else 0.0)
            R = ntp / n if n else float("nan")
            F1 = 2 * P * R / (P + R) if n and (P + R) > 0 else 0.0
            k = cl == c
            ap = average_precision(tp[k], sc[k], n)
            k2 = k & (sc >= self.conf)
            ap_hi = average_precision(tp[k2], sc[k2], n)
            rows.append(dict(cls=c, gt=n, det=ndet, tp=ntp, fp=ndet - ntp, fn=n - ntp,
                             precision=P, recall=R, f1=F1, ap50=ap, ap50_at_conf=ap_hi))
        valid = [r for r in rows if r["gt"] > 0]
        summary = dict(images=self.images, instances=int(self.n_gt.sum()),
                       precision=float(np.mean([r["precision"] for r in valid])) if valid else 0.0,
                       recall=float(np.mean([r["recall"] for r in valid])) if valid else 0.0,
                       f1=float(np.mean([r["f1"] for r in valid])) if valid else 0.0,
                       map50=float(np.mean([r["ap50"] for r in valid])) if valid else 0.0,
                       map50_at_conf=float(np.mean([r["ap50_at_conf"] for r in valid])) if valid else 0.0)
        return rows, summary


def markdown_table(rows, summary, names):
    """The per-class table of models/surface-defects.md."""
    lines = ["| class | GT | TP | FP | FN | precision | recall | F1 | AP@0.5 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['cls']} {names[r['cls']]} | {r['gt']} | {r['tp']} | {r['fp']} | {r['fn']} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['ap50']:.3f} |")
    lines.append(f"| **all** (mean over classes) | {summary['instances']} | {sum(r['tp'] for r in rows)} | "
                 f"{sum(r['fp'] for r in rows)} | {sum(r['fn'] for r in rows)} | {summary['precision']:.3f} | "
                 f"{summary['recall']:.3f} | {summary['f1']:.3f} | **{summary['map50']:.3f}** (mAP@0.5) |")
    return "\n".join(lines)


def format_table(rows, summary, names):
    lines = [f"{'class':<16}{'GT':>6}{'TP':>6}{'FP':>6}{'FN':>6}{'P':>8}{'R':>8}{'F1':>8}{'AP@0.5':>9}"
             f"{'AP@0.5(c>=conf)':>17}"]
    for r in rows:
        lines.append(f"{names[r['cls']]:<16}{r['gt']:>6}{r['tp']:>6}{r['fp']:>6}{r['fn']:>6}"
                     f"{r['precision']:>8.3f}{r['recall']:>8.3f}{r['f1']:>8.3f}{r['ap50']:>9.3f}"
                     f"{r['ap50_at_conf']:>17.3f}")
    lines.append(f"{'all (mean)':<16}{summary['instances']:>6}{'':>18}{summary['precision']:>8.3f}"
                 f"{summary['recall']:>8.3f}{summary['f1']:>8.3f}{summary['map50']:>9.3f}"
                 f"{summary['map50_at_conf']:>17.3f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------- data
def load_labels(path, w, h):
    """YOLO txt -> (M,5) [cls,x1,y1,x2,y2] in pixels."""
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                v = line.split()
                if len(v) >= 5:
                    c, cx, cy, bw, bh = int(v[0]), *map(float, v[1:5])
                    rows.append([c, (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
    return np.array(rows, np.float32).reshape(-1, 5)


def model_info(sess):
    meta = sess.get_modelmeta().custom_metadata_map
    inp = sess.get_inputs()[0]
    hw = None
    if "imgsz" in meta:
        v = ast.literal_eval(meta["imgsz"])
        hw = (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))
    if hw is None:
        hw = (int(inp.shape[2]), int(inp.shape[3]))
    names = DEFAULT_NAMES
    if "names" in meta:
        d = ast.literal_eval(meta["names"])
        names = [d[k] for k in sorted(d)] if isinstance(d, dict) else list(d)
    return inp.name, hw, names, meta


def make_session(model, threads=2):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def evaluate(model, data, conf=0.25, iou=0.45, ap_conf=0.001, match_iou=0.5, threads=2, limit=None):
    sess = make_session(model, threads)
    iname, hw, names, _ = model_info(sess)
    acc = Accumulator(len(names), conf, match_iou)
    files = sorted(glob.glob(os.path.join(data, "images", "*.png")) + glob.glob(os.path.join(data, "images", "*.jpg")))
    if limit:
        files = files[:limit]
    for p in files:
        img = cv2.imread(p, cv2.IMREAD_UNCHANGED)
        if img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        h, w = img.shape[:2]
        x, r, pad = to_input(img, hw)
        out = sess.run(None, {iname: x})[0][0]
        det = unletterbox(postprocess(out, ap_conf, iou), r, pad, w, h)
        stem = os.path.splitext(os.path.basename(p))[0]
        gt = load_labels(os.path.join(data, "labels", stem + ".txt"), w, h)
        acc.add(det, gt)
    rows, summary = acc.results()
    return rows, summary, names, hw


def evaluate_video(model, video, coco_path, conf=0.25, iou=0.45, ap_conf=0.001, match_iou=0.5, threads=2):
    """Same metrics on a video (decoded with OpenCV) against its COCO ground truth."""
    sess = make_session(model, threads)
    iname, hw, names, _ = model_info(sess)
    with open(coco_path) as f:
        coco = json.load(f)
    frame_of = {im["id"]: im.get("frame_index", im["id"]) for im in coco["images"]}
    gts = {}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        gts.setdefault(frame_of[a["image_id"]], []).append([a["category_id"], x, y, x + w, y + h])
    acc = Accumulator(len(names), conf, match_iou)
    cap = cv2.VideoCapture(video)
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        h, w = img.shape[:2]
        x, r, pad = to_input(img, hw)
        out = sess.run(None, {iname: x})[0][0]
        det = unletterbox(postprocess(out, ap_conf, iou), r, pad, w, h)
        acc.add(det, np.array(gts.get(n, []), np.float32).reshape(-1, 5))
        n += 1
    rows, summary = acc.results()
    return rows, summary, names, hw


def bench(model, hw=None, threads=2, runs=200):
    sess = make_session(model, threads)
    iname, mhw, _, _ = model_info(sess)
    x = np.random.default_rng(0).random((1, 3, *mhw), dtype=np.float32)
    for _ in range(20):
        sess.run(None, {iname: x})
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {iname: x})
        ts.append((time.perf_counter() - t) * 1000)
    ts = np.array(ts)
    return dict(threads=threads, runs=runs, mean_ms=float(ts.mean()), median_ms=float(np.median(ts)),
                p90_ms=float(np.percentile(ts, 90)), min_ms=float(ts.min()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/surface-defects.onnx")
    ap.add_argument("--data", default="training/data/test", help="split dir with images/ and labels/")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45, help="class-wise NMS IoU")
    ap.add_argument("--match-iou", type=float, default=0.5)
    ap.add_argument("--ap-conf", type=float, default=0.001)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--bench", type=int, default=0, help="also time N inference runs (latency)")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    ap.add_argument("--video", default=None, help="evaluate on this video instead (needs --coco)")
    ap.add_argument("--coco", default=None, help="COCO ground truth of --video")
    a = ap.parse_args()
    if a.video:
        rows, summary, names, hw = evaluate_video(a.model, a.video, a.coco or a.video.rsplit(".", 1)[0] + ".coco.json",
                                                  a.conf, a.iou, a.ap_conf, a.match_iou, a.threads)
        a.data = a.video
    else:
        rows, summary, names, hw = evaluate(a.model, a.data, a.conf, a.iou, a.ap_conf, a.match_iou, a.threads,
                                            a.limit)
    print(f"model {a.model}  input {hw[0]}x{hw[1]} (h x w)  data {a.data}  images {summary['images']}  "
          f"conf {a.conf}  NMS IoU {a.iou} (class-wise)  match IoU {a.match_iou}")
    print(format_table(rows, summary, names))
    print(f"mAP@0.5 = {summary['map50']:.4f}")
    if a.markdown:
        print(markdown_table(rows, summary, names))
    result = dict(model=a.model, data=a.data, imgsz=list(hw), conf=a.conf, nms_iou=a.iou,
                  match_iou=a.match_iou, names=names, per_class=rows, summary=summary)
    if a.bench:
        b = bench(a.model, hw, a.threads, a.bench)
        print(f"latency (onnxruntime CPU, {b['threads']} threads, {b['runs']} runs, 1x3x{hw[0]}x{hw[1]}): "
              f"mean {b['mean_ms']:.2f} ms, median {b['median_ms']:.2f} ms, p90 {b['p90_ms']:.2f} ms")
        result["latency"] = b
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
