#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Instance-segmentation model for real magnetic tiles (``magnetic-tile-seg.onnx``), trained from
scratch (no pretrained weights) on the defective tiles of the Magnetic Tile Defect dataset.

Network: the project's two-level detector (training/model.py ``Detector``: strides 8 / 16,
softplus ltrb box head, sigmoid class head) plus a YOLO-style mask branch: 32 prototypes at
stride 4 (from the stride-8 neck feature, upsampled x2 and joined with the stride-4 backbone
feature) and 32 mask coefficients per anchor (one small head per level).  A detection's mask
is sigmoid(coefficients . prototypes), cropped to its box.

Loss: the detector recipe's (training/train.py ``compute_loss``: centre-sampling assignment,
IoU-aware BCE classes, GIoU + L1 boxes) + per-pixel BCE of each positive anchor's mask logits
against its instance's mask at prototype resolution, summed inside the instance's box and
divided by the box area (as Ultralytics' segmentation loss is described).

Data: split by the number n of ``exp<k>_num_<n>.jpg`` (training/mtd.py ``split_of``): n % 5
== 0 test, == 1 validation (chooses the checkpoint), else train; ``--split-by part`` gives every
lighting view of a tile the split of the tile's smallest number (training/mtd.py ``list_tiles``),
so that no tile is in two splits.  Instances: the connected
components of a tile's mask after joining parts closer than JOIN px (a crack or a break
labelled as several pieces is one defect); components under MIN_PIXELS px are dropped (label
specks) (training/mtd_seg_eval.py ``instances``, which also measures the model).  Four
``uneven`` tiles have empty masks: no instance can be made of them, so they are left out of training and of every segmentation figure.  Defect-free train tiles are shown as
background images (no instances) in a share ``--free-frac`` of the samples.

    DATA=/work/data/Magnetic-tile-defect-datasets
    python training/mtd_seg.py data   --mtd $DATA --out RUN [--split-by part]
    python training/mtd_seg.py train  --out RUN --minutes 90 [--resume]
    python training/mtd_seg.py export --out RUN --model models/magnetic-tile-seg.onnx

Model contract (Ultralytics -seg layout): input ``images`` [1, 3, S, S] float32 RGB in [0, 1],
letterboxed (OpenCV INTER_LINEAR, centred, pad 114, as scripts/reference_detect.py); outputs
``output0`` [1, 4 + 5 + 32, N] (cx, cy, w, h in input pixels, 5 sigmoid class scores, 32 mask
coefficients) and ``output1`` [1, 32, S/4, S/4] prototypes.
"""
import argparse
import datetime
import math
import os
import pickle
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))
from model import Conv, Detector, flatten_outputs, make_anchors  # noqa: E402
from mtd import CLASSES, SPLITS_BY, list_tiles, read_gray, split_note  # noqa: E402
from mtd_seg_eval import instances  # noqa: E402
from train import BF16, EMA, assign, brightness_contrast, compute_loss  # noqa: E402
from reference_detect import preprocess  # noqa: E402

VERSION = "1.0.0"
SIZE = 320  # model input S x S
NM = 32  # prototypes / coefficients
NAMES = [c.lower() for c in CLASSES]  # blowhole, break, crack, fray, uneven


# ----------------------------------------------------------------------------- data
def data(a):
    """Caches every tile of the dataset (grey, original size) with its class, split, instances."""
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for jpg, png, cls, split in list_tiles(a.mtd, a.split_by):
        g = read_gray(jpg)
        inst = []
        if cls != "free":
            inst = [(NAMES.index(cls), np.packbits(m, axis=None), m.shape) for m in instances(read_gray(png))]
        rows.append({"file": os.path.relpath(jpg, a.mtd), "cls": cls, "split": split, "image": g, "inst": inst})
    with open(os.path.join(a.out, "data.pkl"), "wb") as f:
        pickle.dump(rows, f, protocol=4)
    os.makedirs(os.path.join(a.out, "data"), exist_ok=True)
    with open(os.path.join(a.out, "data", "split_by"), "w") as f:  # read by export (mtd.split_note)
        f.write(a.split_by + "\n")
    for split in ("train", "val", "test"):
        sel = [r for r in rows if r["split"] == split]
        d = [r for r in sel if r["cls"] != "free"]
        print(f"mtd_seg: {split}: {len(sel)} tiles, {len(d)} defective ({sum(1 for r in d if not r['inst'])} "
              f"with an empty mask), {sum(len(r['inst']) for r in d)} instances", flush=True)


def unpack(inst):
    c, bits, shape = inst
    return c, np.unpackbits(bits, count=shape[0] * shape[1]).reshape(shape).astype(bool)


def load_rows(out):
    with open(os.path.join(out, "data.pkl"), "rb") as f:
        return pickle.load(f)


# ----------------------------------------------------------------------------- augmentation
def sample(rng, row, crop=0):
    """Random flips / transpose, scale jitter around the letterbox scale and placement in the
    S x S input (pad 114), brightness / contrast / blur / noise, then a crop x crop window (0:
    the whole input).  Returns RGB uint8 (C, C, 3), boxes [M, 5] (cls, x1, y1, x2, y2 px) and
    soft masks [M, C/4, C/4] float32."""
    img = row["image"]
    inst = [unpack(i) for i in row["inst"]]
    if rng.random() < 0.5:
        img = img[:, ::-1]
        inst = [(c, m[:, ::-1]) for c, m in inst]
    if rng.random() < 0.5:
        img = img[::-1]
        inst = [(c, m[::-1]) for c, m in inst]
    if rng.random() < 0.5:
        img = img.T
        inst = [(c, m.T) for c, m in inst]
    h, w = img.shape
    r = min(SIZE / h, SIZE / w) * math.exp(rng.uniform(math.log(0.75), math.log(1.3)))
    nw, nh = w * r, h * r
    tx = rng.uniform(min(0, SIZE - nw), max(0, SIZE - nw))
    ty = rng.uniform(min(0, SIZE - nh), max(0, SIZE - nh))
    M = np.array([[r, 0, tx], [0, r, ty]], np.float32)
    out = cv2.warpAffine(np.ascontiguousarray(img), M, (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=114)
    x = brightness_contrast(rng, out.astype(np.float32))
    # the letterbox border keeps its grey (the element pads after the camera's exposure)
    valid = cv2.warpAffine(np.ones((h, w), np.uint8), M, (SIZE, SIZE), flags=cv2.INTER_NEAREST) > 0
    x = np.where(valid, x, 114.0)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.0))
    if rng.random() < 0.3:
        x = x + rng.normal(0, rng.uniform(1.0, 5.0), x.shape).astype(np.float32)
    x = np.clip(x, 0, 255).astype(np.uint8)
    mfs = [(c, cv2.warpAffine(np.ascontiguousarray(m).astype(np.float32), M, (SIZE, SIZE),
                              flags=cv2.INTER_LINEAR)) for c, m in inst]
    # a crop x crop window of the input (the net is convolutional: a crop costs its pixels
    # only), on a defect most of the time, else anywhere on the tile
    C = crop if 0 < crop < SIZE else SIZE
    cx0 = cy0 = 0
    if C < SIZE:
        ys, xs = np.nonzero(mfs[int(rng.integers(0, len(mfs)))][1] > 0.3) if mfs and rng.random() < 0.7 \
            else np.nonzero(valid)
        if len(xs):
            k = int(rng.integers(0, len(xs)))
            cx0 = int(np.clip(xs[k] - rng.uniform(0.2, 0.8) * C, 0, SIZE - C))
            cy0 = int(np.clip(ys[k] - rng.uniform(0.2, 0.8) * C, 0, SIZE - C))
        x = x[cy0:cy0 + C, cx0:cx0 + C]
    boxes, masks = [], []
    P = C // 4
    for c, mf in mfs:
        mf = mf[cy0:cy0 + C, cx0:cx0 + C]
        ys, xs = np.nonzero(mf > 0.3)
        if len(xs) < 2:
            continue
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        if x1 - x0 < 2 and y1 - y0 < 2:
            continue
        boxes.append([c, x0, y0, x1, y1])
        masks.append(np.clip(cv2.resize(mf, (P, P), interpolation=cv2.INTER_AREA) * 1.5, 0, 1))
    boxes = np.array(boxes, np.float32).reshape(-1, 5)
    masks = np.array(masks, np.float32).reshape(-1, P, P)
    return np.repeat(x[..., None], 3, 2), boxes, masks


# ----------------------------------------------------------------------------- model
class Proto(nn.Module):
    """32 prototypes at stride 4: the stride-8 neck feature upsampled x2 (transposed conv),
    joined with the stride-4 backbone feature."""

    def __init__(self, c8, c4, c=32, nm=NM):
        super().__init__()
        self.cv1 = Conv(c8, c, 3)
        self.up = nn.ConvTranspose2d(c, c, 2, 2, 0, bias=True)
        self.cv2 = Conv(c + c4, c, 3)
        self.cv3 = Conv(c, nm, 1)

    def forward(self, f8, f4):
        return self.cv3(self.cv2(torch.cat([self.up(self.cv1(f8)), f4], 1)))


class SegNet(Detector):
    """Detector + mask branch.  Training forward: ((boxes xyxy, logits, points, strides),
    coefficients (B, N, 32), prototypes (B, 32, H/4, W/4)).  With ``export = True``:
    (output0 [B, 4 + nc + 32, N], output1 prototypes)."""

    def __init__(self, nc=len(NAMES), w=(16, 32, 64, 96, 128)):
        super().__init__(nc=nc, w=w)
        self.proto = Proto(w[2], w[1])
        self.m3 = nn.Sequential(Conv(w[2], NM, 3), Conv(NM, NM, 3), nn.Conv2d(NM, NM, 1))
        self.m4 = nn.Sequential(Conv(w[3], NM, 3), Conv(NM, NM, 3), nn.Conv2d(NM, NM, 1))

    def forward(self, x):
        f4 = self.s2(self.stem(x))
        p3 = self.s3(f4)
        p4 = self.s4(p3)
        p5 = self.s5(p4)
        n4 = self.n4(torch.cat([self.up(p5), p4], 1))
        n3 = self.n3(torch.cat([self.up(n4), p3], 1))
        box, cls, hw = flatten_outputs([self.h3(n3), self.h4(n4)])
        coef = torch.cat([self.m3(n3).flatten(2), self.m4(n4).flatten(2)], 2).transpose(1, 2)
        protos = self.proto(n3, f4)
        pts, st = make_anchors(hw, self.strides, x.device, box.dtype)
        d = F.softplus(box) * st
        if self.export:
            c = pts + (d[..., 2:] - d[..., :2]) / 2
            out0 = torch.cat([c, d[..., :2] + d[..., 2:], cls.sigmoid(), coef], -1).transpose(1, 2)
            return out0, protos
        boxes = torch.cat([pts - d[..., :2], pts + d[..., 2:]], -1)
        return (boxes, cls, pts, st[:, 0]), coef, protos


def mask_loss(det, coef, protos, targets, masks):
    """BCE of each positive anchor's mask logits against its instance (prototype resolution),
    summed inside the instance box, divided by the box area; mean over positives."""
    _, _, pts, st = det
    B, C, P, _ = protos.shape
    total, npos = protos.sum() * 0.0, 0
    yy = torch.arange(P, dtype=torch.float32)[None, :, None]
    xx = torch.arange(P, dtype=torch.float32)[None, None, :]
    for b in range(B):
        gt = torch.from_numpy(targets[b])
        if gt.shape[0] == 0:
            continue
        idx, _ = assign(pts, st, gt, torch.zeros((0, 5)))
        pos = idx >= 0
        if not pos.any():
            continue
        g = idx[pos]
        logits = (coef[b, pos] @ protos[b].reshape(C, -1)).reshape(-1, P, P)
        tgt = torch.from_numpy(masks[b])[g]
        bx = gt[g, 1:5] / 4.0
        inside = ((xx >= bx[:, 0, None, None].floor()) & (xx < bx[:, 2, None, None].ceil())
                  & (yy >= bx[:, 1, None, None].floor()) & (yy < bx[:, 3, None, None].ceil())).float()
        area = (inside.sum((1, 2))).clamp(min=1.0)
        bce = F.binary_cross_entropy_with_logits(logits, tgt, reduction="none")
        total = total + ((bce * inside).sum((1, 2)) / area).sum()
        npos += int(pos.sum())
    return total / max(npos, 1)


# ----------------------------------------------------------------------------- inference / metrics
def predict_rows(run_batch, rows, batch=8, conf=0.01, max_det=30):
    """run_batch(x [B,3,S,S] float32 numpy) -> (out0 [B, 4+nc+32, N], protos [B, 32, S/4, S/4]).
    Returns per row the decoded detections (scripts/reference_segment_input.py)."""
    from reference_segment_input import postprocess
    res = []
    for i in range(0, len(rows), batch):
        chunk = rows[i:i + batch]
        x = np.concatenate([preprocess(r["image"], (SIZE, SIZE), 3) for r in chunk])
        o0, o1 = run_batch(x)
        for j, r in enumerate(chunk):
            res.append(postprocess(o0[j:j + 1], o1[j:j + 1], (SIZE, SIZE), r["image"].shape[:2], len(NAMES),
                                   conf=conf, iou=0.7, max_det=max_det))
    return res


def mask_iou(a, b):
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return inter / union if union else 0.0


def box_iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


def ap50(rows, preds, kind="mask"):
    """Per-class AP at IoU 0.5 (COCO 101-point interpolation, greedy matching by score).
    rows: tiles with instances; preds: postprocess results.  Returns {class: AP or None}."""
    out = {}
    for c in range(len(NAMES)):
        recs, ngt = [], 0
        for r, p in zip(rows, preds):
            gts = [unpack(i)[1] for i in r["inst"] if i[0] == c]
            gboxes = []
            for m in gts:
                ys, xs = np.nonzero(m)
                gboxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            ngt += len(gts)
            used = [False] * len(gts)
            for k in np.argsort(-p["scores"], kind="stable"):
                if p["classes"][k] != c:
                    continue
                best, bj = 0.5, -1
                for j in range(len(gts)):
                    if used[j]:
                        continue
                    iou = mask_iou(p["masks"][k], gts[j]) if kind == "mask" else box_iou(p["boxes"][k], gboxes[j])
                    if iou >= best:
                        best, bj = iou, j
                if bj >= 0:
                    used[bj] = True
                recs.append((p["scores"][k], bj >= 0))
        if ngt == 0:
            out[NAMES[c]] = None
            continue
        recs.sort(key=lambda t: -t[0])
        tp = np.cumsum([t for _, t in recs]) if recs else np.zeros(0)
        fp = np.cumsum([not t for _, t in recs]) if recs else np.zeros(0)
        rec = tp / ngt if recs else np.zeros(0)
        prec = tp / np.maximum(tp + fp, 1e-9) if recs else np.zeros(0)
        mpre = np.concatenate([[0.0], prec, [0.0]])
        mrec = np.concatenate([[0.0], rec, [1.0]])
        mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
        xs = np.linspace(0, 1, 101)
        out[NAMES[c]] = float(np.mean(mpre[np.searchsorted(mrec, xs, side="left")].clip(0)))
    return out


# ----------------------------------------------------------------------------- training
def train(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    rows = load_rows(a.out)
    tr = [r for r in rows if r["split"] == "train" and r["cls"] != "free" and r["inst"]]
    free = [r for r in rows if r["split"] == "train" and r["cls"] == "free"]
    va = [r for r in rows if r["split"] == "val" and r["cls"] != "free" and r["inst"]]
    print(f"mtd_seg: {len(tr)} defective train tiles, {len(free)} free train tiles, {len(va)} val tiles",
          flush=True)
    model = SegNet()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=5e-4)
    ema = EMA(model, decay=0.999)
    it, best, elapsed0 = 0, -1.0, 0.0
    ck = os.path.join(a.out, "last.pt")
    if a.resume and os.path.exists(ck):
        st = torch.load(ck, map_location="cpu")
        model.load_state_dict(st["train_model"])
        ema.m.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        it, ema.n, best, elapsed0 = st["it"], st["ema_n"], st["best"], st["elapsed"]
        rng = np.random.default_rng([a.seed, it])
        print(f"resumed at iteration {it}, {elapsed0 / 60:.1f} min", flush=True)
    start = time.time() - elapsed0
    budget = a.minutes * 60
    log = open(os.path.join(a.out, "log.txt"), "a")

    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    def save(path):
        torch.save({"model": ema.m.state_dict(), "train_model": model.state_dict(), "opt": opt.state_dict(),
                    "it": it, "ema_n": ema.n, "best": best, "elapsed": time.time() - start,
                    "args": vars(a)}, path + ".tmp")
        os.replace(path + ".tmp", path)

    def validate():
        nonlocal best
        t = time.time()
        m = ema.m.eval()
        m.export = True

        def run_batch(x):
            with torch.no_grad():
                o0, o1 = m(torch.from_numpy(x))
            return o0.numpy(), o1.numpy()

        preds = predict_rows(run_batch, va)
        m.export = False
        maps = ap50(va, preds, "mask")
        boxes = ap50(va, preds, "box")
        vals = [v for v in maps.values() if v is not None]
        score = float(np.mean(vals))
        say(f"val it {it}: mask mAP50 {score:.4f} box mAP50 "
            f"{np.mean([v for v in boxes.values() if v is not None]):.4f} "
            + " ".join(f"[{k}] m{v:.2f} b{boxes[k]:.2f}" for k, v in maps.items() if v is not None)
            + f" ({time.time() - t:.0f}s)")
        if score > best:
            best = score
            torch.save({"model": ema.m.state_dict(), "it": it, "mask_ap50": maps, "box_ap50": boxes,
                        "score": score}, os.path.join(a.out, "best.pt"))

    warm = 100
    last_ck = last_val = time.time()
    while True:
        el = time.time() - start
        frac = min(1.0, el / budget)
        if a.iters:
            frac = max(frac, it / a.iters)
        if frac >= 1.0:
            break
        lr = a.lr * min(1.0, (it + 1) / warm) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        for gp in opt.param_groups:
            gp["lr"] = lr
        xs, ts, ms = [], [], []
        for _ in range(a.batch):
            r = free[int(rng.integers(0, len(free)))] if rng.random() < a.free_frac else tr[int(rng.integers(0, len(tr)))]
            x, b, m = sample(rng, r, a.crop)
            xs.append(x)
            ts.append(b)
            ms.append(m)
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float().div_(255.0)
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=BF16 and not a.fp32):
            det, coef, protos = model(x)
        det = tuple(o.float() for o in det)
        ldet, parts = compute_loss(det, ts, [np.zeros((0, 5), np.float32)] * len(ts))
        lmask = mask_loss(det, coef.float(), protos.float(), ts, ms)
        loss = ldet + a.mask_gain * lmask
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        ema.update(model)
        it += 1
        if it % 25 == 0:
            say(f"it {it} t {el / 60:.1f}m lr {lr:.2e} loss {float(loss):.3f} cls {parts[0]:.3f} "
                f"giou {parts[1]:.3f} l1 {parts[2]:.3f} mask {float(lmask):.3f} {el / max(it, 1):.2f}s/it")
        if time.time() - last_ck > 120:
            save(ck)
            last_ck = time.time()
        if time.time() - last_val > a.val_every * 60:
            validate()
            last_val = time.time()
    save(ck)
    validate()
    say(f"done: {it} iterations in {(time.time() - start) / 60:.1f} min; best val mask mAP50 {best:.4f}")


# ----------------------------------------------------------------------------- export
def export(a):
    import onnx
    import onnxruntime as ort
    st = torch.load(os.path.join(a.out, a.ckpt), map_location="cpu")
    model = SegNet()
    model.load_state_dict(st["model"])
    model.eval()
    model.export = True
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        r0, r1 = (t.numpy() for t in model(x))
    os.makedirs(os.path.dirname(os.path.abspath(a.model)), exist_ok=True)
    kw = dict(input_names=["images"], output_names=["output0", "output1"], opset_version=17,
              do_constant_folding=True)
    try:
        torch.onnx.export(model, (x,), a.model, dynamo=False, **kw)
    except TypeError:
        torch.onnx.export(model, (x,), a.model, **kw)
    m = onnx.load(a.model)
    params = sum(p.numel() for p in model.parameters())
    meta = {
        "description": ("gst-plugin-defect instance segmentation of magnetic-tile defects (Magnetic Tile "
                        "Defect dataset, five defect classes), trained from scratch on the defective tiles "
                        "of the train split; YOLO-style anchor-free head, strides 8/16, 32 prototypes at "
                        f"stride 4, {params} params"),
        "dataset": split_note(a.out),
        "author": "gst-plugin-defect",
        "license": "MIT OR Apache-2.0 (the code); weights trained on the Magnetic Tile Defect dataset",
        "version": VERSION,
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "task": "segment",
        "stride": "16",
        "strides": "[8, 16]",
        "batch": "1",
        "imgsz": f"[{SIZE}, {SIZE}]",
        "names": "{" + ", ".join(f"{i}: '{n}'" for i, n in enumerate(NAMES)) + "}",
        "channels": "3",
        "train_iterations": str(st.get("it", "")),
        "val_mask_ap50": str({k: (round(v, 4) if v is not None else None) for k, v in st.get("mask_ap50", {}).items()}),
        "preprocess": "letterbox (cv2.INTER_LINEAR, centred, pad 114), RGB, /255",
        "output": (f"output0 [1, 4+nc+{NM}, N]: cx, cy, w, h (input pixels), sigmoid class scores, {NM} mask "
                   f"coefficients; output1 [1, {NM}, {SIZE // 4}, {SIZE // 4}] prototypes; "
                   "mask = sigmoid(coefficients . prototypes) cropped to the box"),
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "gst-plugin-defect training/mtd_seg.py"
    m.doc_string = meta["description"]
    onnx.checker.check_model(m)
    onnx.save(m, a.model)
    sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    o0, o1 = sess.run(None, {"images": x.numpy()})
    n = (SIZE // 8) ** 2 + (SIZE // 16) ** 2
    assert o0.shape == r0.shape == (1, 4 + len(NAMES) + NM, n), o0.shape
    assert o1.shape == r1.shape == (1, NM, SIZE // 4, SIZE // 4), o1.shape
    print(f"exported {a.model} ({os.path.getsize(a.model) / 1e6:.2f} MB), iteration {st.get('it')}: "
          f"output0 {list(o0.shape)}, output1 {list(o1.shape)}; onnxruntime vs torch max abs diff "
          f"{np.abs(o0 - r0).max():.2e} / {np.abs(o1 - r1).max():.2e}")
    assert np.allclose(o0[:, 4:], r0[:, 4:], atol=1e-3) and np.allclose(o0[:, :4], r0[:, :4], atol=1e-2)
    assert np.allclose(o1, r1, atol=1e-3)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("data")
    p.add_argument("--mtd", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--split-by", default="number", choices=SPLITS_BY,
                   help="number: n %% 5 of each tile's own number; part: every lighting view of a tile in "
                        "the split of its smallest number (training/mtd.py list_tiles)")
    p = sub.add_parser("train")
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=80.0)
    p.add_argument("--iters", type=int, default=0, help="stop after this many iterations (0: time only)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop", type=int, default=224, help="training window (multiple of 16; 0: the whole input)")
    p.add_argument("--free-frac", type=float, default=0.15)
    p.add_argument("--mask-gain", type=float, default=2.0)
    p.add_argument("--val-every", type=float, default=10.0, help="minutes between validations")
    p.add_argument("--fp32", action="store_true", help="no bfloat16 autocast (used where the CPU has bf16)")
    p.add_argument("--resume", action="store_true")
    p = sub.add_parser("export")
    p.add_argument("--out", required=True)
    p.add_argument("--ckpt", default="best.pt")
    p.add_argument("--model", required=True)
    a = ap.parse_args()
    {"data": data, "train": train, "export": export}[a.cmd](a)


if __name__ == "__main__":
    main()
