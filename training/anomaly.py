#!/usr/bin/env python3
"""Surface anomaly model trained on defect-free images only (``models/surface-anomaly.onnx``).

PatchCore-style: a small CNN backbone trained here, self-supervised, on clean synthetic
surfaces (``training/generate.py`` with no defects); its stride-8 and stride-16 features,
locally averaged and concatenated, are reduced by PCA and compared with a coreset memory bank
of clean patches (greedy k-centre); the anomaly map is the distance of each patch to its
nearest neighbour in the bank, upsampled to the input size and smoothed; the image score is
the map's maximum.  Everything is exported as plain ONNX ops (Conv, MatMul, ReduceMin,
Resize, ReduceMax ...); thresholds are NOT in the graph (they are metadata, chosen F1-optimal
on a validation set, for the element to apply and change at run time).

    python training/anomaly.py data     --out training/runs/anomaly   # clean pools, val/test sets
    python training/anomaly.py train    --out training/runs/anomaly [--resume]
    python training/anomaly.py fit      --out training/runs/anomaly   # PCA + coreset memory bank
    python training/anomaly.py export   --out training/runs/anomaly --model models/surface-anomaly.onnx
    python training/anomaly.py eval     --out training/runs/anomaly --model models/surface-anomaly.onnx

Data (all from generate.py's renderer, deterministic by seed, never committed):
  * clean pool for the backbone and the memory bank: ANOMALY_SEEDS['train'], no defects;
  * validation (thresholds, checkpoint choice): ANOMALY_SEEDS['val'], even indices clean,
    odd indices with 1-3 defects;
  * held-out test (the card's figures only): ANOMALY_SEEDS['test'], same layout.
Pixel truth: generate.defect_mask (|delta| above 12 % of each defect's peak).  An image is
anomalous when its mask has any pixel.

Model input ``images`` [1, 3, H, W] float32 RGB in [0, 1], the frame resized (stretched,
bilinear, no letterbox) to W x H; outputs ``pred_score`` [1, 1] and ``anomaly_map``
[1, 1, H, W] (raw nearest-neighbour distances, unnormalised; Anomalib's output names).
"""
import argparse
import datetime
import json
import math
import os
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as G  # noqa: E402

VERSION = "1.0.0"
IMGSZ = (256, 448)  # H, W (16:9-ish: a 1920x1080 frame shrinks by ~4.2 on both axes)
ANOMALY_SEEDS = {"train": 5000, "val": 6000, "test": 7000}
BLUR_SIGMA = 4.0  # map smoothing in input pixels (Anomalib's PatchCore uses 4 at 256x256)


# ----------------------------------------------------------------------------- data
def render(split, i):
    """(bgr uint8 full-size image, bool mask) of sample i of an anomaly split.
    train: clean only; val/test: even i clean, odd i with 1 + (i // 2) % 3 defects."""
    seed = ANOMALY_SEEDS[split]
    n = 0 if split == "train" or i % 2 == 0 else 1 + (i // 2) % 3
    rng = np.random.default_rng([G.GENERATOR_SEED, seed, i])
    img, _, mask = G.make_sample(rng, n_defects=n, with_mask=True)
    return img, mask


def to_input(bgr, size=IMGSZ, interp=cv2.INTER_LINEAR):
    """The element's preprocessing for this model: BGR -> RGB, stretch-resize to W x H
    (bilinear, half-pixel centres: cv2.INTER_LINEAR), [0, 1], NCHW float32."""
    h, w = size
    rgb = cv2.cvtColor(cv2.resize(bgr, (w, h), interpolation=interp), cv2.COLOR_BGR2RGB)
    return rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0


def data(a):
    d = os.path.join(a.out, "data")
    os.makedirs(d, exist_ok=True)
    h, w = IMGSZ
    for split, count in (("train", a.train_count), ("val", a.val_count), ("test", a.test_count)):
        path = os.path.join(d, f"{split}.npz")
        if os.path.exists(path):
            print(f"anomaly: {path} exists", flush=True)
            continue
        t0 = time.time()
        imgs = np.zeros((count, h, w, 3), np.uint8)
        masks, sizes = [], []
        for i in range(count):
            bgr, m = render(split, i)
            imgs[i] = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)[..., ::-1]
            sizes.append(bgr.shape[:2])
            masks.append(np.packbits(m) if split != "train" else np.zeros(0, np.uint8))
        np.savez(path, images=imgs, sizes=np.array(sizes),
                 masks=np.array(masks, dtype=object), labels=np.array([m.any() for m in masks]))
        print(f"anomaly: {split}: {count} images in {time.time() - t0:.0f} s -> {path}", flush=True)


def load_split(out, split):
    z = np.load(os.path.join(out, "data", f"{split}.npz"), allow_pickle=True)
    return z["images"], z["sizes"], z["masks"], z["labels"]


def unpack_mask(packed, size):
    h, w = size
    return np.unpackbits(packed, count=h * w).reshape(h, w).astype(bool)


# ----------------------------------------------------------------------------- model
def build_backbone(padding="reflect"):
    """padding: 'reflect' (the released model: no zero border that the memory bank would have
    to learn) or 'zeros' (the first self-supervised stage)."""
    import torch.nn as nn

    def cbr(ci, co, s=1):
        return nn.Sequential(nn.Conv2d(ci, co, 3, s, 1, bias=False, padding_mode=padding), nn.BatchNorm2d(co),
                             nn.SiLU())

    class Res(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.a = cbr(c, c)
            self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False, padding_mode=padding), nn.BatchNorm2d(c))
            self.act = nn.SiLU()

        def forward(self, x):
            return self.act(x + self.b(self.a(x)))

    class Backbone(nn.Module):
        """Stride-8 (64 ch) and stride-16 (128 ch) features."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(cbr(3, 16, 2), cbr(16, 32, 2), cbr(32, 32))
            self.l2 = nn.Sequential(cbr(32, 64, 2), Res(64))
            self.l3 = nn.Sequential(cbr(64, 128, 2), Res(128))

        def forward(self, x):
            f2 = self.l2(self.stem(x))
            return f2, self.l3(f2)

    return Backbone()


def embed(f2, f3):
    """PatchCore's locally aware patch features: 3x3 average of each level, the coarse level
    upsampled to the fine grid, concatenated -> [B, 192, H/8, W/8]."""
    import torch
    import torch.nn.functional as F

    p2 = F.avg_pool2d(f2, 3, 1, 1, count_include_pad=False)
    p3 = F.avg_pool2d(f3, 3, 1, 1, count_include_pad=False)
    p3 = F.interpolate(p3, size=p2.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([p2, p3], 1)


# ----------------------------------------------------------------------------- self-supervised training
def photometric(x, rng):
    """Random global photometric change of a [3, h, w] float image in [0, 1] (lighting,
    exposure, camera): the nuisances a clean surface shows; the backbone learns to ignore them."""
    if rng.random() < 0.2:
        x = np.repeat(x.mean(0, keepdims=True), 3, 0)
    m = x.mean()
    x = (x - m) * rng.uniform(0.7, 1.3) + m * rng.uniform(0.7, 1.3)
    x = np.clip(x, 0, 1) ** rng.uniform(0.8, 1.25)
    x = x * rng.uniform(0.92, 1.08, (3, 1, 1))
    # smooth illumination gradient
    h, w = x.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    x = x * (1 + rng.uniform(0, 0.25) * ((xx / w - 0.5) * math.cos(ang) + (yy / h - 0.5) * math.sin(ang)))[None]
    if rng.random() < 0.3:
        k = rng.uniform(0.3, 1.0)
        x = np.stack([cv2.GaussianBlur(c, (0, 0), k) for c in x])
    if rng.random() < 0.6:
        x = x + rng.standard_normal(x.shape).astype(np.float32) * rng.uniform(0.002, 0.025)
    return np.clip(x, 0, 1).astype(np.float32)


def vicreg(za, zb):
    """VICReg (Bardes et al.) on matched patch vectors za, zb [N, C]."""
    import torch
    import torch.nn.functional as F

    inv = F.mse_loss(za, zb)

    def var_cov(z):
        z = z - z.mean(0)
        std = torch.sqrt(z.var(0) + 1e-4)
        v = F.relu(1 - std).mean()
        cov = (z.T @ z) / (z.shape[0] - 1)
        off = cov - torch.diag(torch.diag(cov))
        return v, off.pow(2).sum() / z.shape[1]

    va, ca = var_cov(za)
    vb, cb = var_cov(zb)
    return 25 * inv + 25 * (va + vb) / 2 + (ca + cb), inv.item()


def train(a):
    import torch
    import torch.nn as nn

    torch.set_num_threads(a.threads)
    imgs, _, _, _ = load_split(a.out, "train")
    imgs = imgs[: a.pool]
    torch.manual_seed(a.seed)
    net = build_backbone("zeros")
    proj = nn.Sequential(nn.Conv2d(192, 256, 1), nn.BatchNorm2d(256), nn.SiLU(), nn.Conv2d(256, 256, 1))
    params = list(net.parameters()) + list(proj.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.05)
    state = {"it": 0, "history": []}
    ck_path = os.path.join(a.out, "backbone_last.pt")
    if a.resume and os.path.exists(ck_path):
        ck = torch.load(ck_path, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"]); proj.load_state_dict(ck["proj"]); opt.load_state_dict(ck["opt"])
        state = ck["state"]
        print(f"anomaly: resumed at iteration {state['it']}", flush=True)
    c, cell = a.crop, 8
    n_cells = c // cell
    t0, acc = time.time(), []
    while state["it"] < a.iters:
        it = state["it"]
        rng = np.random.default_rng([a.seed, it])
        lr = a.lr * min(1.0, (it + 1) / 200) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * it / a.iters)))
        for g in opt.param_groups:
            g["lr"] = lr
        dy, dx = (int(v) for v in rng.integers(-n_cells // 2, n_cells // 2 + 1, 2))
        va, vb = [], []
        H, W = imgs.shape[1:3]
        for _ in range(a.batch):
            im = imgs[int(rng.integers(0, len(imgs)))]
            if rng.random() < 0.5:  # scale jitter
                s = rng.uniform(0.8, 1.25)
                im = cv2.resize(im, (int(W * s), int(H * s)), interpolation=cv2.INTER_LINEAR)
            if rng.random() < 0.5:
                im = im[:, ::-1]
            if rng.random() < 0.5:
                im = im[::-1]
            h, w = im.shape[:2]
            y0 = int(rng.integers(max(0, -dy * cell), h - c - max(0, dy * cell) + 1))
            x0 = int(rng.integers(max(0, -dx * cell), w - c - max(0, dx * cell) + 1))
            ca = im[y0:y0 + c, x0:x0 + c]
            cb = im[y0 + dy * cell:y0 + dy * cell + c, x0 + dx * cell:x0 + dx * cell + c]
            va.append(photometric(ca.transpose(2, 0, 1).astype(np.float32) / 255, rng))
            vb.append(photometric(cb.transpose(2, 0, 1).astype(np.float32) / 255, rng))
        xa, xb = torch.from_numpy(np.stack(va)), torch.from_numpy(np.stack(vb))
        net.train(); proj.train()
        za = proj(embed(*net(xa)))
        zb = proj(embed(*net(xb)))
        # the cells seen by both views (one border cell dropped: padding differs)
        ya0, xa0 = max(0, dy) + 1, max(0, dx) + 1
        yb0, xb0 = max(0, -dy) + 1, max(0, -dx) + 1
        hh, ww = n_cells - abs(dy) - 2, n_cells - abs(dx) - 2
        pa = za[:, :, ya0:ya0 + hh, xa0:xa0 + ww].permute(0, 2, 3, 1).reshape(-1, za.shape[1])
        pb = zb[:, :, yb0:yb0 + hh, xb0:xb0 + ww].permute(0, 2, 3, 1).reshape(-1, zb.shape[1])
        loss, inv = vicreg(pa, pb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["it"] = it + 1
        acc.append((loss.item(), inv))
        if state["it"] % a.log_every == 0 or state["it"] == a.iters:
            rec = {"it": state["it"], "loss": float(np.mean([v[0] for v in acc])),
                   "invariance": float(np.mean([v[1] for v in acc])), "lr": lr,
                   "s_per_it": (time.time() - t0) / len(acc)}
            state["history"].append(rec)
            print(json.dumps(rec), flush=True)
            acc, t0 = [], time.time()
            torch.save({"model": net.state_dict(), "proj": proj.state_dict(), "opt": opt.state_dict(),
                        "state": state, "padding": "zeros"}, ck_path + ".tmp")
            os.replace(ck_path + ".tmp", ck_path)
            if state["it"] % a.keep_every == 0:
                torch.save({"model": net.state_dict(), "it": state["it"], "padding": "zeros"},
                           os.path.join(a.out, f"backbone_{state['it']}.pt"))
    print("anomaly: backbone training done", flush=True)


def pseudo_anomaly(crop, pool, rng):
    """Paste 1-2 generic pseudo-anomalies into a clean crop (HxWx3 float in [0, 1]); returns
    (image, mask).  Only generic corruptions of clean images, as CutPaste (Li et al. 2021) and
    DRAEM (Zavrtanik et al. 2021) make them: a patch or a thin 'scar' cut from another clean
    image (or elsewhere in this one), rotated and re-lit, or a smooth-noise-shaped region
    blended with another clean texture or re-lit.  generate.py's defect renderers are never used."""
    h, w = crop.shape[:2]
    img = crop.copy()
    mask = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 3))):
        kind = rng.random()
        src = pool[int(rng.integers(0, len(pool)))].astype(np.float32) / 255
        sh, sw = src.shape[:2]
        if kind < 0.5:  # CutPaste: patch (0.6) or scar (0.4)
            if rng.random() < 0.6:
                ph, pw = (int(v) for v in rng.integers(6, 40, 2))
            else:
                ph, pw = int(rng.integers(12, 48)), int(rng.integers(2, 6))
            y, x = int(rng.integers(0, sh - ph)), int(rng.integers(0, sw - pw))
            patch = src[y:y + ph, x:x + pw] * rng.uniform(0.7, 1.3)
            ang = rng.uniform(0, 180)
            M = cv2.getRotationMatrix2D((pw / 2, ph / 2), ang, 1.0)
            side = int(math.ceil(math.hypot(ph, pw))) + 2
            M[:, 2] += (side / 2 - pw / 2, side / 2 - ph / 2)
            pr = cv2.warpAffine(patch, M, (side, side), flags=cv2.INTER_LINEAR)
            pm = cv2.warpAffine(np.ones((ph, pw), np.float32), M, (side, side), flags=cv2.INTER_LINEAR)
            if side >= min(h, w):
                continue
            oy, ox = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
            region = img[oy:oy + side, ox:ox + side]
            region[:] = region * (1 - pm[..., None]) + pr * pm[..., None]
            mask[oy:oy + side, ox:ox + side] = np.maximum(mask[oy:oy + side, ox:ox + side], pm)
        else:  # smooth-noise-shaped region: another texture blended in, or re-lit
            cell = rng.uniform(6, 24)
            n = G.smooth_noise(rng, h, w, cell)
            m = (n > rng.uniform(0.9, 1.6)).astype(np.float32)
            win = np.zeros((h, w), np.float32)
            wh, ww = (int(v) for v in rng.integers(12, max(13, min(h, w) // 2), 2))
            y, x = int(rng.integers(0, h - wh)), int(rng.integers(0, w - ww))
            win[y:y + wh, x:x + ww] = 1
            m = cv2.GaussianBlur(m * win, (0, 0), rng.uniform(0.5, 1.5))
            if m.max() < 0.3:
                continue
            if rng.random() < 0.5:
                y2, x2 = int(rng.integers(0, sh - h)), int(rng.integers(0, sw - w))
                other = src[y2:y2 + h, x2:x2 + w] * rng.uniform(0.6, 1.4)
                beta = rng.uniform(0.4, 1.0)
                img = img * (1 - beta * m[..., None]) + other * beta * m[..., None]
            else:
                gain = rng.uniform(0.45, 0.8) if rng.random() < 0.5 else rng.uniform(1.25, 1.8)
                img = img * (1 + (gain - 1) * m[..., None])
            mask = np.maximum(mask, m)
    return np.clip(img, 0, 1), mask


def train_pseudo(a):
    """Second stage: dense pseudo-anomaly segmentation on clean crops (BCE of a 1x1 head on the
    patch embedding against the pseudo-anomaly mask at stride 8), starting from the
    self-supervised stage's weights, reflect padding."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    imgs, _, _, _ = load_split(a.out, "train")
    imgs = imgs[: a.pool]
    torch.manual_seed(a.seed)
    net = build_backbone("reflect")
    if a.init:
        net.load_state_dict(torch.load(a.init, map_location="cpu", weights_only=False)["model"])
    head = nn.Sequential(nn.Conv2d(192, 64, 1), nn.SiLU(), nn.Conv2d(64, 1, 1))
    opt = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=a.lr, weight_decay=0.05)
    state = {"it": 0, "history": []}
    ck_path = os.path.join(a.out, "pseudo_last.pt")
    if a.resume and os.path.exists(ck_path):
        ck = torch.load(ck_path, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"]); head.load_state_dict(ck["head"]); opt.load_state_dict(ck["opt"])
        state = ck["state"]
        print(f"anomaly: resumed at iteration {state['it']}", flush=True)
    c = a.crop
    t0, acc = time.time(), []
    while state["it"] < a.iters:
        it = state["it"]
        rng = np.random.default_rng([a.seed, 7, it])
        lr = a.lr * min(1.0, (it + 1) / 100) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * it / a.iters)))
        for g in opt.param_groups:
            g["lr"] = lr
        xs, ms = [], []
        H, W = imgs.shape[1:3]
        for b in range(a.batch):
            im = imgs[int(rng.integers(0, len(imgs)))]
            if rng.random() < 0.5:
                s_ = rng.uniform(0.8, 1.25)
                im = cv2.resize(im, (int(W * s_), int(H * s_)), interpolation=cv2.INTER_LINEAR)
            h, w = im.shape[:2]
            y0, x0 = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
            crop = im[y0:y0 + c, x0:x0 + c].astype(np.float32) / 255
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            m = np.zeros((c, c), np.float32)
            if b % 2 == 1:
                crop, m = pseudo_anomaly(np.ascontiguousarray(crop), imgs, rng)
            xs.append(photometric(np.ascontiguousarray(crop.transpose(2, 0, 1)), rng))
            ms.append(cv2.resize(m, (c // 8, c // 8), interpolation=cv2.INTER_AREA))
        x = torch.from_numpy(np.stack(xs))
        y = torch.from_numpy(np.stack(ms))[:, None]
        net.train(); head.train()
        logit = head(embed(*net(x)))
        target = (y > 0.2).float()
        weight = 1 + 4 * target  # anomalous cells are rare
        loss = F.binary_cross_entropy_with_logits(logit, target, weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["it"] = it + 1
        with torch.no_grad():
            p = logit.sigmoid()
            sep = float(p[target > 0].mean() - p[target == 0].mean()) if target.sum() > 0 else 0.0
        acc.append((loss.item(), sep))
        if state["it"] % a.log_every == 0 or state["it"] == a.iters:
            rec = {"it": state["it"], "loss": float(np.mean([v[0] for v in acc])),
                   "separation": float(np.mean([v[1] for v in acc])), "lr": lr,
                   "s_per_it": (time.time() - t0) / len(acc)}
            state["history"].append(rec)
            print(json.dumps(rec), flush=True)
            acc, t0 = [], time.time()
            torch.save({"model": net.state_dict(), "head": head.state_dict(), "opt": opt.state_dict(),
                        "state": state, "padding": "reflect"}, ck_path + ".tmp")
            os.replace(ck_path + ".tmp", ck_path)
            if state["it"] % a.keep_every == 0:
                torch.save({"model": net.state_dict(), "it": state["it"], "padding": "reflect"},
                           os.path.join(a.out, f"pseudo_{state['it']}.pt"))
    print("anomaly: pseudo-anomaly stage done", flush=True)


# ----------------------------------------------------------------------------- memory bank
def onnx_backbone(spec):
    """A backbone read from a trained ONNX classifier or detector of this project (plain Conv /
    SiLU / Add graphs such as models/neu-classifier.onnx), as PatchCore reads an ImageNet
    network: ``onnx:PATH:TAP8,TAP16`` (the two tensors whose outputs are the stride-8 and
    stride-16 features; default: the classifier's features.5 and features.7 blocks).  The
    weights are frozen; BatchNorm is already folded into the convolutions of the export."""
    import onnx
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from onnx import numpy_helper

    parts = spec.split(":")
    path = parts[1]
    taps = (parts[2].split(",") if len(parts) > 2 else
            ["/features/features.5/act/Mul_output_0", "/features/features.7/act/Mul_output_0"])
    m = onnx.load(path)
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    need, nodes = set(taps), []
    for n in reversed(m.graph.node):  # the nodes the taps depend on, in graph order
        if any(o in need for o in n.output):
            nodes.insert(0, n)
            need.update(i for i in n.input if i not in init)

    class OnnxNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.params = nn.ParameterDict()
            self.nodes = []
            for k, n in enumerate(nodes):
                att = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
                if n.op_type not in ("Conv", "Sigmoid", "Mul", "Add", "Relu"):
                    raise SystemExit(f"onnx backbone: op {n.op_type} not supported")
                w = [i for i in n.input if i in init]
                for j, name in enumerate(w):
                    self.params[f"p{k}_{j}"] = nn.Parameter(torch.from_numpy(init[name].copy()),
                                                            requires_grad=False)
                self.nodes.append((n.op_type, list(n.input), list(n.output), att, k))

        def forward(self, x):
            # reflect-pad the image by PAD px so that no patch of the map sees the network's
            # zero padding (the border patches were the clean images' highest scores), then
            # crop the features back to the image's grid
            x = F.pad(x, (PAD, PAD, PAD, PAD), mode="reflect")
            env = {m.graph.input[0].name: x}
            for op, ins, outs, att, k in self.nodes:
                if op == "Conv":
                    b = self.params[f"p{k}_1"] if f"p{k}_1" in self.params else None
                    pads = att.get("pads", [0, 0, 0, 0])
                    y = F.conv2d(env[ins[0]], self.params[f"p{k}_0"], b, att.get("strides", [1, 1]),
                                 (pads[0], pads[1]), att.get("dilations", [1, 1]), att.get("group", 1))
                elif op == "Sigmoid":
                    y = torch.sigmoid(env[ins[0]])
                elif op == "Relu":
                    y = torch.relu(env[ins[0]])
                elif op == "Mul":
                    y = env[ins[0]] * env[ins[1]]
                else:
                    y = env[ins[0]] + env[ins[1]]
                env[outs[0]] = y
            f8, f16 = env[taps[0]], env[taps[1]]
            c8, c16 = PAD // 8, PAD // 16
            return f8[..., c8:f8.shape[-2] - c8, c8:f8.shape[-1] - c8], \
                f16[..., c16:f16.shape[-2] - c16, c16:f16.shape[-1] - c16]

    PAD = 16
    return OnnxNet().eval()


def load_backbone(a):
    import torch

    if a.backbone.startswith("onnx:"):
        return onnx_backbone(a.backbone)
    if a.backbone == "random":
        net = build_backbone("zeros")
        torch.manual_seed(a.seed)
        imgs, _, _, _ = load_split(a.out, "train")
        net.train()
        with torch.no_grad():  # batch-norm statistics of clean images (random weights)
            for i in range(0, 64, 8):
                net(torch.from_numpy(imgs[i:i + 8].transpose(0, 3, 1, 2).astype(np.float32) / 255))
    else:
        st = torch.load(a.backbone, map_location="cpu", weights_only=False)
        net = build_backbone(st.get("padding", "zeros"))
        net.load_state_dict(st["model"])
    return net.eval()


def features(net, imgs, batch=8):
    """[N, h, w, 192] patch embeddings of uint8 RGB images [N, H, W, 3]."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(imgs), batch):
            x = torch.from_numpy(imgs[i:i + batch].transpose(0, 3, 1, 2).astype(np.float32) / 255)
            out.append(embed(*net(x)).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def greedy_coreset(x, m, rng, start_pool=None):
    """Greedy k-centre (PatchCore's coreset): m rows of x that cover x."""
    n = len(x)
    idx = [int(rng.integers(0, n))]
    d = np.full(n, np.inf, np.float32)
    sq = (x * x).sum(1)
    t0 = time.time()
    for k in range(m - 1):
        c = x[idx[-1]]
        dist = sq - 2 * (x @ c) + c @ c
        np.minimum(d, dist, out=d)
        idx.append(int(np.argmax(d)))
        if (k + 1) % 2000 == 0:
            print(f"  coreset {k + 1}/{m}: covering radius {math.sqrt(max(0.0, float(d.max()))):.3f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
    return np.array(idx)


def fit(a):
    import torch

    torch.set_num_threads(a.threads)
    net = load_backbone(a)
    imgs, _, _, _ = load_split(a.out, "train")
    imgs = imgs[-a.bank_images:]  # the pool's last images (the backbone's first a.pool saw more use)
    t0 = time.time()
    f = features(net, imgs)
    n, h, w, c = f.shape
    print(f"anomaly: features of {n} clean images: {h}x{w}x{c} ({time.time() - t0:.0f} s)", flush=True)
    flat = f.reshape(-1, c).astype(np.float64)
    rng = np.random.default_rng(a.seed)
    sub = flat[rng.choice(len(flat), min(len(flat), 200000), replace=False)]
    mean = sub.mean(0)
    cov = np.cov((sub - mean).T)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1][: a.dim]
    proj = evecs[:, order].astype(np.float32)  # [c, dim]
    kept = evals[order].sum() / evals.sum()
    print(f"anomaly: PCA {c} -> {a.dim} keeps {kept:.3f} of the variance", flush=True)
    z = ((flat - mean) @ proj).astype(np.float32)
    pool = z[rng.choice(len(z), min(len(z), a.coreset_pool), replace=False)]
    t0 = time.time()
    idx = greedy_coreset(pool, a.bank, rng)
    bank = pool[idx]
    print(f"anomaly: coreset {a.bank} of {len(pool)} patches ({time.time() - t0:.0f} s)", flush=True)
    tag = a.tag or ("random" if a.backbone == "random" else os.path.splitext(os.path.basename(a.backbone))[0])
    np.savez(os.path.join(a.out, f"bank_{tag}.npz"), mean=mean.astype(np.float32), proj=proj, bank=bank,
             backbone=a.backbone, dim=a.dim, kept=kept)
    print(f"anomaly: wrote {os.path.join(a.out, f'bank_{tag}.npz')}", flush=True)


# ----------------------------------------------------------------------------- full model (torch, for export)
def build_full(net, bank_npz, size=IMGSZ):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    z = np.load(bank_npz, allow_pickle=True)

    class PatchCore(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.from_numpy(z["mean"]))
            self.register_buffer("proj", torch.from_numpy(z["proj"]))
            bank = torch.from_numpy(z["bank"])
            self.register_buffer("bank_t", bank.T.contiguous() * -2.0)  # [D, M], the -2 folded in
            self.register_buffer("bank_sq", (bank * bank).sum(1))       # [M]
            s = BLUR_SIGMA
            r = int(math.ceil(3 * s))
            g = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * s * s))
            g = g / g.sum()
            self.register_buffer("gx", g.view(1, 1, 1, -1))
            self.register_buffer("gy", g.view(1, 1, -1, 1))
            self.r = r

        def patch_scores(self, x):
            e = embed(*self.net(x))                                  # [1, 192, h, w]
            b, c, h, w = e.shape
            p = e.permute(0, 2, 3, 1).reshape(h * w, c)
            q = (p - self.mean) @ self.proj                          # [hw, D]
            d2 = (q @ self.bank_t + self.bank_sq).amin(1) + (q * q).sum(1)
            return torch.sqrt(torch.clamp(d2, min=0.0)).reshape(1, 1, h, w)

        def forward(self, x):
            s = self.patch_scores(x)
            m = F.interpolate(s, size=size, mode="bilinear", align_corners=False)
            m = F.pad(m, (self.r, self.r, self.r, self.r), mode="replicate")
            m = F.conv2d(F.conv2d(m, self.gx), self.gy)
            score = m.amax(dim=(2, 3))                               # [1, 1]
            return score, m

    return PatchCore().eval()


# ----------------------------------------------------------------------------- metrics
def auroc(scores, labels):
    """Area under the ROC curve (ties counted half), labels bool."""
    scores = np.asarray(scores, np.float64).ravel()
    labels = np.asarray(labels, bool).ravel()
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s), np.float64)
    # average ranks of tied values
    uniq, first, counts = np.unique(s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    npos, nneg = labels.sum(), (~labels).sum()
    if npos == 0 or nneg == 0:
        return float("nan")
    return float((ranks[labels].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def best_f1(scores, labels):
    """(threshold, F1, precision, recall) maximising F1 for 'anomalous when score >= threshold';
    the threshold is put halfway between the chosen score and the next lower one."""
    scores = np.asarray(scores, np.float64).ravel()
    labels = np.asarray(labels, bool).ravel()
    order = np.argsort(-scores, kind="mergesort")
    s, l = scores[order], labels[order]
    tp = np.cumsum(l)
    fp = np.cumsum(~l)
    last = np.r_[s[1:] != s[:-1], True]  # end of each group of equal scores
    tp, fp, s_at = tp[last], fp[last], s[last]
    prec = tp / (tp + fp)
    rec = tp / max(1, l.sum())
    f1 = 2 * prec * rec / np.maximum(prec + rec, 1e-12)
    k = int(np.argmax(f1))
    nxt = s[np.searchsorted(-s, -s_at[k], side="right")] if np.searchsorted(-s, -s_at[k], side="right") < len(s) else s_at[k] - 1e-3
    return float((s_at[k] + nxt) / 2), float(f1[k]), float(prec[k]), float(rec[k])


def pixel_arrays(maps, masks, sizes, stride=1):
    """Anomaly maps upsampled (bilinear) to each image's own size, and its truth mask, every
    `stride`-th pixel on both axes."""
    ss, ll = [], []
    for m, pk, (h, w) in zip(maps, masks, sizes):
        full = cv2.resize(m.astype(np.float32), (int(w), int(h)), interpolation=cv2.INTER_LINEAR)
        truth = unpack_mask(pk, (int(h), int(w)))
        ss.append(full[::stride, ::stride].ravel())
        ll.append(truth[::stride, ::stride].ravel())
    return np.concatenate(ss), np.concatenate(ll)


def run_model(run, imgs):
    scores, maps = [], []
    for im in imgs:
        x = im.transpose(2, 0, 1)[None].astype(np.float32) / 255
        s, m = run(x)
        scores.append(float(np.asarray(s).ravel()[0]))
        maps.append(np.asarray(m)[0, 0])
    return np.array(scores), maps


def score_split(run, out, split, stride=2):
    imgs, sizes, masks, labels = load_split(out, split)
    t0 = time.time()
    scores, maps = run_model(run, imgs)
    r = {"split": split, "images": len(imgs), "anomalous": int(labels.sum()),
         "image_auroc": auroc(scores, labels), "seconds": time.time() - t0}
    ps, pl = pixel_arrays(maps, masks, sizes, stride)
    r["pixel_auroc"] = auroc(ps, pl)
    r["pixels"] = int(len(ps)); r["anomalous_pixels"] = int(pl.sum())
    score_split.maps = maps
    return r, scores, labels, ps, pl


def quick(a):
    """Validation AUROCs of a backbone (PyTorch, no export): for choosing checkpoints."""
    import torch

    torch.set_num_threads(a.threads)
    net = load_backbone(a)
    tag = a.tag or ("random" if a.backbone == "random" else os.path.splitext(os.path.basename(a.backbone))[0])
    model = build_full(net, os.path.join(a.out, f"bank_{tag}.npz"))

    def run(x):
        with torch.no_grad():
            s, m = model(torch.from_numpy(x))
        return s.numpy(), m.numpy()

    r, scores, labels, _, _ = score_split(run, a.out, a.split, stride=4)
    thr, f1, p, rc = best_f1(scores, labels)
    r.update({"tag": tag, "image_f1": f1, "image_threshold": thr})
    print(json.dumps(r), flush=True)


# ----------------------------------------------------------------------------- export
def export(a):
    import onnx
    import onnxruntime as ort
    import torch

    torch.set_num_threads(a.threads)
    net = load_backbone(a)
    tag = a.tag or os.path.splitext(os.path.basename(a.backbone))[0]
    bank_npz = os.path.join(a.out, f"bank_{tag}.npz")
    model = build_full(net, bank_npz)
    z = np.load(bank_npz, allow_pickle=True)
    h, w = IMGSZ
    x = torch.rand(1, 3, h, w)
    with torch.no_grad():
        ref = [t.numpy() for t in model(x)]
    kw = dict(input_names=["images"], output_names=["pred_score", "anomaly_map"], opset_version=17,
              do_constant_folding=True)
    try:
        torch.onnx.export(model, (x,), a.model, dynamo=False, **kw)
    except TypeError:
        torch.onnx.export(model, (x,), a.model, **kw)
    m = onnx.load(a.model)
    params = sum(p.numel() for p in net.parameters())
    thr = {}
    thr_path = os.path.join(a.out, f"thresholds_{tag}.json")
    if os.path.exists(thr_path):
        with open(thr_path) as f:
            thr = json.load(f)
    bank = z["bank"]
    meta = {
        "description": ("gst-plugin-defect surface anomaly model (PatchCore-style), trained on defect-free synthetic "
                        "surfaces of training/generate.py only: self-supervised CNN backbone "
                        f"({params} params), PCA {z['proj'].shape[0]}->{bank.shape[1]}, coreset memory bank of "
                        f"{bank.shape[0]} clean patches, nearest-neighbour distance map"),
        "author": "gst-plugin-defect",
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "version": VERSION,
        "license": "MIT OR Apache-2.0",
        "docs": "models/surface-anomaly.md, docs/anomaly-models.md",
        "stride": "8",
        "task": "anomaly",
        "batch": "1",
        "imgsz": f"[{h}, {w}]",
        "names": "{0: 'anomaly'}",
        "channels": "3",
        "preprocess": f"resize (stretch, no letterbox; bilinear, half-pixel centres) to {w}x{h}, RGB, /255",
        "output": ("pred_score [1, 1] = max of anomaly_map; anomaly_map [1, 1, H, W] = distance of each patch to "
                   "its nearest clean patch (raw, unnormalised, smoothed sigma 4 px); no threshold in the graph"),
        "image_threshold": f"{thr.get('image_threshold', float('nan')):.6g}",
        "pixel_threshold": f"{thr.get('pixel_threshold', float('nan')):.6g}",
        "score_range": str([round(v, 4) for v in thr.get("score_range", [])]),
        "backbone": f"training/anomaly.py Backbone, self-supervised (dense VICReg) on clean images; {tag}",
        "memory_bank": f"{bank.shape[0]}x{bank.shape[1]}",
        "generator": "training/generate.py",
        "generator_seed": str(G.GENERATOR_SEED),
        "split_seeds": str(ANOMALY_SEEDS),
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "gst-plugin-defect training/anomaly.py"
    m.doc_string = meta["description"]
    onnx.checker.check_model(m)
    onnx.save(m, a.model)
    sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    out = sess.run(None, {"images": x.numpy()})
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"exported {a.model} ({os.path.getsize(a.model) / 1e6:.2f} MB): input {sess.get_inputs()[0].shape}, "
          f"outputs {[(o.name, o.shape) for o in sess.get_outputs()]}; ops {ops}")
    d = [float(np.abs(o - r).max()) for o, r in zip(out, ref)]
    print(f"onnxruntime vs torch: max abs diff score {d[0]:.2e}, map {d[1]:.2e}")
    assert np.allclose(out[0], ref[0], atol=1e-3, rtol=1e-3) and np.allclose(out[1], ref[1], atol=1e-3, rtol=1e-3)


def ort_runner(model, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return sess, (lambda x: sess.run(None, {"images": x}))


def regions_found(maps, masks, sizes, thr):
    """Defect regions (connected components of the truth mask, dilated 7 px so that a crack
    network is one region) whose peak map value reaches the pixel threshold."""
    found = total = 0
    for m, pk, (h, w) in zip(maps, masks, sizes):
        truth = unpack_mask(pk, (int(h), int(w)))
        if not truth.any():
            continue
        full = cv2.resize(m.astype(np.float32), (int(w), int(h)), interpolation=cv2.INTER_LINEAR)
        n, lab = cv2.connectedComponents(cv2.dilate(truth.astype(np.uint8), np.ones((7, 7), np.uint8)))
        for k in range(1, n):
            total += 1
            found += bool(full[(lab == k) & truth].max() >= thr)
    return found, total


def evaluate(a):
    """Thresholds from the validation split, figures on the held-out test split, latency;
    everything through onnxruntime on the exported file."""
    sess, run = ort_runner(a.model, a.threads)
    tag = a.tag or "model"
    thr_path = os.path.join(a.out, f"thresholds_{tag}.json")
    if a.val_only or not os.path.exists(thr_path):
        val, vs, vl, vps, vpl = score_split(run, a.out, "val", stride=2)
        ithr, if1, ip, ir = best_f1(vs, vl)
        # pixel threshold: F1-optimal over the validation pixels (every 2nd row and column)
        pthr, pf1, pp, pr = best_f1(vps, vpl)
        lo, hi = np.percentile(vps, [0.1, 99.9])
        thr = {"image_threshold": ithr, "pixel_threshold": pthr, "score_range": [float(lo), float(hi)],
               "val": {**val, "image_f1": if1, "image_precision": ip, "image_recall": ir,
                       "pixel_f1": pf1, "pixel_precision": pp, "pixel_recall": pr}}
        print(json.dumps(thr), flush=True)
        with open(thr_path, "w") as f:
            json.dump(thr, f, indent=1)
        if a.val_only:
            return
    with open(thr_path) as f:
        thr = json.load(f)
    ithr, pthr = thr["image_threshold"], thr["pixel_threshold"]
    test, ts, tl, tps, tpl = score_split(run, a.out, "test", stride=2)
    pred = ts >= ithr
    tp, fp, fn = int((pred & tl).sum()), int((pred & ~tl).sum()), int((~pred & tl).sum())
    ppred = tps >= pthr
    ptp, pfp, pfn = int((ppred & tpl).sum()), int((ppred & ~tpl).sum()), int((~ppred & tpl).sum())
    imgs, sizes, masks, labels = load_split(a.out, "test")
    maps = score_split.maps
    found, total = regions_found(maps, masks, sizes, pthr)
    r = {"model": a.model, "thresholds": {"image": ithr, "pixel": pthr}, "val": thr["val"], "test": test,
         "image_at_threshold": {"tp": tp, "fp": fp, "fn": fn, "tn": int(len(ts) - tp - fp - fn),
                                "precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn),
                                "f1": 2 * tp / max(1, 2 * tp + fp + fn)},
         "pixel_at_threshold": {"precision": ptp / max(1, ptp + pfp), "recall": ptp / max(1, ptp + pfn),
                                "f1": 2 * ptp / max(1, 2 * ptp + pfp + pfn)},
         "regions_found": {"found": found, "total": total},
         "score_quantiles": {"good": np.percentile(ts[~tl], [50, 90, 100]).tolist(),
                             "defective": np.percentile(ts[tl], [0, 10, 50]).tolist()}}
    # latency: the model at its input size, and a 1080p frame's path (resize + model)
    h, w = IMGSZ
    x = imgs[:1].transpose(0, 3, 1, 2).astype(np.float32) / 255
    for _ in range(5):
        run(x)
    ts_ = []
    for _ in range(a.bench):
        t = time.perf_counter(); run(x); ts_.append(time.perf_counter() - t)
    frame = cv2.resize(render("test", 1)[0], (1920, 1080), interpolation=cv2.INTER_LINEAR)
    tf = []
    for _ in range(a.bench):
        t = time.perf_counter(); run(to_input(frame)); tf.append(time.perf_counter() - t)
    r["latency_ms"] = {"threads": a.threads, "runs": a.bench, "model_median": 1e3 * float(np.median(ts_)),
                       "model_p90": 1e3 * float(np.percentile(ts_, 90)),
                       "frame_1080p_median": 1e3 * float(np.median(tf)),
                       "tiles_1080p_native": round(1920 * 1080 / (h * w), 1)}
    print(json.dumps(r, indent=1), flush=True)
    with open(os.path.join(a.out, f"test_metrics_{tag}.json"), "w") as f:
        json.dump(r, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("data")
    p.add_argument("--train-count", type=int, default=1200)
    p.add_argument("--val-count", type=int, default=200)
    p.add_argument("--test-count", type=int, default=300)
    for name in ("train", "pseudo"):
        p = sub.add_parser(name)
        p.add_argument("--iters", type=int, default=3000 if name == "train" else 1500)
        p.add_argument("--batch", type=int, default=24)
        p.add_argument("--crop", type=int, default=128)
        p.add_argument("--pool", type=int, default=900, help="clean images the backbone trains on")
        p.add_argument("--lr", type=float, default=2e-3 if name == "train" else 1e-3)
        p.add_argument("--log-every", type=int, default=50)
        p.add_argument("--keep-every", type=int, default=500)
        p.add_argument("--resume", action="store_true")
        p.add_argument("--init", help="backbone checkpoint to start from (pseudo)")
    for name in ("fit", "quick", "export", "eval"):
        p = sub.add_parser(name)
        p.add_argument("--backbone", default="random")
        p.add_argument("--tag")
        p.add_argument("--dim", type=int, default=64)
        p.add_argument("--bank", type=int, default=8192)
        p.add_argument("--bank-images", type=int, default=300)
        p.add_argument("--coreset-pool", type=int, default=150000)
        p.add_argument("--split", default="val")
        p.add_argument("--model", default="models/surface-anomaly.onnx")
        p.add_argument("--bench", type=int, default=50)
        p.add_argument("--val-only", action="store_true")
    for p in sub.choices.values():
        p.add_argument("--out", default="training/runs/anomaly")
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    {"data": data, "train": train, "pseudo": train_pseudo, "fit": fit, "quick": quick, "export": export, "eval": evaluate}[a.cmd](a)


if __name__ == "__main__":
    main()
