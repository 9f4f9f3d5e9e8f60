#!/usr/bin/env python3
"""NEU-DET-only steel-defect detector (``models/neu-detector.onnx``), on the CPU, resumable.

    python training/neu_detector.py train  --neu training/data/neu --out RUN --minutes 90 \
        [--init-onnx models/neu-classifier.onnx] [--resume]
    python training/neu_detector.py export --ckpt RUN/best.pt --out models/neu-detector.onnx

Backbone: the ``features`` of training/classify.py's small ResNet (stages at strides 8 / 16 / 32
give 64 / 112 / 192 channels), initialised from ``models/neu-classifier.onnx`` (trained on the
NEU-DET train split only; its batch norms are folded into the convolutions: the weights are
loaded as training/init_from_onnx.py does, then every batch norm is recalibrated on train images
so that it reproduces the folded convolution in training and in eval mode).  Neck: SPPF at
stride 32, a top-down FPN and a bottom-up PAN path (C2f blocks of training/model.py).  Heads: the
decoupled heads of model.Detector at strides 8 / 16 / 32; same output layout (Ultralytics YOLOv8:
``output0`` [1, 4 + 6, N], cx, cy, w, h in input pixels, sigmoid class scores, no objectness), same
assignment and loss (training/train.py compute_loss), with one size range per level.

Input: IMGSZ x IMGSZ (default 256): the plugin letterboxes a 200x200 NEU image to fill it.
Data: the NEU-DET train split (training/neu_det.py) only, decoded once into memory; every sample is
train.neu_sample (single image, crop of a larger one or a mosaic of smaller ones on grey or a clean
synthetic surface, each image turned, brightness and contrast; then flips, transpose, grey/colour,
blur, noise, JPEG), at a scale drawn around the one the plugin shows.  The checkpoint is chosen on
the validation split's mAP@0.5 (EMA weights, letterboxed as the plugin does); the test split is
never read here.
"""
import argparse
import copy
import datetime
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classify import build_model  # noqa: E402
from model import NC, SPPF, C2f, Conv, _Head2, decode  # noqa: E402
from train import BF16, EMA, clean_surfaces, compute_loss, load_neu, load_split, neu_sample, validate  # noqa: E402

STRIDES = (8, 16, 32)
VERSION = "1.0.0"


class NeuDetector(nn.Module):
    """Classifier backbone + SPPF + FPN/PAN + three model.Detector heads.  Returns what
    model.Detector returns (training tuple, or with ``export = True`` [B, 4 + nc, N])."""

    strides = STRIDES

    def __init__(self, nc=NC, freeze=0):
        super().__init__()
        self.export = False
        self.freeze = freeze  # the first `freeze` modules of features are not trained (eval mode)
        self.features = build_model(nc).features  # /2 /2 /4 /4 /8 /8 /16 /16 /32 /32
        self.sppf = SPPF(192, 192)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.n4 = C2f(192 + 112, 112, 1)
        self.n3 = C2f(112 + 64, 64, 1)
        self.d3 = Conv(64, 64, 3, 2)
        self.o4 = C2f(64 + 112, 112, 1)
        self.d4 = Conv(112, 112, 3, 2)
        self.o5 = C2f(112 + 192, 192, 1)
        self.h3 = _Head2(64, 48, nc)
        self.h4 = _Head2(112, 64, nc)
        self.h5 = _Head2(192, 64, nc)

    def forward(self, x):
        f = self.features
        if self.freeze:
            with torch.no_grad():
                x = f[:self.freeze].eval()(x)
        p3 = f[self.freeze:6](x)
        p4 = f[6:8](p3)
        p5 = self.sppf(f[8:10](p4))
        n4 = self.n4(torch.cat([self.up(p5), p4], 1))
        n3 = self.n3(torch.cat([self.up(n4), p3], 1))
        o4 = self.o4(torch.cat([self.d3(n3), n4], 1))
        o5 = self.o5(torch.cat([self.d4(o4), p5], 1))
        return decode([self.h3(n3), self.h4(o4), self.h5(o5)], self.strides, self.export)


def level_range(imgsz):
    """Object sizes (px of the input) each level learns; they overlap, as train.LEVEL_RANGE."""
    k = imgsz / 256.0
    return {8: (0, 96 * k), 16: (48 * k, 192 * k), 32: (128 * k, 1e9)}


def init_backbone(model, onnx_path, ims, imgsz):
    """Loads the classifier ONNX (folded batch norm) into ``model.features``, checks the whole
    classifier against onnxruntime, then recalibrates each batch norm on the images ``ims`` (grey
    uint8): gamma = std and beta = mean + folded bias of the convolution's output, so that the
    folded function is kept in eval mode and (batch statistics) in training mode."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from init_from_onnx import bn_pairs, conv_order, load_convs
    net = build_model()
    load_convs(onnx_path, conv_order(net, imgsz, imgsz), bn_pairs(net))
    g = onnx.load(onnx_path).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    gemm = [n for n in g.node if n.op_type in ("Gemm", "MatMul")][0]
    wfc = inits[gemm.input[1]]
    with torch.no_grad():
        net.fc.weight.copy_(torch.from_numpy(wfc if wfc.shape == (NC, 192) else wfc.T))
        net.fc.bias.copy_(torch.from_numpy(inits[gemm.input[2]]))
    net.eval()
    net.probs = True
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    isz = int(sess.get_inputs()[0].shape[2])
    x = torch.rand(2, 3, isz, isz)
    with torch.no_grad():
        ref = net(x).numpy()
    out = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: x[i:i + 1].numpy()})[0] for i in range(2)])
    diff = float(np.abs(out - ref).max())
    print(f"init: {onnx_path} loaded into the backbone; onnxruntime vs torch {diff:.2e}", flush=True)
    assert diff < 1e-3
    # recalibration: statistics of every convolution's output on real train images
    bn_of = bn_pairs(net.features)
    stats = {}

    def hook(mod, i, o):
        stats[mod] = (o.mean((0, 2, 3)), o.var((0, 2, 3)))

    hooks = [c.register_forward_hook(hook) for c in bn_of]
    rng = np.random.default_rng(0)
    sel = rng.choice(len(ims), min(64, len(ims)), replace=False)
    import cv2
    xb = np.stack([cv2.resize(ims[i], (imgsz, imgsz), interpolation=cv2.INTER_LINEAR) for i in sel])
    xb = torch.from_numpy(xb).float().div_(255.0)[:, None].expand(-1, 3, -1, -1).contiguous()
    with torch.no_grad():
        net.features(xb)
    for hk in hooks:
        hk.remove()
    with torch.no_grad():
        for c, bn in bn_of.items():
            m, v = stats[c]
            bn.weight.copy_((v + bn.eps).sqrt())
            bn.bias.add_(m)
            bn.running_mean.copy_(m)
            bn.running_var.copy_(v)
        ref = net.features(xb)
    model.features.load_state_dict(net.features.state_dict())
    with torch.no_grad():
        tr = copy.deepcopy(model.features).train()(xb)
    print(f"init: batch norms recalibrated on {len(sel)} train images; training-mode output vs folded: "
          f"max abs diff {float((tr - ref).abs().max()):.2e} (output scale {float(ref.abs().mean()):.2e})",
          flush=True)


def neu_scale_for(imgsz):
    """Scale of a NEU image in a training sample: mostly around how the plugin shows it
    (imgsz / 200), some smaller (mosaics of 2x2 and more) and some larger (crops)."""
    s0 = imgsz / 200.0

    def scale(rng):
        r = rng.random()
        if r < 0.6:
            return s0 * math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
        if r < 0.85:
            return s0 * math.exp(rng.uniform(math.log(0.3), math.log(0.8)))
        return s0 * math.exp(rng.uniform(math.log(1.25), math.log(2.2)))
    return scale


def train(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    S = a.imgsz
    t0 = time.time()
    ims, labs = load_neu(os.path.join(a.neu, "train"))
    vims, vlabs = load_split(os.path.join(a.neu, "val"), None, (S, S))  # as the plugin letterboxes
    backgrounds = clean_surfaces(48, size=S)
    scale = neu_scale_for(S)
    lr_range = level_range(S)
    print(f"NEU-DET: {len(ims)} train, {len(vims)} val images at {S}x{S} ({time.time() - t0:.0f}s)", flush=True)
    ck = os.path.join(a.out, "last.pt")
    resume = a.resume and os.path.exists(ck)
    st = torch.load(ck, map_location="cpu") if resume else None
    model = NeuDetector(freeze=st["freeze"] if resume else a.freeze if a.init_onnx or a.init_pt else 0)
    for p in model.features[:model.freeze].parameters():
        p.requires_grad_(False)
    if a.init_pt and not resume:
        # Another run's weights (its EMA), e.g. trained at another input size: the network is
        # fully convolutional, so every tensor keeps its shape.
        model.load_state_dict(torch.load(a.init_pt, map_location="cpu")["model"])
        print(f"weights from {a.init_pt}", flush=True)
    elif a.init_onnx and not resume:
        init_backbone(model, a.init_onnx, ims, S)
    print(f"params {sum(p.numel() for p in model.parameters())}", flush=True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=5e-4)
    ema = EMA(model, a.ema)
    budget = a.minutes * 60
    start = time.time()
    it, best = 0, -1.0
    if resume:
        model.load_state_dict(st["train_model"])
        ema.m.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        it, ema.n, best = st["it"], st["ema_n"], st["best"]
        start -= st["elapsed"]
        rng = np.random.default_rng([a.seed, it])
        print(f"resumed at iteration {it}, {st['elapsed'] / 60:.1f} min, best val mAP50 {best:.4f}", flush=True)
    log = open(os.path.join(a.out, "log.txt"), "a")

    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    def save(path):
        torch.save({"model": ema.m.state_dict(), "train_model": model.state_dict(), "opt": opt.state_dict(),
                    "it": it, "ema_n": ema.n, "best": best, "elapsed": time.time() - start,
                    "imgsz": S, "freeze": model.freeze, "args": vars(a)}, path + ".tmp")
        os.replace(path + ".tmp", path)

    def do_val():
        nonlocal best
        t = time.time()
        rows, summ = validate(ema.m, vims, vlabs)
        say(f"val it {it} t {(time.time() - start) / 60:.1f}m: mAP50 {summ['map50']:.4f} "
            f"P {summ['precision']:.3f} R {summ['recall']:.3f} "
            + " ".join(f"[{r['cls']}] AP{r['ap50']:.3f}" for r in rows) + f" ({time.time() - t:.0f}s)")
        if summ["map50"] > best:
            best = summ["map50"]
            torch.save({"model": ema.m.state_dict(), "it": it, "val": summ, "imgsz": S, "args": vars(a)},
                       os.path.join(a.out, "best.pt"))
            say(f"best: it {it} val mAP50 {best:.4f}")

    say(f"train: {a.minutes} min budget, batch {a.batch}, lr {a.lr}, imgsz {S}, init {a.init_pt or a.init_onnx or 'random'}, "
        f"frozen backbone modules {model.freeze}, threads {a.threads}, bf16 {BF16}")
    last_val = last_ckpt = time.time()
    warm = 50
    while True:
        el = time.time() - start
        frac = el / budget
        if frac >= 1.0 or (a.max_iters and it >= a.max_iters):
            break
        lr = a.lr * min(1.0, (it + 1) / warm) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        for gp in opt.param_groups:
            gp["lr"] = lr
        xs, ts, igs = [], [], []
        for _ in range(a.batch):
            im, k, g = neu_sample(rng, ims, labs, backgrounds, S, scale)
            xs.append(im)
            ts.append(k)
            igs.append(g)
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float().div_(255.0)
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=BF16):
            out = model(x)
        out = tuple(o.float() for o in out)
        loss, parts = compute_loss(out, ts, igs, lr_range)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        ema.update(model)
        it += 1
        if it % a.log_every == 0:
            say(f"it {it} t {el / 60:.1f}m lr {lr:.2e} loss {float(loss):.3f} cls {parts[0]:.3f} "
                f"giou {parts[1]:.3f} l1 {parts[2]:.3f} {(time.time() - start) / it:.2f}s/it")
        if time.time() - last_ckpt > a.ckpt_every * 60:
            save(ck)
            last_ckpt = time.time()
        if time.time() - last_val > a.val_every * 60:
            do_val()
            last_val = time.time()
    save(ck)
    do_val()
    say(f"done: {it} iterations in {(time.time() - start) / 60:.1f} min, best val mAP50 {best:.4f}")


def export(a):
    from export import export_onnx
    st = torch.load(a.ckpt, map_location="cpu")
    S = st["imgsz"]
    model = NeuDetector()
    model.load_state_dict(st["model"])
    init = st.get("args", {}).get("init_onnx") or "none (random)"
    meta = {
        "description": ("gst-plugin-defect NEU-DET steel-defect detector (six classes), trained on the "
                        "NEU-DET train split only (real hot-rolled steel, file numbers n % 10 not 0 or 5; "
                        "checkpoint chosen on n % 10 == 5); backbone initialised from "
                        f"{os.path.basename(init)}; anchor-free YOLOv8-style head, strides 8/16/32, "
                        "{params} params, {gflops:.2f} GFLOPs"),
        "version": VERSION,
        "stride": "32",
        "strides": "[8, 16, 32]",
        "train_iterations": str(st.get("it", "")),
        "val_map50": f"{st['val']['map50']:.4f}" if "val" in st else "",
        "trained": datetime.date.today().isoformat(),
    }
    export_onnx(model, a.out, S, S, meta, a.opset, sum((S // s) ** 2 for s in STRIDES))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--neu", default="training/data/neu", help="NEU-DET splits written by training/neu_det.py")
    t.add_argument("--out", default="training/runs/neu-detector")
    t.add_argument("--init-onnx", default="models/neu-classifier.onnx",
                   help="classifier whose backbone starts the detector ('' for a random start)")
    t.add_argument("--init-pt", default="",
                   help="start from another run's checkpoint (its EMA weights), e.g. one trained at another "
                        "--imgsz; overrides --init-onnx (--freeze stages stay frozen, as after --init-onnx)")
    t.add_argument("--imgsz", type=int, default=256)
    t.add_argument("--minutes", type=float, default=90.0)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--freeze", type=int, default=4,
                   help="with --init-onnx: the first N modules of the backbone stay as initialised "
                        "(4: the stride-2 and stride-4 stages)")
    t.add_argument("--log-every", type=int, default=20, help="iterations between loss lines")
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--ema", type=float, default=0.995)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-every", type=float, default=10.0, help="minutes between validations")
    t.add_argument("--ckpt-every", type=float, default=3.0, help="minutes between OUT/last.pt writes")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    t.add_argument("--max-iters", type=int, default=0,
                   help="stop (and validate) after this many iterations, the schedule still that of --minutes "
                        "(short comparisons, e.g. --init-onnx '' against a run's early validation)")
    e = sub.add_parser("export")
    e.add_argument("--ckpt", default="training/runs/neu-detector/best.pt")
    e.add_argument("--out", default="models/neu-detector.onnx")
    e.add_argument("--opset", type=int, default=17)
    a = ap.parse_args()
    train(a) if a.cmd == "train" else export(a)


if __name__ == "__main__":
    main()
