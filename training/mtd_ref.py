#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Reference-tile anomaly model for real magnetic tiles: a second recipe for
``models/magnetic-tile-anomaly.onnx``, built from the defect-free train tiles of the Magnetic Tile
Defect dataset only, with no pretrained weights and no gradient training.

Method (nearest references, spread-normalised): every tile is described by fixed, hand-written
local features (Gaussian derivatives up to second order, gradient magnitude and local standard
deviation at SCALES pixels, on the tile normalised to mean 0 and standard deviation 1), averaged
on a GRID x GRID grid and whitened with the train tiles' statistics.  The bank holds the features
and an 8x8 thumbnail of every defect-free train tile.  For a tile to inspect:

1. the KZ train tiles with the closest thumbnails are its references (same lighting, same shape);
2. at each grid cell, the spread of the KZ references' features (standard deviation + FLOOR) is
   the normal variation there;
3. the anomaly map at a cell is the smallest distance, in units of that spread, between the
   tile's features and those of the K closest references at that cell or one of its eight
   neighbours (a shift of one cell absorbs small misalignments);
4. the map is upsampled (bilinear) to the input size; the image score is its maximum.

The whole method is in the ONNX graph (convolutions with fixed kernels, TopK, Gather), so
``defectdetect`` (task ``anomaly``) runs it as any anomaly model; the bank is stored as float16.

    python training/mtd.py data --mtd $MTD_DIR --out RUN          # split, cached arrays (as mtd.py)
    python training/mtd_ref.py build --out RUN --model models/magnetic-tile-anomaly.onnx
    python training/mtd_ref.py eval --out RUN --model M --split val    # onnxruntime cross-check
    python training/mtd_ref.py ablation --out RUN                       # the card's validation table
    python training/mtd_ref.py published --mtd $MTD_DIR --train-list mtd_train_filenames.txt --leave-out
                                  # AUROC on DifferNet's published split, with and without the leak

Split, masks and the empty-mask rule: as ``training/mtd.py``.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mtd import (SIZE, auroc, evaluate, fast_auroc, list_tiles, load, part_ids, read_tiles,  # noqa: E402
                 save_anomaly_onnx)

VERSION = "2.0.0"
SCALES = (1, 2, 4, 8, 16)
GRID = 32  # feature cells per side: 8x8 px at 256x256
THUMB = 8  # thumbnail side for choosing references
K, KZ, FLOOR = 5, 20, 0.05


def gauss1d(sigma):
    import torch

    r = int(np.ceil(3 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return torch.tensor(k / k.sum(), dtype=torch.float32), r


class Features:
    """Fixed local features of normalised grey tiles [B, 1, S, S] -> [B, C, GRID, GRID]."""

    def __init__(self):
        import torch

        self.k = {s: gauss1d(s) for s in sorted(set(SCALES) | {2 * s for s in SCALES})}
        sob = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
        lap = torch.tensor([[1.0, -2.0, 1.0], [2.0, -4.0, 2.0], [1.0, -2.0, 1.0]]) / 4
        cross = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 1.0]]) / 4
        self.d = torch.stack([sob, sob.t(), lap, lap.t(), cross])[:, None]  # [5, 1, 3, 3]

    def blur(self, x, sigma):
        import torch.nn.functional as F

        k, r = self.k[sigma]
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))

    def __call__(self, g):
        import torch
        import torch.nn.functional as F

        out = []
        for s in SCALES:
            b = self.blur(g, s)
            d = F.conv2d(F.pad(b, (1, 1, 1, 1), mode="reflect"), self.d)
            gx, gy = d[:, 0:1] * s, d[:, 1:2] * s
            gxx, gyy, gxy = d[:, 2:3] * s * s, d[:, 3:4] * s * s, d[:, 4:5] * s * s
            mu = self.blur(g, 2 * s)
            sd = torch.sqrt(torch.clamp(self.blur(g * g, 2 * s) - mu * mu, min=0.0) + 1e-8)
            out += [b, gx, gy, torch.sqrt(gx * gx + gy * gy + 1e-8), gxx, gyy, gxy, gxx.abs() + gyy.abs(), sd]
        f = torch.cat(out, 1)
        return F.avg_pool2d(f, SIZE // GRID)


def normalise(x):
    """RGB [B, 3, S, S] in [0, 1] -> grey, mean 0, standard deviation 1 per image."""
    import torch

    g = x.mean(1, keepdim=True)
    m = g.mean((2, 3), keepdim=True)
    sd = torch.sqrt(((g - m) ** 2).mean((2, 3), keepdim=True) + 1e-6)
    return (g - m) / sd


def make_model(bank_feat, bank_thumb, fmean, fstd):
    """The ONNX-exportable module: images [1, 3, S, S] -> (pred_score [1, 1], anomaly_map [1, 1, S, S])."""
    import torch
    import torch.nn.functional as F

    feats = Features()

    class RefModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("bank", torch.from_numpy(bank_feat.astype(np.float16)))  # [N, C, G, G]
            self.register_buffer("thumbs", torch.from_numpy(bank_thumb.astype(np.float32)))  # [N, T*T]
            self.register_buffer("fmean", torch.from_numpy(fmean.astype(np.float32)).view(1, -1, 1, 1))
            self.register_buffer("fstd", torch.from_numpy(fstd.astype(np.float32)).view(1, -1, 1, 1))

        def forward(self, x):
            g = normalise(x)
            f = (feats(g) - self.fmean) / self.fstd  # [1, C, G, G]
            t = F.avg_pool2d(g, SIZE // THUMB).reshape(1, -1)  # [1, T*T]
            d = ((self.thumbs - t) ** 2).sum(1)  # [N]
            idx = torch.topk(d, KZ, largest=False).indices  # sorted, nearest first
            near = self.bank.index_select(0, idx).float()  # [KZ, C, G, G]
            spread = near.std(0, unbiased=False, keepdim=True) + FLOOR
            ref = F.pad(near[:K], (1, 1, 1, 1), mode="replicate")
            cands = torch.cat([ref[:, :, dy:dy + GRID, dx:dx + GRID] for dy in range(3) for dx in range(3)], 0)
            dist = torch.sqrt((((cands - f) / spread) ** 2).sum(1, keepdim=True))  # [9K, 1, G, G]
            cell = dist.min(0, keepdim=True).values  # [1, 1, G, G]
            amap = F.interpolate(cell, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
            return amap.amax((2, 3)), amap

    return RefModel().eval()


def tile_features(imgs, batch=16):
    """Cached uint8 tiles [N, S, S] -> raw features [N, C, G, G] and thumbnails [N, T*T]."""
    import torch
    import torch.nn.functional as F

    feats = Features()
    fs, ts = [], []
    with torch.no_grad():
        for i in range(0, len(imgs), batch):
            x = torch.from_numpy(imgs[i:i + batch].astype(np.float32) / 255.0)[:, None].repeat(1, 3, 1, 1)
            g = normalise(x)
            fs.append(feats(g).numpy())
            ts.append(F.avg_pool2d(g, SIZE // THUMB).reshape(len(x), -1).numpy())
    return np.concatenate(fs), np.concatenate(ts)


def bank_model(imgs):
    """The model whose bank is made of the defect-free tiles imgs (uint8 N x SIZE x SIZE), its
    PyTorch runner (float NCHW -> (score, map)) and the number of features."""
    import torch

    raw, thumbs = tile_features(imgs)
    c = raw.shape[1]
    flat = raw.transpose(0, 2, 3, 1).reshape(-1, c).astype(np.float64)
    fmean, fstd = flat.mean(0), flat.std(0) + 1e-6
    bank = (raw - fmean[None, :, None, None]) / fstd[None, :, None, None]
    model = make_model(bank, thumbs, fmean, fstd)

    def run(x):
        with torch.no_grad():
            s, m = model(torch.from_numpy(x))
        return s.numpy(), m.numpy()

    return model, run, c


def build(a):
    import torch

    torch.set_num_threads(a.threads)
    t0 = time.time()
    imgs, _, _ = load(a.out, "train")
    model, run, c = bank_model(imgs)
    print(f"mtd_ref: bank of {len(imgs)} defect-free train tiles, {c} features on {GRID}x{GRID} cells "
          f"({time.time() - t0:.0f} s)", flush=True)
    vimgs, vmasks, vclasses = load(a.out, "val")
    r = evaluate(run, vimgs, vmasks, vclasses, unbounded=True)[0]
    print(f"mtd_ref: validation (PyTorch): {json.dumps(r)} ({time.time() - t0:.0f} s)", flush=True)
    x = torch.from_numpy(np.repeat(vimgs[:1, None].astype(np.float32) / 255.0, 3, 1))
    meta = {
        "description": (f"gst-plugin-defect magnetic tile anomaly model (reference tiles: the {K} nearest of "
                        f"{len(imgs)} defect-free train tiles, distances in units of the local spread of the "
                        f"{KZ} nearest; fixed Gaussian-derivative features, no trained or pretrained weights); "
                        "anomaly_map = spread-normalised distance"),
        "version": VERSION,
        "license": "MIT OR Apache-2.0 (the code); the bank is made of Magnetic Tile Defect dataset tiles",
        "output": ("pred_score [1, 1] = max of anomaly_map; anomaly_map [1, 1, H, W] = distance to the nearest "
                   "reference tiles in units of their local spread (0 = like a reference; unbounded); no threshold "
                   "in the graph"),
        "method": f"reference tiles: scales {list(SCALES)}, grid {GRID}, thumb {THUMB}, k {K}, kz {KZ}, floor {FLOOR}",
    }
    d = save_anomaly_onnx(model, x, a.model, meta, r, a.out, "training/mtd_ref.py")
    with open(os.path.join(a.out, "ref_val_metrics.json"), "w") as f:
        json.dump(dict(val=r, tiles=len(imgs), features=c), f, indent=1)
    assert d[0] < 1e-2 and d[1] < 1e-2, "onnxruntime and PyTorch disagree"


def ort_eval(a):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    imgs, masks, classes = load(a.out, a.split)
    print(json.dumps(evaluate(lambda x: sess.run(None, {"images": x}), imgs, masks, classes, unbounded=True)[0],
                     indent=1))


def ablation(a):
    """Validation figures of the steps that led to the method (never the test split): a PaDiM-style
    per-cell Gaussian, plain nearest references, then distances in units of the references'
    spread with several floors and numbers of references."""
    import cv2
    import torch

    torch.set_num_threads(a.threads)
    timgs, _, _ = load(a.out, "train")
    vimgs, vmasks, vclasses = load(a.out, "val")
    raw, th = tile_features(timgs)
    vraw, vth = tile_features(vimgs)
    c = raw.shape[1]
    flat = raw.transpose(0, 2, 3, 1).reshape(-1, c).astype(np.float64)
    fmean, fstd = flat.mean(0), flat.std(0) + 1e-6
    bank = ((raw - fmean[None, :, None, None]) / fstd[None, :, None, None]).transpose(0, 2, 3, 1)  # N, G, G, C
    val = ((vraw - fmean[None, :, None, None]) / fstd[None, :, None, None]).transpose(0, 2, 3, 1)
    labels = vclasses != "free"
    keep = (vclasses == "free") | (vmasks.reshape(len(vmasks), -1).max(1) > 0)

    def report(name, cells):
        maps = np.stack([cv2.resize(m.astype(np.float32), (SIZE, SIZE)) for m in cells])
        ps, pl = maps[keep][:, ::2, ::2].ravel(), vmasks[keep][:, ::2, ::2].ravel() > 0
        print(f"| {name} | {auroc(maps.reshape(len(maps), -1).max(1), labels):.3f} | "
              f"{fast_auroc(ps / ps.max(), pl):.3f} |", flush=True)

    print("| variant (validation split) | image AUROC | pixel AUROC |\n|---|---|---|")
    mu = bank.mean(0)
    d = bank - mu
    cov = np.einsum("nhwc,nhwd->hwcd", d, d) / (len(bank) - 1) + 0.01 * np.eye(c)
    icov = np.linalg.inv(cov)
    dv = val - mu
    report(f"PaDiM-style: one Gaussian per cell over all {len(bank)} tiles", np.sqrt(np.einsum("nhwc,hwcd,nhwd->nhw", dv, icov, dv)))

    def shifted(ref):
        p = np.pad(ref, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        return np.concatenate([p[:, dy:dy + GRID, dx:dx + GRID] for dy in range(3) for dx in range(3)], 0)

    # the part of every view (training/mtd.py part_ids), to leave a tile's own views out of the bank
    tfiles = np.load(os.path.join(a.out, "data", "train.npz"))["files"]
    vfiles = np.load(os.path.join(a.out, "data", "val.npz"))["files"]
    pid = part_ids(list(tfiles) + list(vfiles))
    tpart, vpart = np.array([pid[f] for f in tfiles]), np.array([pid[f] for f in vfiles])

    def refs(k, kz, floor, own_views=True):
        cells = []
        for i in range(len(val)):
            d = ((th - vth[i]) ** 2).sum(1)
            if not own_views:
                d = np.where(tpart == vpart[i], np.inf, d)
            order = np.argsort(d)
            near = bank[order[:kz]]
            spread = near.std(0) + floor if floor is not None else 1.0
            cells.append(np.sqrt((((shifted(near[:k]) - val[i][None]) / spread) ** 2).sum(-1)).min(0))
        return cells

    report(f"nearest references, k {K}, plain whitened distance", refs(K, K, None))
    for k, kz, floor in ((K, KZ, 0.3), (K, KZ, 0.1), (K, KZ, FLOOR), (K, KZ, 0.02), (1, KZ, FLOOR), (K, 40, FLOOR)):
        mark = " (the method)" if (k, kz, floor) == (K, KZ, FLOOR) else ""
        report(f"k {k}, spread of the {kz} nearest + {floor}{mark}", refs(k, kz, floor))
    shared = int(np.isin(vpart, tpart).sum())
    report(f"the method, each view's own tile left out of the bank ({shared} of {len(vpart)} validation "
           "views have views in the bank)", refs(K, KZ, FLOOR, own_views=False))


def published(a):
    """The method on a published protocol given as the list of its defect-free train files
    (DifferNet's ``mtd_train_filenames.txt``): the bank is the listed tiles, every other tile, good
    or defective, is test. No validation split, so AUROC only (threshold-free). With --leave-out
    the views of each test tile's own part are also taken out of the bank (all views of a part
    with a good test view, which that protocol puts in train): the same test, scored without the
    leak; and, as a control, with a bank of as many listed tiles drawn at random (leak kept)."""
    with open(a.train_list) as f:
        listed = {line.strip() for line in f if line.strip()}
    tiles = list_tiles(a.mtd)
    free = {os.path.basename(t[0]) for t in tiles if t[2] == "free"}
    unknown = sorted(listed - free)
    if unknown:
        sys.exit(f"mtd_ref: {len(unknown)} names in {a.train_list} are not defect-free tiles of {a.mtd} "
                 f"(first: {unknown[0]})")
    import torch  # after the checks: a wrong list is refused without it

    torch.set_num_threads(a.threads)
    train = [t for t in tiles if os.path.basename(t[0]) in listed]
    test = [t for t in tiles if os.path.basename(t[0]) not in listed]
    pid = part_ids(t[0] for t in tiles)
    test_parts = {pid[t[0]] for t in test}
    shared = sum(1 for t in test if t[2] == "free" and any(pid[u[0]] == pid[t[0]] for u in train))
    timgs, tmasks, tclasses = read_tiles(test)
    n_free = int((tclasses == "free").sum())
    print(f"mtd_ref: protocol {a.train_list}: {len(train)} defect-free train tiles; test {n_free} good "
          f"({shared} with another view of the same tile in train) and {len(test) - n_free} defective", flush=True)
    out = {"train_list": a.train_list, "train": len(train), "test_good": n_free,
           "test_defective": len(test) - n_free, "test_good_with_a_train_view": shared}
    banks = [("as listed", train)]
    if a.leave_out:
        kept = [t for t in train if pid[t[0]] not in test_parts]
        banks.append(("without the test tiles' parts", kept))
        # the control: a bank of the same size drawn from the listed tiles, leak kept, so that the
        # drop is not read as the effect of a smaller bank
        pick = np.random.default_rng(0).choice(len(train), len(kept), replace=False)
        banks.append(("as listed, as few tiles drawn at random", [train[i] for i in sorted(pick)]))
    for name, sel in banks:
        t0 = time.time()
        _, run, _ = bank_model(read_tiles(sel)[0])
        r = evaluate(run, timgs, tmasks, tclasses, unbounded=True)[0]
        out[name] = dict(bank=len(sel), image_auroc=r["image_auroc"], pixel_auroc=r["pixel_auroc"],
                         class_auroc=r["class_auroc"])
        print(f"mtd_ref: bank {name} ({len(sel)} tiles): test image AUROC {r['image_auroc']:.4f}, pixel AUROC "
              f"{r['pixel_auroc']:.4f}; per class " + ", ".join(f"{k} {v:.3f}" for k, v in r["class_auroc"].items())
              + f" ({time.time() - t0:.0f} s)", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, fn in (("build", build), ("eval", ort_eval), ("ablation", ablation)):
        p = sub.add_parser(name)
        p.set_defaults(run=fn)
        p.add_argument("--out", default="training/runs/mtd", help="the run folder of `mtd.py data`")
        p.add_argument("--model", default="models/magnetic-tile-anomaly.onnx")
        p.add_argument("--threads", type=int, default=2)
        if name == "eval":
            p.add_argument("--split", default="val", choices=["val", "test"])
    p = sub.add_parser("published", help="AUROC on a published protocol given by its list of train files")
    p.set_defaults(run=published)
    p.add_argument("--mtd", required=True, help="the Magnetic-tile-defect-datasets checkout")
    p.add_argument("--train-list", required=True,
                   help="defect-free train file names, one a line (DifferNet: mtd_train_filenames.txt)")
    p.add_argument("--leave-out", action="store_true",
                   help="also score with the test tiles' own parts taken out of the bank")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    a.run(a)


if __name__ == "__main__":
    main()
