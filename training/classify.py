#!/usr/bin/env python3
"""NEU-DET six-class image classifier, Ultralytics-classify compatible (``models/neu-classifier.onnx``).

    python training/classify.py train  --data training/data/neu --out training/runs/cls [--resume]
    python training/classify.py export --ckpt training/runs/cls/best.pt --out models/neu-classifier.onnx
    python training/classify.py eval   --model models/neu-classifier.onnx --data training/data/neu \
                                       --split test --json training/runs/cls/test_metrics.json

Data: ``DATA/{train,val,test}/images/<class>_<n>.jpg`` as written by ``training/neu_det.py``
(NEU-DET, 200x200 grey hot-rolled steel; the class is the file-name prefix; split by file
number: n % 10 == 0 test, == 5 validation, else train).  The train split trains, the
validation split picks the checkpoint, the test split is only read by ``eval``.

The exported model has the signature of an Ultralytics 8.x ``-cls`` export: input ``images``
[1, 3, S, S] float32 RGB in [0, 1] (preprocessing: ``training/cls_preprocess.py``, i.e.
Ultralytics' ``classify_transforms``: shortest side resized to S with PIL bilinear, centre
crop S, /255, no mean/std), output ``output0`` [1, 6] softmax probabilities, and Ultralytics'
metadata keys (``task: classify``, ``names``, ``imgsz``, ``stride``, ``batch``, ...).
"""
import argparse
import datetime
import glob
import json
import math
import os
import random
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cls_preprocess import classify_preprocess  # noqa: E402

CLASSES = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]
VERSION = "1.0.0"
IMGSZ = 192


def class_of(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    return CLASSES.index(stem.rsplit("_", 1)[0])


def list_split(data, split):
    files = sorted(glob.glob(os.path.join(data, split, "images", "*.jpg")))
    if not files:
        raise SystemExit(f"classify: no images in {data}/{split}/images")
    return files, np.array([class_of(f) for f in files])


def read_rgb(path):
    """What Ultralytics' predictor sees: cv2.imread (BGR, 3 channels) converted to RGB."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"classify: cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# ----------------------------------------------------------------------------- model
def build_model(nc=len(CLASSES)):
    import torch.nn as nn

    def cbr(ci, co, s=1):
        return nn.Sequential(nn.Conv2d(ci, co, 3, s, 1, bias=False), nn.BatchNorm2d(co), nn.SiLU())

    class Res(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.a = cbr(c, c)
            self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
            self.act = nn.SiLU()

        def forward(self, x):
            return self.act(x + self.b(self.a(x)))

    class Net(nn.Module):
        """Small ResNet: 5 stride-2 stages (stride 32), global average pool, linear head.
        ``probs`` appends the softmax (as Ultralytics' Classify head does in eval/export)."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                cbr(3, 16, 2), cbr(16, 24),            # S/2
                cbr(24, 32, 2), Res(32),               # S/4
                cbr(32, 64, 2), Res(64),               # S/8
                cbr(64, 112, 2), Res(112),             # S/16
                cbr(112, 192, 2), Res(192),            # S/32
            )
            self.drop = nn.Dropout(0.2)
            self.fc = nn.Linear(192, nc)
            self.probs = False

        def forward(self, x):
            x = self.features(x).mean((2, 3))
            x = self.fc(self.drop(x))
            return x.softmax(1) if self.probs else x

    return Net()


# ----------------------------------------------------------------------------- data
def augment(grey, rng, size):
    """Training view of a HxW uint8 grey image -> 3 x size x size float32 RGB in [0, 1]."""
    img = grey.astype(np.float32)
    h, w = img.shape
    k = int(rng.integers(0, 4))
    img = np.rot90(img, k)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    # slight scale / shift / rotation (reflect border), then the resize to the model size
    s = math.exp(rng.uniform(math.log(0.85), math.log(1.18)))
    ang = rng.uniform(-8, 8) if rng.random() < 0.3 else 0.0
    M = cv2.getRotationMatrix2D((w / 2, h / 2), ang, s)
    M[:, 2] += rng.uniform(-0.06, 0.06, 2) * (w, h)
    M[:, :] *= size / w  # one warp: augmentation + resize to the model input
    interp = cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_AREA
    img = cv2.warpAffine(np.ascontiguousarray(img), M, (size, size), flags=interp,
                         borderMode=cv2.BORDER_REFLECT_101)
    # brightness and contrast x0.6-1.35
    m = img.mean()
    img = (img - m) * rng.uniform(0.6, 1.35) + m * rng.uniform(0.6, 1.35)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.5:
        img = img + rng.standard_normal(img.shape).astype(np.float32) * rng.uniform(1, 9)
    img = np.clip(img, 0, 255) / 255.0
    rgb = np.repeat(img[None], 3, 0)
    if rng.random() < 0.3:  # a colour camera's slight tint
        rgb = rgb * rng.uniform(0.9, 1.1, (3, 1, 1))
    return np.clip(rgb, 0, 1).astype(np.float32)


def eval_inputs(files, size):
    return np.concatenate([classify_preprocess(read_rgb(f), size) for f in files], 0)


# ----------------------------------------------------------------------------- train
def train(a):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    tr_files, tr_y = list_split(a.data, "train")
    va_files, va_y = list_split(a.data, "val")
    tr_imgs = [cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in tr_files]
    va_x = torch.from_numpy(eval_inputs(va_files, a.imgsz))
    va_yt = torch.from_numpy(va_y)
    print(f"classify: train {len(tr_files)}, val {len(va_files)} images, imgsz {a.imgsz}", flush=True)

    torch.manual_seed(a.seed)
    model = build_model()
    ema = build_model()
    ema.load_state_dict(model.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05)
    steps_per_epoch = len(tr_files) // a.batch
    total = steps_per_epoch * a.epochs
    warm = steps_per_epoch * 2

    def lr_at(it):
        if it < warm:
            return a.lr * (it + 1) / warm
        return a.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (it - warm) / max(1, total - warm))))

    state = {"epoch": 0, "it": 0, "best": (-1.0, 0.0), "history": []}
    last = os.path.join(a.out, "last.pt")
    if a.resume and os.path.exists(last):
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"]); ema.load_state_dict(ck["ema"]); opt.load_state_dict(ck["opt"])
        state = ck["state"]
        print(f"classify: resumed at epoch {state['epoch']}", flush=True)

    def ema_update(it):
        d = min(0.998, (1 + it) / (10 + it))
        with torch.no_grad():
            for pe, pm in zip(ema.state_dict().values(), model.state_dict().values()):
                if pe.dtype.is_floating_point:
                    pe.mul_(d).add_(pm.detach(), alpha=1 - d)
                else:
                    pe.copy_(pm)

    def validate(net):
        net.eval()
        with torch.no_grad():
            logits = torch.cat([net(va_x[i:i + 60]) for i in range(0, len(va_x), 60)])
        acc = (logits.argmax(1) == va_yt).float().mean().item()
        loss = F.cross_entropy(logits, va_yt).item()
        return acc, loss

    while state["epoch"] < a.epochs:
        ep = state["epoch"]
        rng = np.random.default_rng([a.seed, ep])
        order = rng.permutation(len(tr_files))
        model.train()
        t0 = time.time()
        tl, tc, tn = 0.0, 0, 0
        for b in range(steps_per_epoch):
            idx = order[b * a.batch:(b + 1) * a.batch]
            x = torch.from_numpy(np.stack([augment(tr_imgs[i], rng, a.imgsz) for i in idx]))
            y = torch.from_numpy(tr_y[idx])
            for g in opt.param_groups:
                g["lr"] = lr_at(state["it"])
            out = model(x)
            loss = F.cross_entropy(out, y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ema_update(state["it"])
            state["it"] += 1
            tl += loss.item() * len(idx); tc += (out.argmax(1) == y).sum().item(); tn += len(idx)
        acc, vloss = validate(ema)
        state["epoch"] = ep + 1
        rec = {"epoch": ep + 1, "train_loss": tl / tn, "train_acc": tc / tn, "val_acc": acc, "val_loss": vloss,
               "lr": lr_at(state["it"]), "seconds": time.time() - t0}
        state["history"].append(rec)
        print(json.dumps(rec), flush=True)
        # best on the validation split: accuracy, then lower loss
        key = (acc, -vloss)
        if key > tuple(state["best"]):
            state["best"] = key
            torch.save({"model": ema.state_dict(), "epoch": ep + 1, "val_acc": acc, "val_loss": vloss,
                        "imgsz": a.imgsz}, os.path.join(a.out, "best.pt"))
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                    "state": state, "imgsz": a.imgsz}, last + ".tmp")
        os.replace(last + ".tmp", last)
    print(f"classify: done, best val acc {state['best'][0]:.4f}", flush=True)


# ----------------------------------------------------------------------------- export
def export(a):
    import onnx
    import onnxruntime as ort
    import torch

    ck = torch.load(a.ckpt, map_location="cpu", weights_only=False)
    size = ck.get("imgsz", IMGSZ)
    model = build_model()
    model.load_state_dict(ck["model"])
    model.eval()
    model.probs = True
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        ref = model(x).numpy()
    kw = dict(input_names=["images"], output_names=["output0"], opset_version=17, do_constant_folding=True)
    try:
        torch.onnx.export(model, (x,), a.out, dynamo=False, **kw)
    except TypeError:
        torch.onnx.export(model, (x,), a.out, **kw)
    m = onnx.load(a.out)
    params = sum(p.numel() for p in model.parameters())
    names = "{" + ", ".join(f"{i}: '{n}'" for i, n in enumerate(CLASSES)) + "}"
    meta = {
        # the keys and value formats of an Ultralytics 8.x export (str() of Python values)
        "description": ("gst-plugin-defect NEU-DET surface-defect image classifier (six classes), trained on "
                        f"the NEU-DET train split (file numbers n % 10 not 0 or 5); small ResNet, {params} params"),
        "author": "gst-plugin-defect",
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "version": VERSION,
        "license": "MIT OR Apache-2.0",
        "docs": "models/neu-classifier.md",
        "stride": "1",
        "task": "classify",
        "batch": "1",
        "imgsz": f"[{size}, {size}]",
        "names": names,
        "channels": "3",
        "preprocess": (f"Ultralytics classify_transforms({size}): RGB, shortest side resized to {size} "
                       f"(PIL bilinear), centre crop {size}x{size}, /255, no mean/std"),
        "output": "output0 [1, 6]: softmax probabilities",
        "train_epochs": str(ck.get("epoch", "")),
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "gst-plugin-defect training/classify.py"
    m.doc_string = meta["description"]
    onnx.checker.check_model(m)
    onnx.save(m, a.out)
    sess = ort.InferenceSession(a.out, providers=["CPUExecutionProvider"])
    out = sess.run(None, {"images": x.numpy()})[0]
    print(f"exported {a.out} ({os.path.getsize(a.out) / 1e6:.2f} MB), input {sess.get_inputs()[0].shape}, "
          f"output {sess.get_outputs()[0].name} {sess.get_outputs()[0].shape}, {params} params; "
          f"onnxruntime vs torch max abs diff {np.abs(out - ref).max():.2e}")
    assert np.allclose(out, ref, atol=1e-5)


# ----------------------------------------------------------------------------- eval
def metrics(y, pred, nc):
    cm = np.zeros((nc, nc), int)
    for t, p in zip(y, pred):
        cm[t, p] += 1
    per = []
    for c in range(nc):
        tp = cm[c, c]
        prec = tp / max(1, cm[:, c].sum())
        rec = tp / max(1, cm[c, :].sum())
        f1 = 2 * prec * rec / max(1e-12, prec + rec)
        per.append({"class": CLASSES[c], "support": int(cm[c].sum()), "precision": prec, "recall": rec, "f1": f1})
    return {"top1": float(np.trace(cm) / cm.sum()), "per_class": per, "confusion": cm.tolist()}


def evaluate(a):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    size = inp.shape[2]
    files, y = list_split(a.data, a.split)
    probs = []
    for f in files:
        p = sess.run(None, {inp.name: classify_preprocess(read_rgb(f), size)})[0][0]
        probs.append(p)
    probs = np.array(probs)
    pred = probs.argmax(1)
    r = metrics(y, pred, len(CLASSES))
    r.update({"model": a.model, "split": a.split, "images": len(files), "imgsz": size,
              "errors": [{"file": os.path.basename(files[i]), "pred": CLASSES[pred[i]],
                          "confidence": float(probs[i, pred[i]])} for i in np.nonzero(pred != y)[0]],
              "mean_confidence_correct": float(probs[pred == y].max(1).mean())})
    x = classify_preprocess(read_rgb(files[0]), size)
    for _ in range(10):
        sess.run(None, {inp.name: x})
    ts = []
    for _ in range(a.bench):
        t = time.perf_counter(); sess.run(None, {inp.name: x}); ts.append(time.perf_counter() - t)
    r["latency_ms"] = {"median": 1e3 * float(np.median(ts)), "p90": 1e3 * float(np.percentile(ts, 90)),
                       "threads": a.threads, "runs": a.bench}
    print(f"{a.split}: top-1 {r['top1']:.4f} ({int(round(r['top1'] * len(files)))}/{len(files)}), "
          f"latency median {r['latency_ms']['median']:.2f} ms ({a.threads} thread(s))")
    print("| class | support | precision | recall | F1 |\n|---|---|---|---|---|")
    for c in r["per_class"]:
        print(f"| {c['class']} | {c['support']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} |")
    print("confusion (rows truth, columns predicted):")
    for c, row in zip(CLASSES, r["confusion"]):
        print(f"  {c:16s} " + " ".join(f"{v:3d}" for v in row))
    for e in r["errors"]:
        print(f"  error: {e}")
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", default="training/data/neu")
    t.add_argument("--out", default="training/runs/cls")
    t.add_argument("--imgsz", type=int, default=IMGSZ)
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--resume", action="store_true")
    e = sub.add_parser("export")
    e.add_argument("--ckpt", default="training/runs/cls/best.pt")
    e.add_argument("--out", default="models/neu-classifier.onnx")
    v = sub.add_parser("eval")
    v.add_argument("--model", default="models/neu-classifier.onnx")
    v.add_argument("--data", default="training/data/neu")
    v.add_argument("--split", default="test", choices=["train", "val", "test"])
    v.add_argument("--threads", type=int, default=1)
    v.add_argument("--bench", type=int, default=200)
    v.add_argument("--json")
    a = ap.parse_args()
    random.seed(0)
    {"train": train, "export": export, "eval": evaluate}[a.cmd](a)


if __name__ == "__main__":
    main()
