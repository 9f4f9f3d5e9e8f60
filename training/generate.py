#!/usr/bin/env python3
"""Synthetic industrial surface-inspection data generator (numpy + OpenCV only).

Renders rolled/brushed steel, cast metal, painted and plastic surfaces (mono and
colour, uneven lighting, sensor noise, slight blur), optionally as a part lying on
a conveyor belt, with the six NEU steel-surface defect classes:

    0 crazing, 1 inclusion, 2 patches, 3 pitted_surface, 4 rolled-in_scale, 5 scratches

Output: DIR/images/NNNNNN.png and DIR/labels/NNNNNN.txt (YOLO: cls cx cy w h,
normalised).  Everything is deterministic for a given --seed / --split.

    python training/generate.py --split test --count 300 --out DIR

The module is also imported by make_videos.py (render_surface, add_defects, ...).
"""
import argparse
import math
import os
import sys

import cv2
import numpy as np

CLASSES = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]
GENERATOR_SEED = 20240611
SPLIT_SEEDS = {"train": 1000, "val": 2000, "test": 3000, "video": 4000}
SURFACE_KINDS = ["rolled", "brushed", "cast", "painted", "plastic"]
MIN_BOX = 10  # labels are grown to at least this many pixels per side (thin scratches)

# image sizes (w, h); most are 640 wide so that the [384, 640] letterbox keeps scale ~1
SIZES = [(640, 384), (640, 480), (640, 360), (512, 384), (640, 512), (576, 432), (704, 396)]


# ----------------------------------------------------------------------------- noise utils
def smooth_noise(rng, h, w, cell):
    """Value noise: random grid of size ~(h/cell, w/cell) upsampled (cubic)."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def fbm(rng, h, w, cells=(64, 24, 8), amps=(1.0, 0.5, 0.25)):
    out = np.zeros((h, w), np.float32)
    for c, a in zip(cells, amps):
        out += a * smooth_noise(rng, h, w, c)
    return out / (np.std(out) + 1e-6)


def line_kernel(length, angle_deg):
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2.0
    dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    cv2.line(k, (int(round(c - dx * c)), int(round(c - dy * c))),
             (int(round(c + dx * c)), int(round(c + dy * c))), 1.0, 1)
    return k / k.sum()


# ----------------------------------------------------------------------------- surfaces
def random_colour(rng, kind):
    """Multiplicative RGB tint for a surface kind."""
    if kind in ("rolled", "brushed", "cast"):
        t = 1.0 + rng.uniform(-0.06, 0.06, 3)  # near-neutral metal tint
        return t.astype(np.float32)
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(40, 220), 255]]])
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0
    return (rgb / max(rgb.mean(), 0.3)).astype(np.float32)


def render_surface(rng, h, w, kind, colour, rolling_dir=0):
    """Return float32 HxWx3 RGB surface in ~[0, 1] (no lighting / sensor effects)."""
    if kind == "rolled":
        base = rng.uniform(0.42, 0.68)
        # streaks along the rolling direction
        streak = cv2.resize(rng.standard_normal((h, max(2, w // rng.integers(30, 90)))).astype(np.float32),
                            (w, h), interpolation=cv2.INTER_LINEAR)
        tex = 0.035 * streak + 0.025 * fbm(rng, h, w, (96, 32), (1.0, 0.4))
    elif kind == "brushed":
        base = rng.uniform(0.50, 0.75)
        n = rng.standard_normal((h, w)).astype(np.float32)
        k = line_kernel(int(rng.integers(15, 41)) | 1, rng.uniform(-8, 8))
        tex = 0.09 * cv2.filter2D(n, -1, k) + 0.015 * fbm(rng, h, w, (128, 48), (1.0, 0.5))
    elif kind == "cast":
        base = rng.uniform(0.35, 0.58)
        grain = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.8)
        tex = 0.05 * fbm(rng, h, w, (80, 30, 10), (1.0, 0.6, 0.3)) + 0.035 * grain
    elif kind == "painted":
        base = rng.uniform(0.45, 0.85)
        peel = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 2.5)
        tex = 0.06 * peel + 0.012 * fbm(rng, h, w, (160, 60), (1.0, 0.5))
    else:  # plastic
        base = rng.uniform(0.35, 0.85)
        micro = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 1.0)
        tex = 0.018 * micro + 0.01 * fbm(rng, h, w, (200, 80), (1.0, 0.5))
    if rolling_dir == 1 and kind in ("rolled",):
        # vertical rolling direction: regenerate transposed
        tex = cv2.resize(tex.T.copy(), (w, h), interpolation=cv2.INTER_LINEAR)
    g = np.clip(base * (1.0 + tex), 0.0, 1.0)
    return g[..., None] * colour[None, None, :]


# ----------------------------------------------------------------------------- defects
# Each defect renderer returns a float32 delta field d (patch, local coords); the image
# is modified multiplicatively: img *= (1 + d).  Negative = darker.


def _irregular_blob(rng, h, w, roughness=0.35):
    """Soft irregular ellipse-ish mask filling an h x w box (values 0..1)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    r = np.sqrt(((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2)
    n = smooth_noise(rng, h, w, max(3.0, min(h, w) / 3.0))
    return (r + roughness * n * 0.5 < 0.85).astype(np.float32)


def defect_crazing(rng, s, orient):
    """Network of fine dark cracks (Voronoi mosaic) inside an irregular region."""
    w = int(s * rng.uniform(0.7, 1.4)); h = int(s * rng.uniform(0.7, 1.4))
    w, h = max(w, 16), max(h, 16)
    m = np.zeros((h, w), np.float32)
    npts = int(np.clip(w * h / rng.uniform(60, 160), 6, 120))
    sub = cv2.Subdiv2D((0, 0, w, h))
    for _ in range(npts):
        sub.insert((float(rng.uniform(0, w - 1)), float(rng.uniform(0, h - 1))))
    facets, _ = sub.getVoronoiFacetList([])
    for f in facets:
        pts = np.round(f).astype(np.int32)
        cv2.polylines(m, [pts], True, 1.0, 1, lineType=cv2.LINE_AA)
    region = _irregular_blob(rng, h, w, 0.5)
    region = cv2.GaussianBlur(region, (0, 0), 1.5)
    amp = rng.uniform(0.35, 0.7)
    return -amp * m * region


def defect_inclusion(rng, s, orient):
    """Compact elongated dark (rarely bright) solid inclusion, aligned with rolling dir."""
    L = max(12, int(s * rng.uniform(0.6, 1.0)))
    W = max(5, int(L * rng.uniform(0.22, 0.5)))
    pad = 3
    big = np.zeros((W + 2 * pad, L + 2 * pad), np.float32)
    blob = _irregular_blob(rng, W, L, 0.45)
    big[pad:pad + W, pad:pad + L] = blob
    big = cv2.GaussianBlur(big, (0, 0), 0.9)
    ang = orient + rng.uniform(-25, 25)
    d = _rotate(big, ang)
    amp = rng.uniform(0.4, 0.7) * (1 if rng.random() < 0.85 else -0.6)
    return -amp * d


def defect_patches(rng, s, orient):
    """Large soft irregular blotch of uniform darker (or lighter) tone."""
    w = max(24, int(s * rng.uniform(0.8, 1.5))); h = max(24, int(s * rng.uniform(0.8, 1.5)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((yy - (h - 1) / 2) / (h / 2)) ** 2 + ((xx - (w - 1) / 2) / (w / 2)) ** 2)
    n = smooth_noise(rng, h, w, max(4.0, min(h, w) / 4.0))
    m = (r + 0.25 * n < 0.8).astype(np.float32)
    m = cv2.GaussianBlur(m, (0, 0), max(1.5, min(h, w) / 14))
    inner = 1.0 + 0.15 * smooth_noise(rng, h, w, max(3.0, min(h, w) / 6.0))
    amp = rng.uniform(0.22, 0.4) * (1 if rng.random() < 0.75 else -0.8)
    return -amp * m * inner


def defect_pitted(rng, s, orient):
    """Cluster of small round dark pits with faint bright rims."""
    w = max(16, int(s * rng.uniform(0.7, 1.3))); h = max(16, int(s * rng.uniform(0.7, 1.3)))
    d = np.zeros((h, w), np.float32)
    n = int(np.clip(w * h / rng.uniform(50, 110), 6, 70))
    cx, cy = (w - 1) / 2, (h - 1) / 2
    for _ in range(n):
        # points inside an ellipse
        for _t in range(10):
            u, v = rng.uniform(-1, 1, 2)
            if u * u + v * v <= 1:
                break
        x, y = cx + u * (w / 2 - 2.5), cy + v * (h / 2 - 2.5)
        r = rng.uniform(1.2, 2.6)
        cv2.circle(d, (int(round(x * 4)), int(round(y * 4))), int(round((r + 0.9) * 4)), -0.25, -1,
                   lineType=cv2.LINE_AA, shift=2)  # rim (overwritten by core)
        cv2.circle(d, (int(round(x * 4)), int(round(y * 4))), int(round(r * 4)), 1.0, -1,
                   lineType=cv2.LINE_AA, shift=2)
    d = cv2.GaussianBlur(d, (0, 0), 0.6)
    amp = rng.uniform(0.45, 0.75)
    return -amp * d


def defect_scale(rng, s, orient):
    """Rolled-in scale: several sharp-edged flakes elongated along rolling direction,
    with embossed relief (bright edge on one side, dark on the other) and mottled fill."""
    L = max(20, int(s * rng.uniform(0.8, 1.5))); W = max(16, int(s * rng.uniform(0.45, 0.9)))
    m = np.zeros((W, L), np.float32)
    nf = int(rng.integers(3, 8))
    for _ in range(nf):
        fl = rng.uniform(0.25, 0.55) * L; fw = rng.uniform(0.2, 0.45) * W
        x = rng.uniform(fl / 2, L - fl / 2); y = rng.uniform(fw / 2, W - fw / 2)
        k = int(rng.integers(5, 9))
        angs = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(0.6, 1.0, k)
        pts = np.stack([x + np.cos(angs) * rad * fl / 2, y + np.sin(angs) * rad * fw / 2], 1)
        cv2.fillPoly(m, [np.round(pts * 4).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=2)
    tex = 0.75 + 0.35 * smooth_noise(rng, W, L, 3.0)
    dark = m * tex
    gy = cv2.Sobel(m, cv2.CV_32F, 0, 1, ksize=3) / 4.0
    gx = cv2.Sobel(m, cv2.CV_32F, 1, 0, ksize=3) / 4.0
    relief = 0.7 * gy + 0.4 * gx
    amp = rng.uniform(0.35, 0.6)
    d = -amp * dark + 0.6 * amp * relief
    pad = np.zeros((W + 4, L + 4), np.float32)
    pad[2:-2, 2:-2] = d
    return _rotate(pad, orient + rng.uniform(-12, 12))


def defect_scratch(rng, s, orient):
    """Long thin (slightly curved) scratch, dark or specular bright."""
    L = max(28, int(s * rng.uniform(1.2, 3.0)))
    ang = rng.uniform(0, 180)
    dx, dy = math.cos(math.radians(ang)), math.sin(math.radians(ang))
    w = int(abs(dx) * L) + 8; h = int(abs(dy) * L) + 8
    d = np.zeros((h, w), np.float32)
    cx, cy = w / 2, h / 2
    p0 = np.array([cx - dx * L / 2, cy - dy * L / 2]); p2 = np.array([cx + dx * L / 2, cy + dy * L / 2])
    bend = rng.uniform(-0.08, 0.08) * L
    p1 = (p0 + p2) / 2 + bend * np.array([-dy, dx])
    t = np.linspace(0, 1, max(8, L // 3))[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
    thick = int(rng.choice([1, 1, 2, 2, 3]))
    cv2.polylines(d, [np.round(pts * 4).astype(np.int32)], False, 1.0, thick, lineType=cv2.LINE_AA, shift=2)
    # intensity varies along the scratch
    d *= 0.7 + 0.3 * np.clip(smooth_noise(rng, h, w, max(6.0, L / 4)), -1, 1)
    d = cv2.GaussianBlur(d, (0, 0), 0.5)
    amp = rng.uniform(0.45, 0.8)
    if rng.random() < 0.35:
        return 0.8 * amp * d + 0.15 * amp * cv2.GaussianBlur(d, (0, 0), 2.0)  # specular bright
    return -amp * d


RENDERERS = [defect_crazing, defect_inclusion, defect_patches, defect_pitted, defect_scale, defect_scratch]
# nominal size ranges (px) per class: (min, max) of the "s" parameter
SIZE_RANGE = [(16, 110), (12, 48), (26, 150), (16, 90), (18, 110), (16, 110)]


def _rotate(patch, ang):
    h, w = patch.shape
    M = cv2.getRotationMatrix2D((w / 2, h / 2), ang, 1.0)
    c, s_ = abs(M[0, 0]), abs(M[0, 1])
    nw, nh = int(h * s_ + w * c) + 2, int(h * c + w * s_) + 2
    M[0, 2] += nw / 2 - w / 2
    M[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(patch, M, (nw, nh), flags=cv2.INTER_LINEAR)


def _tight(d, thr_frac=0.12):
    a = np.abs(d)
    ys, xs = np.nonzero(a > thr_frac * a.max())
    if len(xs) == 0:
        return None
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


MASK_FRAC = 0.12  # pixel truth: |delta| above this fraction of the defect's peak (as the boxes)


def defect_mask(d):
    """Pixel truth of one defect delta field: where |d| > MASK_FRAC * max |d| (the criterion
    ``_tight`` uses for the boxes)."""
    a = np.abs(d)
    return a > MASK_FRAC * a.max()


def add_defects(rng, img, region, n, existing=None, scale=1.0, orient=0.0, classes=None, margin=4, mask=None):
    """Render n defects into img (float HxWx3, modified in place) inside region
    (x0, y0, x1, y1).  Returns list of (cls, x0, y0, x1, y1) in image pixels.
    mask: optional HxW bool array; the pixels each defect changes (``defect_mask``) are set in
    it.  It draws nothing from rng, so images are the same with or without it."""
    H, W = img.shape[:2]
    boxes = [] if existing is None else list(existing)
    out = []
    rx0, ry0, rx1, ry1 = region
    for _ in range(n):
        for _attempt in range(30):
            c = int(rng.integers(0, 6)) if classes is None else int(rng.choice(classes))
            lo, hi = SIZE_RANGE[c]
            # log-uniform sizes, so small defects are common
            s = math.exp(rng.uniform(math.log(lo), math.log(hi))) * scale
            d = RENDERERS[c](rng, s, orient)
            tb = _tight(d)
            if tb is None:
                continue
            bx0, by0, bx1, by1 = tb
            ph, pw = d.shape
            if pw > rx1 - rx0 - 2 * margin or ph > ry1 - ry0 - 2 * margin:
                continue
            ox = int(rng.integers(rx0 + margin - bx0, rx1 - margin - bx1 + 1)) if rx1 - margin - bx1 >= rx0 + margin - bx0 else None
            oy = int(rng.integers(ry0 + margin - by0, ry1 - margin - by1 + 1)) if ry1 - margin - by1 >= ry0 + margin - by0 else None
            if ox is None or oy is None:
                continue
            # keep the whole patch inside the image
            if ox < 0 or oy < 0 or ox + pw > W or oy + ph > H:
                continue
            box = [ox + bx0, oy + by0, ox + bx1, oy + by1]
            # grow thin boxes to MIN_BOX
            for a, b, lim in ((0, 2, W), (1, 3, H)):
                if box[b] - box[a] < MIN_BOX * scale ** 0 and True:
                    grow = MIN_BOX - (box[b] - box[a])
                    box[a] = max(0, box[a] - grow // 2)
                    box[b] = min(lim, box[a] + MIN_BOX)
            if any(not (box[2] + 6 < e[0] or e[2] + 6 < box[0] or box[3] + 6 < e[1] or e[3] + 6 < box[1])
                   for e in boxes):
                continue
            sub = img[oy:oy + ph, ox:ox + pw]
            sub *= (1.0 + d)[..., None]
            if mask is not None:
                mask[oy:oy + ph, ox:ox + pw] |= defect_mask(d)
            boxes.append(box)
            out.append((c, *box))
            break
    return out


# ----------------------------------------------------------------------------- imaging
def apply_lighting(rng, img):
    H, W = img.shape[:2]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    g = ((xx / W - 0.5) * math.cos(a) + (yy / H - 0.5) * math.sin(a))
    light = 1.0 + rng.uniform(0.05, 0.45) * g
    # hot spot / vignette
    cx, cy = rng.uniform(0.1, 0.9) * W, rng.uniform(0.1, 0.9) * H
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (max(H, W) ** 2)
    light *= 1.0 + rng.uniform(-0.15, 0.3) * np.exp(-r2 / rng.uniform(0.05, 0.4))
    light *= rng.uniform(0.8, 1.2)
    img *= light[..., None]
    return img


def apply_sensor(rng, img, mono):
    if rng.random() < 0.6:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.1))
    sigma = rng.uniform(0.004, 0.022)
    if mono:
        n = rng.standard_normal(img.shape[:2]).astype(np.float32)[..., None]
    else:
        n = rng.standard_normal(img.shape).astype(np.float32)
    img = img + sigma * n * np.sqrt(np.clip(img, 0.05, 1.0))
    return np.clip(img, 0, 1)


def to_uint8_bgr(img, mono):
    if mono:
        g = img.mean(axis=2, keepdims=True)
        img = np.repeat(g, 3, axis=2)
    return cv2.cvtColor((img * 255.0 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)


def render_belt(rng, H, W, offset=0, slat=None, belt_tone=None, fixed=None):
    """Conveyor belt background (float RGB).  offset shifts the belt texture along x."""
    if fixed is None:
        tone = belt_tone if belt_tone is not None else rng.uniform(0.1, 0.25)
        Wb = W + 2048
        tex = 0.15 * fbm(rng, H, Wb, (40, 12, 4), (1.0, 0.5, 0.5))
        belt = tone * (1 + tex)
        slat = slat or int(rng.integers(70, 160))
        for x in range(0, Wb, slat):
            belt[:, x:x + 3] *= 0.55
        fixed = belt
    Wb = fixed.shape[1]
    o = offset % (Wb - W)
    b = fixed[:, Wb - W - o: Wb - o] if o else fixed[:, Wb - W:]
    return np.repeat(b[..., None], 3, axis=2).astype(np.float32), fixed


def part_mask(h, w, radius):
    m = np.zeros((h, w), np.uint8)
    r = radius
    cv2.rectangle(m, (r, 0), (w - 1 - r, h - 1), 1, -1)
    cv2.rectangle(m, (0, r), (w - 1, h - 1 - r), 1, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(m, (cx, cy), r, 1, -1, lineType=cv2.LINE_8)
    return m.astype(np.float32)


def render_part(rng, h, w, kind, colour, n_defects, scale=1.0, classes=None, mask=None):
    """A rectangular part (plate/panel) with bevelled edges and defects.
    Returns (rgb float hxwx3, alpha hxw, defect list in part coords).
    mask: optional hxw bool array receiving the defects' pixels (see add_defects)."""
    orient = 0.0 if rng.random() < 0.7 else 90.0
    surf = render_surface(rng, h, w, kind, colour, rolling_dir=int(orient == 90.0))
    radius = int(rng.integers(4, max(5, min(h, w) // 10)))
    alpha = part_mask(h, w, radius)
    edge = 6
    defs = add_defects(rng, surf, (edge + 2, edge + 2, w - edge - 2, h - edge - 2), n_defects,
                       scale=scale, orient=orient, classes=classes, mask=mask)
    # bevel: brighter top/left edge, darker bottom/right edge
    er = cv2.erode(alpha, np.ones((5, 5), np.uint8))
    rim = alpha - er
    gy = np.zeros_like(alpha); gy[: h // 2] = 1
    surf *= (1 + rim * np.where(gy > 0, 0.25, -0.3))[..., None]
    return surf, alpha, defs


def composite(bg, fg, alpha, x, y, shadow=True):
    """Paste fg (with alpha) at (x, y) into bg (in place), clipped to frame."""
    H, W = bg.shape[:2]
    h, w = alpha.shape
    if shadow:
        sh = cv2.GaussianBlur(alpha, (0, 0), 6)
        _blend(bg, None, sh * 0.55, x + 8, y + 10, dark=True)
    _blend(bg, fg, alpha, x, y)


def _blend(bg, fg, a, x, y, dark=False):
    H, W = bg.shape[:2]
    h, w = a.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    aa = a[y0 - y:y1 - y, x0 - x:x1 - x][..., None]
    if dark:
        bg[y0:y1, x0:x1] *= 1 - aa
    else:
        bg[y0:y1, x0:x1] = bg[y0:y1, x0:x1] * (1 - aa) + fg[y0 - y:y1 - y, x0 - x:x1 - x] * aa


# ----------------------------------------------------------------------------- samples
def n_defects_for(rng):
    if rng.random() < 0.2:
        return 0  # ~1/5 clean
    return int(rng.choice([1, 1, 2, 2, 3, 4, 5]))


def make_sample(rng, n_defects=None, with_mask=False):
    """Return (bgr uint8 image, list of (cls, x0, y0, x1, y1)), plus an HxW bool mask of the
    defects' pixels when with_mask.  n_defects: force the number of defects (None: drawn from
    rng, ~1/5 clean, as the detector's splits are made; those render exactly as before)."""
    W, H = SIZES[int(rng.integers(0, len(SIZES)))]
    kind = SURFACE_KINDS[int(rng.integers(0, len(SURFACE_KINDS)))]
    mono = rng.random() < 0.45
    colour = np.ones(3, np.float32) if mono else random_colour(rng, kind)
    n = n_defects_for(rng) if n_defects is None else int(n_defects)
    mask = np.zeros((H, W), bool) if with_mask else None
    if rng.random() < 0.25:
        # part on conveyor scene
        img, _ = render_belt(rng, H, W)
        pw, ph = int(W * rng.uniform(0.5, 0.9)), int(H * rng.uniform(0.55, 0.95))
        pmask = np.zeros((ph, pw), bool) if with_mask else None
        part, alpha, defs = render_part(rng, ph, pw, kind, colour, n, mask=pmask)
        x, y = int(rng.integers(-pw // 4, W - pw + pw // 4)), int((H - ph) / 2 + rng.integers(-10, 11))
        composite(img, part, alpha, x, y)
        if with_mask:
            # the part's defect pixels, where the part is visible in the frame
            x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + pw), min(H, y + ph)
            if x1 > x0 and y1 > y0:
                mask[y0:y1, x0:x1] = (pmask & (alpha > 0.5))[y0 - y:y1 - y, x0 - x:x1 - x]
        boxes = []
        for c, a0, b0, a1, b1 in defs:
            X0, Y0, X1, Y1 = a0 + x, b0 + y, a1 + x, b1 + y
            cx0, cy0, cx1, cy1 = max(0, X0), max(0, Y0), min(W, X1), min(H, Y1)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            vis = (cx1 - cx0) * (cy1 - cy0) / ((X1 - X0) * (Y1 - Y0))
            if vis < 0.6:
                # mostly outside the frame: paint it out is impossible; keep the box anyway
                # only if something reasonable is visible, else drop (rare)
                continue
            boxes.append((c, cx0, cy0, cx1, cy1))
    else:
        orient = 0.0 if rng.random() < 0.7 else 90.0
        img = render_surface(rng, H, W, kind, colour, rolling_dir=int(orient == 90.0))
        boxes = add_defects(rng, img, (0, 0, W, H), n, orient=orient, mask=mask)
    img = apply_lighting(rng, img)
    img = apply_sensor(rng, img, mono)
    if with_mask:
        return to_uint8_bgr(img, mono), boxes, mask
    return to_uint8_bgr(img, mono), boxes


def write_split(out, count, seed, start=0):
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    os.makedirs(os.path.join(out, "labels"), exist_ok=True)
    stats = np.zeros(6, int)
    clean = 0
    for i in range(start, start + count):
        rng = np.random.default_rng([GENERATOR_SEED, seed, i])
        img, boxes = make_sample(rng)
        H, W = img.shape[:2]
        name = f"{i:06d}"
        cv2.imwrite(os.path.join(out, "images", name + ".png"), img)
        with open(os.path.join(out, "labels", name + ".txt"), "w") as f:
            for c, x0, y0, x1, y1 in boxes:
                f.write(f"{c} {(x0 + x1) / 2 / W:.6f} {(y0 + y1) / 2 / H:.6f} {(x1 - x0) / W:.6f} {(y1 - y0) / H:.6f}\n")
                stats[c] += 1
        clean += not boxes
    return stats, clean


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="train", choices=sorted(SPLIT_SEEDS))
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=None, help="override the split seed")
    ap.add_argument("--start", type=int, default=0, help="first sample index (for parallel generation)")
    a = ap.parse_args()
    seed = SPLIT_SEEDS[a.split] if a.seed is None else a.seed
    stats, clean = write_split(a.out, a.count, seed, a.start)
    print(f"wrote {a.count} images to {a.out} (seed {GENERATOR_SEED}/{seed}); clean images: {clean}; "
          + ", ".join(f"{n}={k}" for n, k in zip(CLASSES, stats)))


if __name__ == "__main__":
    sys.exit(main())
