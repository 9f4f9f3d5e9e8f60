#!/usr/bin/env python3
"""Perturbed copies of a NEU-DET split (what a real line changes), for robustness figures.

    python training/neu_perturb.py --split training/data/neu/test --coco training/data/neu/test.coco.json \\
        --out out/neu-perturbed [--only NAME ...]

Writes OUT/NAME/images/*.png and OUT/NAME.coco.json for each perturbation NAME:

    brightness-0.6, brightness-1.35   every pixel x0.6 / x1.35 (clipped)
    contrast-0.6, contrast-1.35       (pixel - mean) x0.6 / x1.35 + mean (clipped)
    noise                             Gaussian sensor noise, sigma 8 grey levels
    blur                              Gaussian blur, sigma 1.2 px
    rot90, rot270                     turned by 90 degrees counter-clockwise / clockwise
    flip-h, flip-v                    mirrored left-right / top-bottom
    scale-0.5                         the image at half size (100x100) in the middle of a
                                      200x200 frame of its own mean grey: through the plugin's
                                      letterbox every defect is half as large
    scale-2                           the image at twice its size (400x400), seen through two
                                      333x200 windows (top and bottom half; the model input's
                                      5:3 aspect, so the letterbox keeps 200 px -> 384 px): every
                                      defect twice as large; boxes clipped to the window, kept
                                      when at least a quarter of them is in view
    frame-1280x720                    the 200x200 image as an inspection window anywhere inside a
                                      1280x720 camera frame of clean synthetic steel (seeded)

Images are written as PNG (no second JPEG generation); ids and file stems are kept (scale-2
adds `_top` / `_bottom`).  Deterministic for a given --seed.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PERTURBATIONS = ["brightness-0.6", "brightness-1.35", "contrast-0.6", "contrast-1.35", "noise", "blur",
                 "rot90", "rot270", "flip-h", "flip-v", "scale-0.5", "scale-2", "frame-1280x720"]


def rot90_boxes(boxes, size):
    """np.rot90 (counter-clockwise) of boxes [x1, y1, x2, y2, class] in a square image of side `size`."""
    return [[y1, size - x2, y2, size - x1, c] for x1, y1, x2, y2, c in boxes]


def perturb(name, img, boxes, rng, background=None):
    """[(suffix, image, boxes)] for one grey uint8 image and its boxes [x1, y1, x2, y2, class] (px)."""
    h, w = img.shape
    f = img.astype(np.float32)
    if name.startswith("brightness-"):
        return [("", np.clip(f * float(name.split("-")[1]), 0, 255).astype(np.uint8), boxes)]
    if name.startswith("contrast-"):
        m = f.mean()
        return [("", np.clip((f - m) * float(name.split("-")[1]) + m, 0, 255).astype(np.uint8), boxes)]
    if name == "noise":
        return [("", np.clip(f + rng.normal(0, 8.0, f.shape), 0, 255).astype(np.uint8), boxes)]
    if name == "blur":
        return [("", cv2.GaussianBlur(img, (0, 0), 1.2), boxes)]
    if name in ("rot90", "rot270"):
        assert h == w
        k = 1 if name == "rot90" else 3
        b = boxes
        for _ in range(k):
            b = rot90_boxes(b, w)
        return [("", np.ascontiguousarray(np.rot90(img, k)), b)]
    if name == "flip-h":
        return [("", img[:, ::-1].copy(), [[w - x2, y1, w - x1, y2, c] for x1, y1, x2, y2, c in boxes])]
    if name == "flip-v":
        return [("", img[::-1].copy(), [[x1, h - y2, x2, h - y1, c] for x1, y1, x2, y2, c in boxes])]
    if name == "scale-0.5":
        small = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        out = np.full_like(img, int(round(f.mean())))
        ox, oy = w // 4, h // 4
        out[oy:oy + h // 2, ox:ox + w // 2] = small
        return [("", out, [[x1 / 2 + ox, y1 / 2 + oy, x2 / 2 + ox, y2 / 2 + oy, c] for x1, y1, x2, y2, c in boxes])]
    if name == "scale-2":
        big = cv2.resize(img, (w * 2, h * 2), interpolation=cv2.INTER_LINEAR)
        ww, wh = int(round(h * 5 / 3)), h  # 333 x 200 window
        x0 = (2 * w - ww) // 2
        out = []
        for suffix, y0 in (("_top", 0), ("_bottom", h)):
            win = big[y0:y0 + wh, x0:x0 + ww].copy()
            kept = []
            for x1, y1, x2, y2, c in boxes:
                X1, Y1, X2, Y2 = 2 * x1 - x0, 2 * y1 - y0, 2 * x2 - x0, 2 * y2 - y0
                c1, d1, c2, d2 = max(X1, 0), max(Y1, 0), min(X2, ww), min(Y2, wh)
                if c2 - c1 < 2 or d2 - d1 < 2:
                    continue
                if (c2 - c1) * (d2 - d1) >= 0.25 * (X2 - X1) * (Y2 - Y1):
                    kept.append([c1, d1, c2, d2, c])
            out.append((suffix, win, kept))
        return out
    if name == "frame-1280x720":
        bg = background.astype(np.float32)
        bg = np.clip(bg * (f.mean() / max(bg.mean(), 1.0)), 0, 255)
        x0, y0 = int(rng.integers(0, 1280 - w + 1)), int(rng.integers(0, 720 - h + 1))
        bg[y0:y0 + h, x0:x0 + w] = f
        return [("", bg.astype(np.uint8), [[x1 + x0, y1 + y0, x2 + x0, y2 + y0, c] for x1, y1, x2, y2, c in boxes])]
    raise ValueError(f"unknown perturbation {name}")


def steel_frame(rng, h=720, w=1280):
    """A defect-free synthetic rolled-steel camera frame (grey uint8)."""
    from generate import apply_sensor, render_surface
    g = render_surface(rng, h, w, "rolled", np.ones(3, np.float32), int(rng.integers(0, 2)))
    g = apply_sensor(rng, g, True)
    return np.clip(g[..., 0] * 255, 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", required=True, help="a split folder written by neu_det.py (images/)")
    ap.add_argument("--coco", required=True, help="the split's COCO file written by neu_det.py")
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*", choices=PERTURBATIONS)
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    coco = json.load(open(a.coco))
    by_image = {}
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        by_image.setdefault(ann["image_id"], []).append([x, y, x + w, y + h, ann["category_id"]])
    for name in a.only or PERTURBATIONS:
        rng = np.random.default_rng([a.seed, PERTURBATIONS.index(name)])
        out_dir = os.path.join(a.out, name, "images")
        os.makedirs(out_dir, exist_ok=True)
        images, anns = [], []
        for im in coco["images"]:
            img = cv2.imread(os.path.join(a.split, "images", im["file_name"]), cv2.IMREAD_GRAYSCALE)
            if img is None:
                raise SystemExit(f"{a.split}/images/{im['file_name']}: cannot read")
            src = by_image.get(im["id"], [])
            background = steel_frame(rng) if name == "frame-1280x720" else None
            variants = perturb(name, img, src, rng, background)
            for k, (suffix, out, boxes) in enumerate(variants):
                stem = os.path.splitext(im["file_name"])[0] + suffix
                image_id = im["id"] * len(variants) + k
                cv2.imwrite(os.path.join(out_dir, stem + ".png"), out)
                images.append({"id": image_id, "file_name": stem + ".png",
                               "width": int(out.shape[1]), "height": int(out.shape[0])})
                for x1, y1, x2, y2, c in boxes:
                    anns.append({"id": len(anns), "image_id": image_id, "category_id": int(c),
                                 "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                                 "area": float((x2 - x1) * (y2 - y1)), "iscrowd": 0})
        with open(os.path.join(a.out, f"{name}.coco.json"), "w") as f:
            json.dump({"images": images, "annotations": anns, "categories": coco["categories"]}, f)
        print(f"{name}: {len(images)} images, {len(anns)} boxes", flush=True)


if __name__ == "__main__":
    main()
