#!/usr/bin/env python3
"""Train the surface-defect detector on CPU.

    python training/train.py --data training/data --neu training/data/neu \
        --init training/runs/init.pt --out training/runs/exp --minutes 240

Synthetic images are letterboxed to 384x640 (like the plugin), then random CROP x CROP crops
with scale jitter.  NEU-DET images (``--neu``, the output of training/neu_det.py; a fraction
``--neu-frac`` of every batch) are placed at a random scale (0.45x to 4x their 200 px: the plugin
shows them at 1.92x in a 384x640 input, half and twice that, or at 0.5x as a 200x200 window of a
1280x720 frame), alone, cropped, or as a mosaic of several, on the letterbox grey, a plain grey
or a clean synthetic surface.  Then flips/rot90, brightness and contrast (x0.6 to x1.35), blur,
sensor noise, grey conversion and JPEG artefacts for both.
Assignment: centre sampling (k nearest in-box locations per level, size ranges per
level); class targets are IoU-aware soft labels (BCE), box loss GIoU + L1.
"""
import argparse
import glob
import math
import os
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Detector, NC  # noqa: E402

IMGSZ = (384, 640)  # h, w
CROP = 384
NEU_EVAL_SCALE = IMGSZ[0] / 200.0  # a 200x200 NEU image fills the input's height


def letterbox(img, hw=IMGSZ, pad=114):
    h, w = img.shape[:2]
    r = min(hw[0] / h, hw[1] / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    if (nw, nh) != (w, h):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (hw[0] - nh) // 2, (hw[1] - nw) // 2
    out = np.full((hw[0], hw[1], 3), pad, np.uint8)
    out[top:top + nh, left:left + nw] = img
    return out, r, left, top


def load_split(d, limit=None, hw=IMGSZ):
    ims, labs = [], []
    files = sorted(glob.glob(os.path.join(d, "images", "*.png")) + glob.glob(os.path.join(d, "images", "*.jpg")))[:limit]
    for p in files:
        im = cv2.imread(p)  # BGR
        H, W = im.shape[:2]
        lb, r, dx, dy = letterbox(im, hw)
        lp = os.path.join(os.path.dirname(os.path.dirname(p)), "labels", os.path.splitext(os.path.basename(p))[0] + ".txt")
        lab = np.array([list(map(float, l.split()[:5])) for l in open(lp) if l.strip()], np.float32).reshape(-1, 5)
        b = np.zeros((len(lab), 5), np.float32)
        if len(lab):
            b[:, 0] = lab[:, 0]
            b[:, 1] = (lab[:, 1] - lab[:, 3] / 2) * W * r + dx
            b[:, 2] = (lab[:, 2] - lab[:, 4] / 2) * H * r + dy
            b[:, 3] = (lab[:, 1] + lab[:, 3] / 2) * W * r + dx
            b[:, 4] = (lab[:, 2] + lab[:, 4] / 2) * H * r + dy
        ims.append(cv2.cvtColor(lb, cv2.COLOR_BGR2RGB))
        labs.append(b)
    return ims, labs


def augment(rng, img, boxes):
    """Random scaled crop -> CROP x CROP.  Returns img uint8, keep boxes, ignore boxes."""
    s = math.exp(rng.uniform(math.log(0.7), math.log(1.35)))
    cs = int(round(CROP / s))
    H, W = img.shape[:2]
    if cs > H:
        cs = H
        s = CROP / cs
    x0 = int(rng.integers(0, W - cs + 1))
    y0 = int(rng.integers(0, H - cs + 1))
    # bias crops towards defects half of the time
    if len(boxes) and rng.random() < 0.5:
        b = boxes[int(rng.integers(0, len(boxes)))]
        cx, cy = (b[1] + b[3]) / 2, (b[2] + b[4]) / 2
        x0 = int(np.clip(cx - rng.uniform(0.2, 0.8) * cs, 0, W - cs))
        y0 = int(np.clip(cy - rng.uniform(0.2, 0.8) * cs, 0, H - cs))
    crop = img[y0:y0 + cs, x0:x0 + cs]
    crop = cv2.resize(crop, (CROP, CROP), interpolation=cv2.INTER_LINEAR)
    keep, ign = [], []
    for c, a0, b0, a1, b1 in boxes:
        X0, Y0, X1, Y1 = (a0 - x0) * s, (b0 - y0) * s, (a1 - x0) * s, (b1 - y0) * s
        area = max(1e-3, (X1 - X0) * (Y1 - Y0))
        cx0, cy0, cx1, cy1 = max(0, X0), max(0, Y0), min(CROP, X1), min(CROP, Y1)
        if cx1 - cx0 < 2 or cy1 - cy0 < 2:
            continue
        vis = (cx1 - cx0) * (cy1 - cy0) / area
        (keep if vis >= 0.6 else ign).append([c, cx0, cy0, cx1, cy1])
    keep = np.array(keep, np.float32).reshape(-1, 5)
    ign = np.array(ign, np.float32).reshape(-1, 5)
    return post_augment(rng, crop, keep, ign)


def post_augment(rng, crop, keep, ign, photometric=True):
    """Flips / transpose, then (unless already done per image) brightness and contrast,
    then blur, sensor noise and compression artefacts on a square (CROP x CROP) uint8 RGB image."""
    n = crop.shape[0]
    # geometric: flips / transpose
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
        for a in (keep, ign):
            a[:, [1, 3]] = n - a[:, [3, 1]]
    if rng.random() < 0.5:
        crop = crop[::-1]
        for a in (keep, ign):
            a[:, [2, 4]] = n - a[:, [4, 2]]
    if rng.random() < 0.3:
        crop = crop.transpose(1, 0, 2)
        for a in (keep, ign):
            a[:, [1, 2, 3, 4]] = a[:, [2, 1, 4, 3]]
    crop = np.ascontiguousarray(crop).astype(np.float32)
    # photometric
    if rng.random() < 0.25:
        crop = np.repeat(crop.mean(2, keepdims=True), 3, 2)
    elif rng.random() < 0.3:
        crop = crop[..., rng.permutation(3)]
    if photometric:
        crop = brightness_contrast(rng, crop)
    if rng.random() < 0.3:  # slight defocus / motion blur
        if rng.random() < 0.7:
            crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.5, 1.3))
        else:
            k = np.zeros((5, 5), np.float32); k[2, :] = 1 / 5
            if rng.random() < 0.5:
                k = k.T.copy()
            crop = cv2.filter2D(crop, -1, k)
    if rng.random() < 0.4:  # sensor noise
        crop = crop + rng.normal(0, rng.uniform(1.5, 7.0), crop.shape[:2] + ((1,) if rng.random() < 0.5 else (3,))).astype(np.float32)
    crop = np.clip(crop, 0, 255).astype(np.uint8)
    r = rng.random()
    if r < 0.3:  # JPEG artefacts
        ok, enc = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 95))])
        crop = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
    elif r < 0.45:  # H.264-like: chroma subsampling + blocky low-quality coding of a smoothed image
        yuv = cv2.cvtColor(crop, cv2.COLOR_RGB2YUV)
        uv = cv2.resize(cv2.resize(yuv[..., 1:], (n // 2, n // 2), interpolation=cv2.INTER_AREA), (n, n))
        yuv[..., 1:] = uv
        crop = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB)
        crop = cv2.GaussianBlur(crop, (0, 0), 0.6)
        ok, enc = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 85))])
        crop = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
    return crop, keep, ign


def brightness_contrast(rng, img):
    """Gain x0.6..x1.35 (what a line's lighting and exposure change), offset, contrast."""
    img = img.astype(np.float32) * math.exp(rng.uniform(math.log(0.6), math.log(1.35))) + rng.uniform(-15, 15)
    m = img.mean()
    return (img - m) * math.exp(rng.uniform(math.log(0.7), math.log(1.35))) + m


def load_neu(d):
    """NEU split written by neu_det.py: grey uint8 images and boxes [cls, x1, y1, x2, y2] (px)."""
    ims, labs = [], []
    for p in sorted(glob.glob(os.path.join(d, "images", "*.jpg"))):
        im = cv2.imread(p, cv2.IMREAD_GRAYSCALE)
        H, W = im.shape
        lp = os.path.join(d, "labels", os.path.splitext(os.path.basename(p))[0] + ".txt")
        lab = np.array([list(map(float, l.split()[:5])) for l in open(lp) if l.strip()], np.float32).reshape(-1, 5)
        b = np.zeros((len(lab), 5), np.float32)
        if len(lab):
            b[:, 0] = lab[:, 0]
            b[:, 1] = (lab[:, 1] - lab[:, 3] / 2) * W
            b[:, 2] = (lab[:, 2] - lab[:, 4] / 2) * H
            b[:, 3] = (lab[:, 1] + lab[:, 3] / 2) * W
            b[:, 4] = (lab[:, 2] + lab[:, 4] / 2) * H
        ims.append(im)
        labs.append(b)
    return ims, labs


def clean_surfaces(count, seed=7, size=CROP):
    """Defect-free synthetic grey surfaces (size x size, uint8) used as NEU backgrounds."""
    from generate import render_surface
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        kind = ["rolled", "brushed", "cast"][int(rng.integers(0, 3))]
        g = render_surface(rng, size, size, kind, np.ones(3, np.float32), int(rng.integers(0, 2)))[..., 0]
        g = cv2.GaussianBlur(g, (0, 0), rng.uniform(0.3, 1.0))
        out.append(np.clip(g * 255 * rng.uniform(0.5, 1.4), 0, 255).astype(np.uint8))
    return out


def neu_scale(rng):
    """Scale of a NEU image in the training crop, relative to its 200 px."""
    r = rng.random()
    if r < 0.5:  # around how the plugin shows a NEU image (1.92x)
        return NEU_EVAL_SCALE * math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
    if r < 0.8:  # smaller: half size (0.96x), a 200x200 window of a 1280x720 frame (0.5x)
        return math.exp(rng.uniform(math.log(0.45), math.log(1.55)))
    return math.exp(rng.uniform(math.log(2.4), math.log(4.0)))  # twice the size (3.84x)


def neu_sample(rng, ims, labs, backgrounds, crop_size=CROP, scale=neu_scale):
    """One crop_size x crop_size RGB training image made of NEU-DET images (each at the scale
    ``scale(rng)`` draws); returns img, keep, ignore."""
    CROP = crop_size  # noqa: N806
    s = scale(rng)
    size = int(round(200 * s))
    # background: the letterbox grey, a plain grey level, or a clean synthetic surface
    r = rng.random()
    if r < 0.45:
        canvas = np.full((CROP, CROP), 114, np.float32)
    elif r < 0.65:
        canvas = np.full((CROP, CROP), rng.uniform(40, 200), np.float32) + rng.normal(0, 3, (CROP, CROP))
    else:
        canvas = backgrounds[int(rng.integers(0, len(backgrounds)))].astype(np.float32)
        if rng.random() < 0.5:
            canvas = canvas.T.copy()
    keep, ign = [], []

    def place(i, x0, y0, scale):
        """Pastes image i scaled by `scale` with its top-left at (x0, y0) (may be negative)."""
        im = ims[i]
        sz = int(round(im.shape[0] * scale))
        img = cv2.resize(im, (sz, sz), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        img = brightness_contrast(rng, img)
        boxes = labs[i][:, 1:5] * scale
        if rng.random() < 0.5:  # each image of a mosaic turned on its own (the crop is turned later)
            for _ in range(int(rng.integers(1, 4))):  # np.rot90: (x, y) -> (y, size - x)
                img = np.rot90(img)
                boxes = np.stack([boxes[:, 1], sz - boxes[:, 2], boxes[:, 3], sz - boxes[:, 0]], 1)
        ax0, ay0 = max(0, x0), max(0, y0)
        ax1, ay1 = min(CROP, x0 + sz), min(CROP, y0 + sz)
        if ax1 <= ax0 or ay1 <= ay0:
            return
        canvas[ay0:ay1, ax0:ax1] = img[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0]
        for c, (a0, b0, a1, b1) in zip(labs[i][:, 0], boxes):
            X0, Y0, X1, Y1 = a0 + x0, b0 + y0, a1 + x0, b1 + y0
            area = max(1e-3, (X1 - X0) * (Y1 - Y0))
            cx0, cy0, cx1, cy1 = max(ax0, X0), max(ay0, Y0), min(ax1, X1), min(ay1, Y1)
            if cx1 - cx0 < 2 or cy1 - cy0 < 2:
                continue
            vis = (cx1 - cx0) * (cy1 - cy0) / area
            (keep if vis >= 0.6 else ign).append([c, cx0, cy0, cx1, cy1])

    if size >= CROP:  # one image, cropped
        x0 = -int(rng.integers(0, size - CROP + 1))
        y0 = -int(rng.integers(0, size - CROP + 1))
        place(int(rng.integers(0, len(ims))), x0, y0, s)
    elif size * 2 <= CROP and rng.random() < 0.6:  # mosaic of n x n images
        n = CROP // size
        ox = int(rng.integers(0, CROP - n * size + 1))
        oy = int(rng.integers(0, CROP - n * size + 1))
        for gy in range(n):
            for gx in range(n):
                if rng.random() < 0.85:
                    place(int(rng.integers(0, len(ims))), ox + gx * size, oy + gy * size, s)
    else:
        x0 = int(rng.integers(0, CROP - size + 1))
        y0 = int(rng.integers(0, CROP - size + 1))
        place(int(rng.integers(0, len(ims))), x0, y0, s)
    crop = np.repeat(np.clip(canvas, 0, 255).astype(np.uint8)[..., None], 3, 2)
    keep = np.array(keep, np.float32).reshape(-1, 5)
    ign = np.array(ign, np.float32).reshape(-1, 5)
    return post_augment(rng, crop, keep, ign, photometric=False)


def box_iou_pair(a, b):
    """a, b: (..., 4) xyxy, elementwise -> iou, giou."""
    ix1, iy1 = torch.max(a[..., 0], b[..., 0]), torch.max(a[..., 1], b[..., 1])
    ix2, iy2 = torch.min(a[..., 2], b[..., 2]), torch.min(a[..., 3], b[..., 3])
    inter = (ix2 - ix1).clamp(0) * (iy2 - iy1).clamp(0)
    aa = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    ab = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = aa + ab - inter + 1e-7
    iou = inter / union
    cx1, cy1 = torch.min(a[..., 0], b[..., 0]), torch.min(a[..., 1], b[..., 1])
    cx2, cy2 = torch.max(a[..., 2], b[..., 2]), torch.max(a[..., 3], b[..., 3])
    carea = (cx2 - cx1) * (cy2 - cy1) + 1e-7
    return iou, iou - (carea - union) / carea


LEVEL_RANGE = {8: (0, 128), 16: (48, 1e9)}
TOPK = 9


def assign(pts, st, gt, ign, level_range=None):
    """pts (N,2), st (N,), gt (M,5) [cls,x1,y1,x2,y2] -> gt index per point (-1 none), ignore mask.
    level_range: {stride: (min, max) object size in px} (default LEVEL_RANGE)."""
    N = pts.shape[0]
    ignore = torch.zeros(N, dtype=torch.bool)
    for g in ign:
        ignore |= (pts[:, 0] >= g[1]) & (pts[:, 0] <= g[3]) & (pts[:, 1] >= g[2]) & (pts[:, 1] <= g[4])
    M = gt.shape[0]
    idx = torch.full((N,), -1, dtype=torch.long)
    if M == 0:
        return idx, ignore
    x, y = pts[:, 0:1], pts[:, 1:2]
    inside = (x > gt[None, :, 1]) & (x < gt[None, :, 3]) & (y > gt[None, :, 2]) & (y < gt[None, :, 4])
    gcx, gcy = (gt[:, 1] + gt[:, 3]) / 2, (gt[:, 2] + gt[:, 4]) / 2
    dist = ((x - gcx[None]) ** 2 + (y - gcy[None]) ** 2).sqrt()  # N,M
    size = torch.max(gt[:, 3] - gt[:, 1], gt[:, 4] - gt[:, 2])
    cand = torch.zeros(N, M, dtype=torch.bool)
    for s, (lo, hi) in (level_range or LEVEL_RANGE).items():
        lvl = st == s
        ok = (size >= lo) & (size <= hi)
        d = torch.where(inside & lvl[:, None] & ok[None], dist, torch.full_like(dist, 1e9))
        k = min(TOPK, N)
        v, ii = d.topk(k, 0, largest=False)
        sel = torch.zeros(N, M, dtype=torch.bool)
        sel.scatter_(0, ii, v < 1e8)
        cand |= sel
    # fallback: GT without any candidate -> nearest stride-8 point
    none = ~cand.any(0)
    if none.any():
        d8 = torch.where((st == 8)[:, None], dist, torch.full_like(dist, 1e9))
        nn_ = d8.argmin(0)
        for j in torch.nonzero(none).flatten():
            cand[nn_[j], j] = True
    area = (gt[:, 3] - gt[:, 1]) * (gt[:, 4] - gt[:, 2])
    a = torch.where(cand, area[None].expand(N, M), torch.full((N, M), 1e12))
    best = a.argmin(1)
    has = cand.any(1)
    idx[has] = best[has]
    return idx, ignore


def compute_loss(model_out, targets, ignores, level_range=None):
    boxes, logits, pts, st = model_out  # B,N,4 ; B,N,nc
    B, N, _ = boxes.shape
    tcls = torch.zeros_like(logits)
    weight = torch.ones_like(logits[..., 0])
    box_l, l1_l, tsum = 0.0, 0.0, 0.0
    for b in range(B):
        gt = torch.from_numpy(targets[b])
        idx, ign = assign(pts, st, gt, torch.from_numpy(ignores[b]), level_range)
        weight[b, ign & (idx < 0)] = 0.0
        pos = idx >= 0
        if not pos.any():
            continue
        g = gt[idx[pos]]
        pb = boxes[b, pos]
        iou, giou = box_iou_pair(pb, g[:, 1:])
        ti = iou.detach().clamp(0)
        # normalise per GT so the best location of every object gets target 1
        gmax = torch.zeros(gt.shape[0]).scatter_reduce(0, idx[pos], ti, "amax", include_self=True)
        t = (ti / gmax[idx[pos]].clamp(min=1e-6)).clamp(0, 1)
        cidx = g[:, 0].long()
        tt = torch.zeros(pos.sum(), logits.shape[2])
        tt[torch.arange(len(cidx)), cidx] = t
        tcls[b, pos] = tt
        w = t.detach()
        s = st[pos][:, None]
        p = pts[pos]
        tl = torch.stack([p[:, 0] - g[:, 1], p[:, 1] - g[:, 2], g[:, 3] - p[:, 0], g[:, 4] - p[:, 1]], 1) / s
        pl = torch.stack([p[:, 0] - pb[:, 0], p[:, 1] - pb[:, 1], pb[:, 2] - p[:, 0], pb[:, 3] - p[:, 1]], 1) / s
        box_l = box_l + ((1 - giou) * w).sum()
        l1_l = l1_l + (F.smooth_l1_loss(pl, tl, reduction="none").mean(1) * w).sum()
        tsum += float(w.sum())
    tsum = max(tsum, 1.0)
    bce = F.binary_cross_entropy_with_logits(logits, tcls, reduction="none").sum(2) * weight
    lcls = bce.sum() / tsum
    lbox = box_l / tsum
    ll1 = l1_l / tsum
    return lcls + 2.5 * lbox + 0.5 * ll1, (float(lcls), float(lbox), float(ll1))


def cpu_has_bf16():
    """bfloat16 autocast pays only where the CPU computes in bf16 (AVX512-BF16 or AMX);
    elsewhere PyTorch emulates it and a step takes twice as long."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


BF16 = cpu_has_bf16()


def validate(model, ims, labs, batch=8, conf=0.25):
    """EMA-model mAP@0.5 / P / R on letterboxed val images (same metrics as evaluate.py)."""
    from evaluate import Accumulator, postprocess
    acc = Accumulator(NC, conf)
    model.eval()
    model.export = True
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=BF16):
        for i in range(0, len(ims), batch):
            x = torch.from_numpy(np.stack(ims[i:i + batch])).permute(0, 3, 1, 2).float().div_(255.0)
            out = model(x).float().numpy()
            for j, o in enumerate(out):
                acc.add(postprocess(o, 0.001, 0.45), labs[i + j])
    model.export = False
    rows, summ = acc.results()
    return rows, summ


class EMA:
    def __init__(self, model, decay=0.9995):
        import copy
        self.m = copy.deepcopy(model).eval()
        self.decay = decay
        self.n = 0
        for p in self.m.parameters():
            p.requires_grad_(False)

    def update(self, model):
        self.n += 1
        d = self.decay * (1 - math.exp(-self.n / 500))
        with torch.no_grad():
            msd = model.state_dict()
            for k, v in self.m.state_dict().items():
                if v.dtype.is_floating_point:
                    v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
                else:
                    v.copy_(msd[k])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="training/data")
    ap.add_argument("--out", default="training/runs/exp")
    ap.add_argument("--minutes", type=float, default=38.0)
    ap.add_argument("--iters", type=int, default=0,
                    help="length of the run in iterations instead of minutes (a shared machine's speed varies)")
    ap.add_argument("--neu", default=None, help="NEU-DET splits written by training/neu_det.py")
    ap.add_argument("--neu-frac", type=float, default=0.6, help="share of NEU-DET samples in a batch")
    ap.add_argument("--init", default=None, help="start from this checkpoint's weights (init_from_onnx.py)")
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bench", type=int, default=0, help="only time this many iterations")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    ap.add_argument("--fp32", action="store_true", help="no bfloat16 autocast (it is used only where the CPU has bf16)")
    ap.add_argument("--val-every", type=float, default=8.0, help="minutes between validations")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    ims, labs = load_split(os.path.join(a.data, "train"), a.limit)
    print(f"loaded {len(ims)} train images in {time.time() - t0:.0f}s", flush=True)
    vims, vlabs = load_split(os.path.join(a.data, "val"), None) if os.path.isdir(os.path.join(a.data, "val")) else ([], [])
    nims = nlabs = nvims = nvlabs = backgrounds = None
    if a.neu:
        nims, nlabs = load_neu(os.path.join(a.neu, "train"))
        # validation exactly as the plugin sees a NEU image: letterboxed into 384x640
        nvims, nvlabs = load_split(os.path.join(a.neu, "val"), None)
        backgrounds = clean_surfaces(64)
        print(f"NEU-DET: {len(nims)} train, {len(nvims)} val images; {a.neu_frac:.0%} of each batch", flush=True)
    model = Detector()
    if a.init:
        model.load_state_dict(torch.load(a.init, map_location="cpu")["model"])
        print(f"initialised from {a.init}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=5e-4)
    ema = EMA(model)
    budget = a.minutes * 60
    start = time.time()
    it = 0
    best = -1.0
    ck = os.path.join(a.out, "last.pt")
    if a.resume and os.path.exists(ck):
        st = torch.load(ck, map_location="cpu")
        model.load_state_dict(st["train_model"])
        ema.m.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        it, ema.n, best = st["it"], st.get("ema_n", st["it"]), st.get("best", -1.0)
        start -= st.get("elapsed", 0.0)
        rng = np.random.default_rng([a.seed, it])
        print(f"resumed at iteration {it}, {st.get('elapsed', 0) / 60:.1f} min", flush=True)

    def save(path):
        torch.save({"model": ema.m.state_dict(), "train_model": model.state_dict(), "opt": opt.state_dict(),
                    "it": it, "ema_n": ema.n, "best": best, "elapsed": time.time() - start,
                    "args": vars(a)}, path + ".tmp")
        os.replace(path + ".tmp", path)

    def do_val():
        nonlocal best
        if not vims and not nvims:
            return
        t = time.time()
        score, summs = 0.0, {}
        for name, vi, vl in (("synthetic", vims, vlabs), ("neu", nvims, nvlabs)):
            if not vi:
                continue
            rows, summ = validate(ema.m, vi, vl)
            summs[name] = summ
            msg = (f"val {name} it {it}: mAP50 {summ['map50']:.4f} P {summ['precision']:.3f} R {summ['recall']:.3f} "
                   + " ".join(f"[{r['cls']}] P{r['precision']:.2f} R{r['recall']:.2f} AP{r['ap50']:.2f}" for r in rows)
                   + f" ({time.time() - t:.0f}s)")
            print(msg, flush=True)
            log.write(msg + "\n"); log.flush()
            if name == "neu":  # the real images decide; the synthetic ones only guard the videos
                score += summ["map50"]
            else:
                score += (0.5 if nvims else 1.0) * summ["map50"] + (
                    0.0 if nvims else 0.5 * min(r["recall"] for r in rows) + 0.5 * min(r["precision"] for r in rows))
        if score > best:
            best = score
            torch.save({"model": ema.m.state_dict(), "it": it, "val": summs, "score": score},
                       os.path.join(a.out, "best.pt"))
    last_val = time.time()
    warm = 150
    log = open(os.path.join(a.out, "log.txt"), "a")
    last_ckpt = time.time()
    while True:
        el = time.time() - start
        frac = it / a.iters if a.iters else el / budget
        if (a.bench and it >= a.bench) or (not a.bench and frac >= 1.0):
            break
        lr = a.lr * (min(1.0, (it + 1) / warm)) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for gparam in opt.param_groups:
            gparam["lr"] = lr
        bi = rng.integers(0, len(ims), a.batch)
        xs, ts, igs = [], [], []
        for i in bi:
            if nims and rng.random() < a.neu_frac:
                im, k, g = neu_sample(rng, nims, nlabs, backgrounds)
            else:
                im, k, g = augment(rng, ims[i], labs[i])
            xs.append(im)
            ts.append(k)
            igs.append(g)
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float().div_(255.0)
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=BF16 and not a.fp32):
            out = model(x)
        out = tuple(o.float() for o in out)
        loss, parts = compute_loss(out, ts, igs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        ema.update(model)
        it += 1
        if it % 25 == 0 or a.bench:
            msg = (f"it {it} t {el / 60:.1f}m lr {lr:.2e} loss {float(loss):.3f} cls {parts[0]:.3f} "
                   f"giou {parts[1]:.3f} l1 {parts[2]:.3f} {(time.time() - start) / it:.2f}s/it")
            print(msg, flush=True)
            log.write(msg + "\n"); log.flush()
        if time.time() - last_ckpt > 120:
            save(ck)
            last_ckpt = time.time()
        if not a.bench and time.time() - last_val > a.val_every * 60:
            do_val()
            last_val = time.time()
    save(ck)
    if not a.bench:
        do_val()
    print(f"done: {it} iterations in {(time.time() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
