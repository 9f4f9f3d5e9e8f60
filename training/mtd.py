#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Anomaly model for real magnetic tiles (``models/magnetic-tile-anomaly.onnx``), trained on the
defect-free tiles of the Magnetic Tile Defect dataset only, with no pretrained weights.

Recipe (DRAEM-style, discriminative part): a small U-Net learns to segment *synthetic*
anomalies pasted on defect-free training tiles (dark spots, thin dark curves, chipped edges,
Perlin-noise regions darkened / brightened / filled with another tile's texture, cut-paste
patches).  It never sees a real defect: the real defects of the validation split only choose
the checkpoint and the thresholds.  Its sigmoid output is the anomaly map; the image score is
the maximum of the map averaged over a POOL x POOL window.

    DATA=/work/data/Magnetic-tile-defect-datasets
    python training/mtd.py data   --mtd $DATA --out training/runs/mtd       # split, cached arrays
    python training/mtd.py train  --out training/runs/mtd --iters 3000 --minutes 80 [--resume]
    python training/mtd.py export --out training/runs/mtd --model models/magnetic-tile-anomaly.onnx
    python training/mtd.py replay --mtd $DATA --out /tmp/mtd-test --split test    # defect-replay set

Split (by the number n of ``exp<k>_num_<n>.jpg``): n % 5 == 0 test, n % 5 == 1 validation,
the rest train.  Training uses the defect-free train tiles only; defective tiles outside the
validation split are test data (train-split defective tiles included: they are never trained on).

Masks: the dataset's PNG masks (255 on defective pixels).  Four ``uneven`` tiles carry empty
masks: they keep their image-level label ``defective`` (image AUROC, escapes, recall) and are
left out of every pixel figure (``defect-replay --empty-masks image-only``), since their
defective pixels are unknown, not absent.

Model contract (as models/surface-anomaly.onnx): input ``images`` [1, 3, H, W] float32 RGB in
[0, 1], the tile stretched (bilinear, half-pixel centres) to W x H; outputs ``pred_score`` [1, 1]
and ``anomaly_map`` [1, 1, H, W] in [0, 1]; thresholds are metadata (F1-optimal on validation).
"""
import argparse
import datetime
import glob
import json
import math
import os
import re
import sys
import time

import cv2
import numpy as np

VERSION = "1.0.0"
SIZE = 256  # model input H = W: the tiles (about 100-600 x 200-400 px) are stretched to it
POOL = 15  # image score: max of the map averaged over POOL x POOL pixels
CLASSES = ["Blowhole", "Break", "Crack", "Fray", "Uneven"]
FOLDERS = ["MT_Free"] + [f"MT_{c}" for c in CLASSES]


# ----------------------------------------------------------------------------- data
def split_of(number):
    return "test" if number % 5 == 0 else "val" if number % 5 == 1 else "train"


def belongs(cls, split, want):
    """Whether a tile of class cls whose number falls in split is part of the set want: train
    holds the defect-free train tiles only; test holds the defect-free test tiles and every
    defective tile outside validation."""
    if want == "train":
        return cls == "free" and split == "train"
    if want == "test" and cls != "free":
        return split != "val"
    return split == want


# Views of one part: the dataset photographs each tile under up to six lightings (exp1..exp6)
# in quick succession, so a part's views carry numbers a few dozen apart in increasing exp order
# (e.g. exp1_num_1810, exp2_num_1836, ... exp6_num_1965). Sorted by number, a new part starts
# where the number jumps by more than PART_GAP, or by more than PART_STEP where the lighting index
# does not increase; the rule merges rather than splits when in doubt (a merged pair of parts
# only makes the part split stricter).
PART_GAP, PART_STEP = 300, 60
SPLITS_BY = ("number", "part")


def part_ids(names):
    """{name: part id} for file names exp<k>_num_<n>.jpg (any folder), grouped as above."""
    items = []
    for name in names:
        m = re.search(r"exp(\d+)_num_(\d+)\.jpg$", name)
        if m:
            items.append((int(m.group(2)), int(m.group(1)), name))
    items.sort()
    out, pid, prev = {}, -1, None
    for n, e, name in items:
        if prev is None or n - prev[0] > PART_GAP or (e <= prev[1] and n - prev[0] > PART_STEP):
            pid += 1
        out[name] = pid
        prev = (n, e)
    return out


def list_tiles(root, split_by="number"):
    """[(jpg path, mask path, class name ('free' or lower-case defect class), split)].

    split_by "number": the split of the tile's own number n (n % 5, the issue's rule; a part's six
    views fall into different splits). "part": every view of a part takes the split of the part's
    smallest number, so no part is seen in two splits."""
    if split_by not in SPLITS_BY:
        sys.exit(f"mtd: --split-by must be one of {', '.join(SPLITS_BY)}, not {split_by!r}")
    out = []
    for folder in FOLDERS:
        jpgs = sorted(glob.glob(os.path.join(root, folder, "Imgs", "*.jpg")))
        if not jpgs:
            sys.exit(f"mtd: no {folder}/Imgs/*.jpg under {root}")
        for jpg in jpgs:
            m = re.fullmatch(r"exp\d+_num_(\d+)", os.path.splitext(os.path.basename(jpg))[0])
            if not m:
                continue
            out.append((jpg, jpg[:-4] + ".png", folder[3:].lower(), int(m.group(1))))
    if split_by == "number":
        return [(jpg, png, cls, split_of(n)) for jpg, png, cls, n in out]
    pid = part_ids(t[0] for t in out)
    first = {}  # part id -> its smallest number
    for jpg, _, _, n in out:
        first[pid[jpg]] = min(first.get(pid[jpg], n), n)
    return [(jpg, png, cls, split_of(first[pid[jpg]])) for jpg, png, cls, _ in out]


def read_gray(path):
    im = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if im is None:
        sys.exit(f"mtd: cannot read {path}")
    return im


def read_tiles(sel):
    """Images and masks at SIZE x SIZE (uint8) and classes of list_tiles entries."""
    imgs = np.zeros((len(sel), SIZE, SIZE), np.uint8)
    masks = np.zeros((len(sel), SIZE, SIZE), np.uint8)
    for i, (jpg, png, cls, _) in enumerate(sel):
        g = read_gray(jpg)
        # the element's preprocessing: stretch, bilinear with half-pixel centres
        imgs[i] = cv2.resize(g, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
        if cls != "free" and os.path.exists(png):
            m = read_gray(png) > 0  # as defect-replay: any non-zero pixel is defective
            masks[i] = cv2.resize(m.astype(np.uint8), (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
    return imgs, masks, np.array([t[2] for t in sel])


def data(a):
    os.makedirs(os.path.join(a.out, "data"), exist_ok=True)
    tiles = list_tiles(a.mtd, a.split_by)
    with open(os.path.join(a.out, "data", "split_by"), "w") as f:
        f.write(a.split_by + "\n")
    for split in ("train", "val", "test"):
        path = os.path.join(a.out, "data", f"{split}.npz")
        sel = [t for t in tiles if belongs(t[2], t[3], split)]
        imgs, masks, classes = read_tiles(sel)
        np.savez_compressed(path, images=imgs, masks=masks, classes=classes,
                            files=np.array([os.path.relpath(t[0], a.mtd) for t in sel]))
        n_def = int((classes != "free").sum())
        n_empty = int(sum(1 for i in range(len(sel)) if classes[i] != "free" and not masks[i].any()))
        print(f"mtd: {split}: {len(sel)} tiles ({len(sel) - n_def} free, {n_def} defective, "
              f"{n_empty} with an empty mask) -> {path}", flush=True)


def load(out, split):
    z = np.load(os.path.join(out, "data", f"{split}.npz"))
    return z["images"], z["masks"], z["classes"]


# ----------------------------------------------------------------------------- synthetic anomalies
def smooth_noise(rng, h, w, lo=2, hi=6):
    """Perlin-like fractal noise in about [-1, 1]: random grids upsampled (cubic) and summed."""
    acc = np.zeros((h, w), np.float32)
    amp, tot = 1.0, 0.0
    for octave in range(3):
        c = 2 ** int(rng.integers(lo, hi)) * (2 ** octave) // 2 or 1
        g = rng.standard_normal((max(2, c), max(2, c))).astype(np.float32)
        acc += amp * cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
        tot += amp
        amp *= 0.5
    return acc / tot


def region_mask(rng, h, w, max_frac=0.3):
    """A Perlin-noise blob mask covering between ~0.5 % and max_frac of the tile."""
    for _ in range(8):
        n = smooth_noise(rng, h, w, 1, 4)
        t = np.quantile(n, 1.0 - rng.uniform(0.005, max_frac))
        m = (n > t).astype(np.uint8)
        k, lab, stats, _ = cv2.connectedComponentsWithStats(m)
        if k > 1:
            keep = 1 + int(rng.integers(0, min(k - 1, 3)))
            order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:keep] + 1
            m = np.isin(lab, order).astype(np.float32)
            if m.sum() >= 12:
                return m
    return None


def soft(m, sigma):
    return cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma) if sigma > 0 else m.astype(np.float32)


def add_spots(img, rng):
    h, w = img.shape
    m = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 5))):
        c = (int(rng.integers(4, w - 4)), int(rng.integers(4, h - 4)))
        ax = (int(rng.integers(2, 9)), int(rng.integers(2, 9)))
        cv2.ellipse(m, c, ax, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    s = soft(m, rng.uniform(0.5, 1.5))
    f = rng.uniform(0.25, 0.75) if rng.random() < 0.85 else rng.uniform(1.3, 1.8)
    return img * (1 - s) + np.clip(img * f, 0, 1) * s, m > 0.5


def add_curve(img, rng):
    h, w = img.shape
    m = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 3))):
        n = int(rng.integers(3, 7))
        p = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        ang, step = rng.uniform(0, 2 * np.pi), rng.uniform(5, 20)
        pts = [p.copy()]
        for _ in range(n):
            ang += rng.normal(0, 0.6)
            p = p + step * np.array([math.cos(ang), math.sin(ang)])
            pts.append(p.copy())
        cv2.polylines(m, [np.round(np.array(pts)).astype(np.int32)], False, 1.0, int(rng.integers(1, 4)),
                      cv2.LINE_AA)
    s = np.clip(soft(m, rng.uniform(0, 0.8)), 0, 1)
    f = rng.uniform(0.3, 0.8)
    return img * (1 - s) + img * f * s, m > 0.35


def add_chip(img, rng):
    """A chipped edge: an ellipse centred on a border, filled dark (background) or bright."""
    h, w = img.shape
    m = np.zeros((h, w), np.float32)
    side = int(rng.integers(0, 4))
    x = [0, w - 1, int(rng.integers(0, w)), int(rng.integers(0, w))][side]
    y = [int(rng.integers(0, h)), int(rng.integers(0, h)), 0, h - 1][side]
    ax = (int(rng.integers(4, 30)), int(rng.integers(4, 30)))
    cv2.ellipse(m, (x, y), ax, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    m *= (smooth_noise(rng, h, w, 3, 6) > rng.uniform(-0.6, 0.0))
    if m.sum() < 8:
        return img, np.zeros((h, w), bool)
    s = soft(m, 0.7)
    fill = rng.uniform(0.0, 0.15) if rng.random() < 0.7 else rng.uniform(0.6, 1.0)
    return img * (1 - s) + fill * s, m > 0.5


def add_region(img, rng, pool):
    """DRAEM's anomaly source: a Perlin-noise region, darkened / brightened, or filled with
    another tile's texture (flipped, rescaled in contrast), or with a synthetic texture."""
    h, w = img.shape
    m = region_mask(rng, h, w)
    if m is None:
        return img, np.zeros((h, w), bool)
    s = soft(m, rng.uniform(0.5, 3.0))
    kind = rng.random()
    if kind < 0.4:
        f = rng.uniform(0.45, 0.85) if rng.random() < 0.7 else rng.uniform(1.2, 1.6)
        src = np.clip(img * f, 0, 1)
    elif kind < 0.75:
        o = pool[int(rng.integers(0, len(pool)))].astype(np.float32) / 255.0
        o = o[:, ::-1] if rng.random() < 0.5 else o
        o = o[::-1] if rng.random() < 0.5 else o
        o = np.rot90(o, int(rng.integers(1, 4))) if rng.random() < 0.5 else o
        g = rng.uniform(0.5, 1.6)
        src = np.clip((o - o.mean()) * g + img.mean() * rng.uniform(0.6, 1.3), 0, 1)
    else:
        t = smooth_noise(rng, h, w, 4, 7)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        th = rng.uniform(0, np.pi)
        stripes = np.sin((xx * math.cos(th) + yy * math.sin(th)) * rng.uniform(0.2, 1.2))
        src = np.clip(img.mean() + rng.uniform(0.05, 0.25) * (t if rng.random() < 0.5 else stripes), 0, 1)
    beta = rng.uniform(0.5, 1.0)
    out = img * (1 - beta * s) + src * beta * s
    return out, m > 0.5


def add_cutpaste(img, rng):
    h, w = img.shape
    ph, pw = int(rng.integers(8, 48)), int(rng.integers(8, 48))
    y0, x0 = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
    y1, x1 = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
    patch = img[y0:y0 + ph, x0:x0 + pw].copy()
    patch = np.clip((patch - patch.mean()) * rng.uniform(0.6, 1.6) + patch.mean() * rng.uniform(0.7, 1.3), 0, 1)
    if rng.random() < 0.5:
        patch = patch[::-1, ::-1]
    out = img.copy()
    out[y1:y1 + ph, x1:x1 + pw] = patch
    m = np.zeros((h, w), bool)
    m[y1:y1 + ph, x1:x1 + pw] = np.abs(out[y1:y1 + ph, x1:x1 + pw] - img[y1:y1 + ph, x1:x1 + pw]) > 0.02
    return out, m


KINDS = [(add_spots, 0.22), (add_curve, 0.22), (add_chip, 0.16), (add_region, 0.30), (add_cutpaste, 0.10)]


def synthesize(img, rng, pool, p_anomaly=0.6):
    """(float image in [0, 1], bool mask) for one clean tile (uint8 gray, SIZE x SIZE)."""
    x = img.astype(np.float32) / 255.0
    # nuisance: what a good tile may look like (flips, gain, gamma, a little noise)
    if rng.random() < 0.5:
        x = x[:, ::-1]
    if rng.random() < 0.5:
        x = x[::-1]
    x = np.clip(x * rng.uniform(0.8, 1.2), 0, 1) ** rng.uniform(0.85, 1.15)
    mask = np.zeros(x.shape, bool)
    if rng.random() < p_anomaly:
        funcs, probs = zip(*KINDS)
        for _ in range(1 if rng.random() < 0.75 else 2):
            f = funcs[int(rng.choice(len(funcs), p=np.array(probs) / sum(probs)))]
            x, m = f(x, rng, pool) if f is add_region else f(x, rng)
            mask |= m
    x = np.clip(x + rng.normal(0, rng.uniform(0, 0.01), x.shape), 0, 1)
    return np.ascontiguousarray(x, dtype=np.float32), mask


# ----------------------------------------------------------------------------- model
def build_net(width=24):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def cbr(ci, co, s=1):
        return nn.Sequential(nn.Conv2d(ci, co, 3, s, 1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True))

    c1, c2, c3, c4 = width, 2 * width, 3 * width, 4 * width

    class UNet(nn.Module):
        """Encoder at strides 2/4/8/16, decoder back to stride 2, bilinear to the input size.
        Input: the RGB image in [0, 1]; it is turned grey and normalised per image inside."""

        def __init__(self):
            super().__init__()
            self.e1 = nn.Sequential(cbr(1, c1, 2), cbr(c1, c1))
            self.e2 = nn.Sequential(cbr(c1, c2, 2), cbr(c2, c2))
            self.e3 = nn.Sequential(cbr(c2, c3, 2), cbr(c3, c3))
            self.e4 = nn.Sequential(cbr(c3, c4, 2), cbr(c4, c4), cbr(c4, c4))
            self.d3 = nn.Sequential(cbr(c4 + c3, c3), cbr(c3, c3))
            self.d2 = nn.Sequential(cbr(c3 + c2, c2), cbr(c2, c2))
            self.d1 = nn.Sequential(cbr(c2 + c1, c1), cbr(c1, c1))
            self.head = nn.Conv2d(c1, 1, 1)

        def forward(self, x):
            g = x.mean(1, keepdim=True)
            mu = g.mean((2, 3), keepdim=True)
            sd = ((g - mu) ** 2).mean((2, 3), keepdim=True).sqrt()
            g = (g - mu) / (sd + 0.02)
            f1 = self.e1(g)
            f2 = self.e2(f1)
            f3 = self.e3(f2)
            f4 = self.e4(f3)
            u = F.interpolate(f4, size=f3.shape[-2:], mode="bilinear", align_corners=False)
            u = self.d3(torch.cat([u, f3], 1))
            u = F.interpolate(u, size=f2.shape[-2:], mode="bilinear", align_corners=False)
            u = self.d2(torch.cat([u, f2], 1))
            u = F.interpolate(u, size=f1.shape[-2:], mode="bilinear", align_corners=False)
            u = self.d1(torch.cat([u, f1], 1))
            return F.interpolate(self.head(u), size=x.shape[-2:], mode="bilinear", align_corners=False)

    return UNet()


class Full:
    """Wraps the U-Net into the exported contract (pred_score, anomaly_map)."""

    @staticmethod
    def build(net):
        import torch.nn as nn
        import torch.nn.functional as F

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, x):
                amap = self.net(x).sigmoid()
                score = F.avg_pool2d(amap, POOL, 1, POOL // 2, count_include_pad=False).amax((2, 3))
                return score, amap

        return M()


# ----------------------------------------------------------------------------- metrics
def auroc(scores, labels):
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    npos, nneg = labels.sum(), (~labels).sum()
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):  # average ranks of ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(s))
    r[order] = ranks
    return float((r[labels].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def fast_auroc(scores, labels, bins=4096):
    """Histogram AUROC for millions of pixels (scores in [0, 1])."""
    labels = np.asarray(labels, bool)
    b = np.clip((np.asarray(scores) * (bins - 1)).round().astype(np.int64), 0, bins - 1)
    pos = np.bincount(b[labels], minlength=bins).astype(np.float64)
    neg = np.bincount(b[~labels], minlength=bins).astype(np.float64)
    if pos.sum() == 0 or neg.sum() == 0:
        return float("nan")
    cneg = np.cumsum(neg) - neg
    return float(((cneg + 0.5 * neg) * pos).sum() / (pos.sum() * neg.sum()))


def best_f1(scores, labels):
    scores, labels = np.asarray(scores), np.asarray(labels, bool)
    best = (0.0, float("nan"))
    for t in np.unique(scores):
        pred = scores >= t
        tp = (pred & labels).sum()
        if tp == 0:
            continue
        p, r = tp / pred.sum(), tp / labels.sum()
        f = 2 * p * r / (p + r)
        if f > best[0]:
            best = (float(f), float(t))
    return best


def evaluate(run, imgs, masks, classes, unbounded=False):
    """Image and pixel figures of a runner (float NCHW -> (score, map)) on a cached split, with
    the image AUROC of each defect class against the good tiles. Defective tiles with an empty
    mask keep their image label and are left out of the pixel figures. Maps are probabilities in
    [0, 1]; unbounded maps (distances) are scaled by the split's largest value for the histogram
    AUROC and the 1/1000 threshold grid."""
    scores, pix_s, pix_l, maps = [], [], [], []
    for i in range(len(imgs)):
        x = np.repeat(imgs[i][None, None].astype(np.float32) / 255.0, 3, 1)
        s, m = run(x)
        scores.append(float(s.reshape(-1)[0]))
        m = m.reshape(SIZE, SIZE)
        maps.append(m)
        if classes[i] == "free" or masks[i].any():
            pix_s.append(m[::2, ::2].ravel())
            pix_l.append(masks[i][::2, ::2].ravel() > 0)
    labels = classes != "free"
    ps, pl = np.concatenate(pix_s), np.concatenate(pix_l)
    top = float(ps.max()) if unbounded else 1.0
    f1, thr = best_f1(scores, labels)
    pf1, pthr = best_f1(np.round(ps / top, 3) * top, pl)
    per = {c: auroc(np.array(scores)[(classes == c) | ~labels], labels[(classes == c) | ~labels])
           for c in sorted(set(classes) - {"free"})}
    return dict(image_auroc=auroc(scores, labels), pixel_auroc=fast_auroc(ps / top, pl), image_f1=f1,
                image_threshold=thr, pixel_f1=pf1, pixel_threshold=float(pthr),
                score_range=[float(min(scores)), float(max(scores))], class_auroc=per), np.array(scores), maps


# ----------------------------------------------------------------------------- training
def torch_runner(net):
    import torch

    full = Full.build(net).eval()

    def run(x):
        with torch.no_grad():
            s, m = full(torch.from_numpy(x))
        return s.numpy(), m.numpy()

    return run


def train(a):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    imgs, _, _ = load(a.out, "train")
    vimgs, vmasks, vclasses = load(a.out, "val")
    net = build_net(a.width)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4)
    ck = os.path.join(a.out, "last.pt")
    start, best, hist, st = 0, -1.0, [], {}
    if a.resume and os.path.exists(ck):
        st = torch.load(ck, map_location="cpu", weights_only=False)
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        start, best, hist = st["iter"], st["best"], st["hist"]
        print(f"mtd: resumed at iteration {start} (best val {best:.4f})", flush=True)
    params = sum(p.numel() for p in net.parameters())
    print(f"mtd: U-Net width {a.width}, {params} parameters; {len(imgs)} clean train tiles; "
          f"{a.iters} iterations of {a.batch} crops {a.crop}px; budget {a.minutes} min; {a.threads} threads",
          flush=True)
    rng = np.random.default_rng([a.seed, start])
    t0, tl = time.time(), time.time()
    spent = st.get("minutes", 0.0) if a.resume and os.path.exists(ck) else 0.0

    def progress(it):
        """Fraction of the run done: iterations or wall time (across resumes), whichever is ahead;
        the learning rate follows a cosine on it, so a run cut by --minutes still anneals."""
        return min(1.0, max(it / a.iters, (spent + (time.time() - t0) / 60) / a.minutes))

    def sched(it):
        return a.lr * (0.5 * (1 + math.cos(math.pi * progress(it))) * 0.95 + 0.05)

    it = start
    while progress(it) < 1.0:
        xs, ms = [], []
        for _ in range(a.batch):
            x, m = synthesize(imgs[int(rng.integers(0, len(imgs)))], rng, imgs)
            if a.crop < SIZE:
                y0, x0 = int(rng.integers(0, SIZE - a.crop + 1)), int(rng.integers(0, SIZE - a.crop + 1))
                x, m = x[y0:y0 + a.crop, x0:x0 + a.crop], m[y0:y0 + a.crop, x0:x0 + a.crop]
            xs.append(x)
            ms.append(m)
        x = torch.from_numpy(np.stack(xs))[:, None].repeat(1, 3, 1, 1)
        m = torch.from_numpy(np.stack(ms).astype(np.float32))[:, None]
        for g in opt.param_groups:
            g["lr"] = sched(it)
        net.train()
        logit = net(x)
        p = logit.sigmoid()
        bce = F.binary_cross_entropy_with_logits(logit, m, reduction="none")
        pt = p * m + (1 - p) * (1 - m)
        focal = ((1 - pt) ** 2 * bce).mean() * 10
        dice = 1 - (2 * (p * m).sum() + 1) / (p.sum() + m.sum() + 1)
        loss = focal + dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
        if it % a.log_every == 0:
            print(f"mtd: it {it} loss {loss.item():.4f} (focal {focal.item():.4f} dice {dice.item():.4f}) "
                  f"lr {sched(it):.2e} {(time.time() - tl) / a.log_every:.2f} s/it", flush=True)
            tl = time.time()
        out_of_time = progress(it) >= 1.0
        if it % a.eval_every == 0 or out_of_time:
            net.eval()
            r, _, _ = evaluate(torch_runner(net), vimgs, vmasks, vclasses)
            key = 0.5 * (r["image_auroc"] + r["pixel_auroc"])
            hist.append(dict(iter=it, **{k: r[k] for k in ("image_auroc", "pixel_auroc", "image_f1")}))
            print(f"mtd: val at {it}: image AUROC {r['image_auroc']:.4f} pixel AUROC {r['pixel_auroc']:.4f} "
                  f"image F1 {r['image_f1']:.3f}", flush=True)
            if key > best:
                best = key
                torch.save({"net": net.state_dict(), "iter": it, "val": r, "width": a.width},
                           os.path.join(a.out, "best.pt"))
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "iter": it, "best": best,
                        "hist": hist, "width": a.width, "minutes": spent + (time.time() - t0) / 60}, ck + ".tmp")
            os.replace(ck + ".tmp", ck)
    print(f"mtd: done at iteration {it}, best val (mean of image and pixel AUROC) {best:.4f}", flush=True)


# ----------------------------------------------------------------------------- export
def export(a):
    import torch

    torch.set_num_threads(a.threads)
    st = torch.load(os.path.join(a.out, a.checkpoint), map_location="cpu", weights_only=False)
    net = build_net(st.get("width", 24))
    net.load_state_dict(st["net"])
    net.eval()
    model = Full.build(net).eval()
    if "val" in st and not a.reevaluate:
        r = st["val"]  # the validation figures the checkpoint was chosen with (same weights)
    else:
        vimgs, vmasks, vclasses = load(a.out, "val")
        r, _, _ = evaluate(torch_runner(net), vimgs, vmasks, vclasses)
    print(f"mtd: val (checkpoint at iteration {st['iter']}): {json.dumps(r)}", flush=True)
    params = sum(p.numel() for p in net.parameters())
    meta = {
        "description": ("gst-plugin-defect magnetic tile anomaly model (DRAEM-style discriminative U-Net, "
                        f"{params} params, no pretrained weights), trained on the defect-free train tiles of the "
                        "Magnetic Tile Defect dataset with synthetic anomalies; anomaly_map = per-pixel anomaly "
                        "probability"),
        "version": VERSION,
        "license": "MIT OR Apache-2.0 (the code); weights trained on the Magnetic Tile Defect dataset",
        "output": (f"pred_score [1, 1] = max of anomaly_map averaged over {POOL}x{POOL} px; anomaly_map "
                   "[1, 1, H, W] = anomaly probability in [0, 1]; no threshold in the graph"),
        "checkpoint_iteration": str(st["iter"]),
    }
    d = save_anomaly_onnx(model, torch.rand(1, 3, SIZE, SIZE), a.model, meta, r, a.out, "training/mtd.py")
    with open(os.path.join(a.out, "val_metrics.json"), "w") as f:
        json.dump(dict(val=r, iteration=st["iter"], params=params), f, indent=1)
    assert d[0] < 1e-3 and d[1] < 1e-3


def save_anomaly_onnx(model, x, path, meta, r, out, producer):
    """Export an anomaly module (images [1, 3, SIZE, SIZE] -> pred_score, anomaly_map) to path with
    the metadata both magnetic-tile recipes share plus meta, and the validation figures r
    (thresholds, score range); check it, and return onnxruntime's largest differences from
    PyTorch on x (score, map)."""
    import onnx
    import onnxruntime as ort
    import torch

    with torch.no_grad():
        ref = [t.numpy() for t in model(x)]
    kw = dict(input_names=["images"], output_names=["pred_score", "anomaly_map"], opset_version=17,
              do_constant_folding=True)
    try:
        torch.onnx.export(model, (x,), path, dynamo=False, **kw)
    except TypeError:
        torch.onnx.export(model, (x,), path, **kw)
    m = onnx.load(path)
    full = {
        "author": "gst-plugin-defect",
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "docs": "models/magnetic-tile-anomaly.md, docs/anomaly-models.md",
        "task": "anomaly",
        "batch": "1",
        "imgsz": f"[{SIZE}, {SIZE}]",
        "names": "{0: 'anomaly'}",
        "channels": "3",
        "preprocess": f"resize (stretch, no letterbox; bilinear, half-pixel centres) to {SIZE}x{SIZE}, RGB, /255",
        "image_threshold": f"{r['image_threshold']:.6g}",
        "pixel_threshold": f"{r['pixel_threshold']:.6g}",
        "score_range": str([round(v, 4) for v in r["score_range"]]),
        "dataset": split_note(out),
        **meta,
    }
    del m.metadata_props[:]
    for k, v in full.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = f"gst-plugin-defect {producer}"
    m.doc_string = full["description"]
    onnx.checker.check_model(m)
    onnx.save(m, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"images": x.numpy()})
    d = [float(np.abs(o - rr).max()) for o, rr in zip(got, ref)]
    print(f"{producer}: exported {path} ({os.path.getsize(path) / 1e6:.2f} MB), onnxruntime vs PyTorch max abs "
          f"diff score {d[0]:.2e} map {d[1]:.2e}; image threshold {full['image_threshold']}, pixel threshold "
          f"{full['pixel_threshold']}", flush=True)
    return d


def split_note(out):
    """The dataset and split a run's cached data was made with (RUN/data/split_by, written by data)."""
    path = os.path.join(out, "data", "split_by")
    by = open(path).read().strip() if os.path.exists(path) else "number"
    rule = "n % 5 of each view's own number" if by == "number" else \
        "every lighting view of a tile in the split of the tile's smallest number n, by n % 5"
    return f"Magnetic Tile Defect (Huang et al. 2018); split by {by}: {rule} (0 test, 1 validation, else train)"


def ort_eval(a):
    """The exported file on a cached split with onnxruntime (a cross-check of defect-replay)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    imgs, masks, classes = load(a.out, a.split)
    r, scores, _ = evaluate(lambda x: sess.run(None, {"images": x}), imgs, masks, classes)
    print(json.dumps(r, indent=1))


# ----------------------------------------------------------------------------- defect-replay sets
def sync_links(folder, targets):
    """Make folder hold exactly the links {name: target path}: missing links are made, links to
    another target are replaced, and links not named are removed (a set written before for another
    split or --split-by). A file there that is not a link is never touched: it stops the script."""
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if not os.path.islink(path):
            sys.exit(f"mtd: {path} is not a link this script made; give another --out")
        if name not in targets or os.readlink(path) != os.path.abspath(targets[name]):
            os.unlink(path)
    for name, target in targets.items():
        path = os.path.join(folder, name)
        if not os.path.lexists(path):
            os.symlink(os.path.abspath(target), path)


def replay(a):
    """Image links, truth.csv (file,label: good / defective) and mask links for one split, the
    layout defect-replay reads; classes.csv (file,class) for the per-class figures."""
    images, masks = os.path.join(a.out, "images"), os.path.join(a.out, "masks")
    os.makedirs(images, exist_ok=True)
    os.makedirs(masks, exist_ok=True)
    truth, classes = ["file,label"], ["file,class"]
    n = {"good": 0, "defective": 0, "empty": 0}
    image_links, mask_links = {}, {}
    for jpg, png, cls, split in list_tiles(a.mtd, a.split_by):
        if not belongs(cls, split, a.split):
            continue
        name = f"{cls}_{os.path.basename(jpg)}"
        image_links[name] = jpg
        label = "good" if cls == "free" else "defective"
        n[label] += 1
        if label == "defective":
            m = read_gray(png) if os.path.exists(png) else None
            if m is None or not m.any():
                n["empty"] += 1
            if m is not None:
                mask_links[os.path.splitext(name)[0] + ".png"] = png
        truth.append(f"{name},{label}")
        classes.append(f"{name},{cls}")
    sync_links(images, image_links)
    sync_links(masks, mask_links)
    for fname, lines in (("truth.csv", truth), ("classes.csv", classes)):
        with open(os.path.join(a.out, fname), "w") as f:
            f.write("\n".join(lines) + "\n")
    print(f"mtd: {a.split}: {n['good']} good and {n['defective']} defective tiles ({n['empty']} with an empty "
          f"mask) in {a.out}", flush=True)


# ----------------------------------------------------------------------------- figures of a defect-replay report
def summary(a):
    """The card's table from a defect-replay report.json of a test replay and the set's classes.csv:
    image and pixel AUROC, precision / recall at the policy's threshold (the element's verdicts),
    escape rate (defective tiles passed), false-reject rate (good tiles failed), per-class recall."""
    with open(a.report) as f:
        rep = json.load(f)
    classes = {}
    with open(a.classes) as f:
        for line in f.read().splitlines()[1:]:
            name, cls = line.rsplit(",", 1)
            classes[name] = cls
    fr = rep["frames"]
    good = fr["total"] - fr["defective"]
    tp = sum(1 for r in rep["scores"] if r["defective"] and r["verdict"] == "FAIL")
    fails = fr["fail"]
    per = {}
    for row in rep["scores"]:
        cls = classes[row["file_name"]]
        n, k = per.get(cls, (0, 0))
        per[cls] = (n + 1, k + (row["verdict"] == "FAIL"))
    px = rep.get("pixel") or {}
    lines = [
        "| figure | value |", "|---|---|",
        f"| images | {rep['images']} ({rep['defective_images']} defective, {good} good) |",
        f"| image AUROC | **{rep['image_auroc']:.4f}** |",
    ]
    if px:
        lines.append(f"| pixel AUROC | **{px['auroc']:.4f}** ({px['pixels']:,} pixels, {px['defective_pixels']:,} "
                     f"defective, every {px['stride']} px; {px.get('image_only_images', 0)} defective tiles with an "
                     "empty mask left out) |")
    lines += [
        f"| precision at the validation threshold | {tp / fails if fails else float('nan'):.3f} "
        f"(FAIL {fails}: {tp} defective, {fr['false_rejects']} good) |",
        f"| recall at the validation threshold | {tp / fr['defective']:.3f} ({tp} of {fr['defective']}) |",
        f"| escape rate (defective tiles passed) | {fr['escapes'] / fr['defective']:.3f} "
        f"({fr['escapes']} of {fr['defective']}) |",
        f"| false-reject rate (good tiles failed) | {fr['false_rejects'] / good if good else float('nan'):.3f} "
        f"({fr['false_rejects']} of {good}) |",
    ]
    for cls in sorted(per):
        if cls == "free":
            continue
        n, k = per[cls]
        lines.append(f"| recall, {cls} | {k / n:.3f} ({k} of {n}) |")
    if "free" in per:
        n, k = per["free"]
        lines.append(f"| good tiles failed | {k} of {n} |")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("summary")
    p.set_defaults(run=summary)
    p.add_argument("--report", required=True, help="defect-replay's report.json of a test replay")
    p.add_argument("--classes", required=True, help="the set's classes.csv (mtd.py replay)")
    for name, fn in (("data", data), ("train", train), ("export", export), ("eval", ort_eval), ("replay", replay)):
        p = sub.add_parser(name)
        p.set_defaults(run=fn)
        p.add_argument("--out", default="training/runs/mtd")
        p.add_argument("--threads", type=int, default=1)
        if name in ("data", "replay"):
            p.add_argument("--mtd", required=True, help="the Magnetic-tile-defect-datasets checkout")
            p.add_argument("--split-by", default="number", choices=SPLITS_BY,
                           help="number: n %% 5 of each tile's own number; part: every view of a part "
                                "(the six lightings of one tile) in the split of its smallest number")
        if name == "replay":
            p.add_argument("--split", default="test", choices=["val", "test"])
        if name == "train":
            p.add_argument("--iters", type=int, default=3000)
            p.add_argument("--minutes", type=float, default=75.0,
                           help="wall-time budget of the whole run (resumes included): training stops and the "
                                "learning rate has annealed when either --iters or --minutes is reached")
            p.add_argument("--batch", type=int, default=12)
            p.add_argument("--crop", type=int, default=160)
            p.add_argument("--width", type=int, default=24)
            p.add_argument("--lr", type=float, default=2e-3)
            p.add_argument("--eval-every", type=int, default=250)
            p.add_argument("--log-every", type=int, default=25)
            p.add_argument("--resume", action="store_true")
            p.add_argument("--seed", type=int, default=0)
        if name in ("export", "eval"):
            p.add_argument("--model", default="models/magnetic-tile-anomaly.onnx")
        if name == "export":
            p.add_argument("--checkpoint", default="best.pt")
            p.add_argument("--reevaluate", action="store_true",
                           help="score the validation split again instead of using the checkpoint's figures")
        if name == "eval":
            p.add_argument("--split", default="test", choices=["val", "test"])
    a = ap.parse_args()
    a.run(a)


if __name__ == "__main__":
    main()
