"""Compact anchor-free YOLOv8-style detector ("SDNet") for surface defects.

Backbone: plain strided 3x3 convs + C2f-lite blocks (CSP split, residual bottlenecks),
SPPF at stride 32; a top-down FPN gives stride 8 / 16 / 32 features; each level has a
decoupled head: box branch -> 4 ltrb distances (softplus, in stride units), class
branch -> 6 logits.  No objectness, no DFL.

``forward`` returns the raw per-level tensors (training); ``Export`` wraps the model and
decodes to the Ultralytics YOLOv8 output convention [1, 4 + nc, N]: cx, cy, w, h in
model-input pixels followed by sigmoid class scores.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NC = 6
STRIDES = (8, 16, 32)


class Conv(nn.Module):
    def __init__(self, c1, c2, k=3, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cv1 = Conv(c, c, 3)
        self.cv2 = Conv(c, c, 3)

    def forward(self, x):
        return x + self.cv2(self.cv1(x))


class C2f(nn.Module):
    def __init__(self, c1, c2, n=1):
        super().__init__()
        self.h = c2 // 2
        self.cv1 = Conv(c1, 2 * self.h, 1)
        self.m = nn.ModuleList(Bottleneck(self.h) for _ in range(n))
        self.cv2 = Conv((2 + n) * self.h, c2, 1)

    def forward(self, x):
        y = list(self.cv1(x).split((self.h, self.h), 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1, c2):
        super().__init__()
        c = c1 // 2
        self.cv1 = Conv(c1, c, 1)
        self.cv2 = Conv(4 * c, c2, 1)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat([x, y1, y2, self.pool(y2)], 1))


class Head(nn.Module):
    def __init__(self, c, hb, hc, nc, stride):
        super().__init__()
        self.box = nn.Sequential(Conv(c, hb, 3), Conv(hb, hb, 3), nn.Conv2d(hb, 4, 1))
        self.cls = nn.Sequential(Conv(c, hc, 3), Conv(hc, hc, 3), nn.Conv2d(hc, nc, 1))
        # init: boxes ~2 strides each side, class prior ~0.01 (as YOLOv8/RetinaNet)
        nn.init.constant_(self.box[-1].bias, math.log(math.e ** 2.0 - 1))
        nn.init.constant_(self.cls[-1].bias, math.log(0.01 / 0.99))
        self.stride = stride

    def forward(self, x):
        return self.box(x), self.cls(x)


class SDNet(nn.Module):
    def __init__(self, nc=NC, w=(16, 32, 64, 96, 128)):
        super().__init__()
        c0, c1, c2, c3, c4 = w
        self.nc = nc
        self.stem = Conv(3, c0, 3, 2)                                      # /2
        self.s2 = nn.Sequential(Conv(c0, c1, 3, 2), C2f(c1, c1, 1))         # /4
        self.s3 = nn.Sequential(Conv(c1, c2, 3, 2), C2f(c2, c2, 2))         # /8
        self.s4 = nn.Sequential(Conv(c2, c3, 3, 2), C2f(c3, c3, 2))         # /16
        self.s5 = nn.Sequential(Conv(c3, c4, 3, 2), C2f(c4, c4, 1), SPPF(c4, c4))  # /32
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.f4 = C2f(c4 + c3, c3, 1)
        self.f3 = C2f(c3 + c2, c2, 1)
        self.heads = nn.ModuleList([
            Head(c2, 48, 48, nc, 8),
            Head(c3, 64, 64, nc, 16),
            Head(c4, 64, 64, nc, 32),
        ])

    def forward(self, x):
        x = self.stem(x)
        x = self.s2(x)
        p3 = self.s3(x)
        p4 = self.s4(p3)
        p5 = self.s5(p4)
        n4 = self.f4(torch.cat([self.up(p5), p4], 1))
        n3 = self.f3(torch.cat([self.up(n4), p3], 1))
        return [h(f) for h, f in zip(self.heads, (n3, n4, p5))]


def make_anchors(feats_hw, strides, device=None, dtype=torch.float32):
    """Anchor centres (N, 2) in input pixels and per-anchor strides (N, 1)."""
    pts, st = [], []
    for (h, w), s in zip(feats_hw, strides):
        sy, sx = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                                torch.arange(w, device=device, dtype=dtype), indexing="ij")
        pts.append(torch.stack([(sx + 0.5) * s, (sy + 0.5) * s], -1).reshape(-1, 2))
        st.append(torch.full((h * w, 1), float(s), device=device, dtype=dtype))
    return torch.cat(pts), torch.cat(st)


def flatten_outputs(outs):
    """Per-level (box (B,4,h,w), cls (B,nc,h,w)) -> ltrb raw (B,N,4), logits (B,N,nc), hw list."""
    box = torch.cat([b.flatten(2) for b, _ in outs], 2).transpose(1, 2)
    cls = torch.cat([c.flatten(2) for _, c in outs], 2).transpose(1, 2)
    return box, cls, [tuple(b.shape[2:]) for b, _ in outs]


def decode_xyxy(box_raw, anchors, strides):
    d = F.softplus(box_raw) * strides  # (B,N,4) ltrb in pixels
    return torch.cat([anchors - d[..., :2], anchors + d[..., 2:]], -1)


class Export(nn.Module):
    """Wraps SDNet for ONNX: output0 [1, 4 + nc, N] = cx, cy, w, h, sigmoid scores."""

    def __init__(self, model, imgsz):
        super().__init__()
        self.model = model
        h, w = imgsz
        hw = [(h // s, w // s) for s in STRIDES]
        a, s = make_anchors(hw, STRIDES)
        self.register_buffer("anchors", a)
        self.register_buffer("strides", s)

    def forward(self, x):
        box, cls, _ = flatten_outputs(self.model(x))
        d = F.softplus(box) * self.strides
        lt, rb = d[..., :2], d[..., 2:]
        c = self.anchors + (rb - lt) / 2
        wh = lt + rb
        return torch.cat([c, wh, cls.sigmoid()], -1).transpose(1, 2)


def count_flops(model, h, w):
    """Multiply-accumulates x2 of conv layers for a 1x3xhxw input."""
    flops = [0]

    def hook(m, i, o):
        k = m.kernel_size[0] * m.kernel_size[1]
        flops[0] += 2 * o.numel() * (m.in_channels // m.groups) * k

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, h, w))
    for x in hs:
        x.remove()
    return flops[0]


if __name__ == "__main__":
    m = SDNet()
    print("params", sum(p.numel() for p in m.parameters()))
    print("GFLOPs @384x640", count_flops(m, 384, 640) / 1e9)


# ----------------------------------------------------------------------------------------
# Detector: two-level (stride 8 / 16) variant used by train.py.  (Restored: an earlier
# model.py defining it was overwritten by a concurrent edit; the layout below matches the
# state-dict keys/shapes of that version: stem, s2..s5, n4, n3, h3, h4.)
class _Head2(nn.Module):
    def __init__(self, c, h, nc):
        super().__init__()
        self.box = nn.Sequential(Conv(c, h, 3), Conv(h, h, 3), nn.Conv2d(h, 4, 1))
        self.cls = nn.Sequential(Conv(c, h, 3), Conv(h, h, 1), nn.Conv2d(h, nc, 1))
        nn.init.constant_(self.box[-1].bias, 1.0)
        nn.init.constant_(self.cls[-1].bias, math.log(0.01 / 0.99))

    def forward(self, x):
        return self.box(x), self.cls(x)


class Detector(nn.Module):
    """Returns (boxes xyxy px (B,N,4), logits (B,N,nc), points (N,2), strides (N,)).
    With ``self.export = True`` returns the YOLOv8 tensor [B, 4 + nc, N]
    (cx, cy, w, h in input pixels, sigmoid scores)."""

    strides = (8, 16)

    def __init__(self, nc=NC, w=(16, 32, 64, 96, 128)):
        super().__init__()
        c0, c1, c2, c3, c4 = w
        self.nc = nc
        self.export = False
        self.stem = Conv(3, c0, 3, 2)
        self.s2 = nn.Sequential(Conv(c0, c1, 3, 2), C2f(c1, c1, 1))
        self.s3 = nn.Sequential(Conv(c1, c2, 3, 2), C2f(c2, c2, 1))
        self.s4 = nn.Sequential(Conv(c2, c3, 3, 2), C2f(c3, c3, 1))
        self.s5 = nn.Sequential(Conv(c3, c4, 3, 2), C2f(c4, c4, 1), SPPF(c4, c4))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.n4 = C2f(c4 + c3, c3, 1)
        self.n3 = C2f(c3 + c2, c2, 1)
        self.h3 = _Head2(c2, 48, nc)
        self.h4 = _Head2(c3, 48, nc)

    def forward(self, x):
        x = self.s2(self.stem(x))
        p3 = self.s3(x)
        p4 = self.s4(p3)
        p5 = self.s5(p4)
        n4 = self.n4(torch.cat([self.up(p5), p4], 1))
        n3 = self.n3(torch.cat([self.up(n4), p3], 1))
        return decode([self.h3(n3), self.h4(n4)], self.strides, self.export)


def decode(outs, strides, export=False):
    """Per-level head outputs -> (boxes xyxy px (B,N,4), logits (B,N,nc), points (N,2),
    strides (N,)) for training, or with ``export`` the YOLOv8 tensor [B, 4 + nc, N]."""
    box, cls, hw = flatten_outputs(outs)
    pts, st = make_anchors(hw, strides, box.device, box.dtype)
    d = F.softplus(box) * st
    if export:
        c = pts + (d[..., 2:] - d[..., :2]) / 2
        return torch.cat([c, d[..., :2] + d[..., 2:], cls.sigmoid()], -1).transpose(1, 2)
    boxes = torch.cat([pts - d[..., :2], pts + d[..., 2:]], -1)
    return boxes, cls, pts, st[:, 0]
