#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Test-split figures of the magnetic-tile segmentation model (training/mtd_seg.py), computed with
onnxruntime and the numpy reference post-processing (scripts/reference_segment_input.py).

    python training/mtd_seg_eval.py --mtd $DATA --model magnetic-tile-seg.onnx [--split test] \
        [--json figures.json]

Truth: the instances of training/mtd_seg.py (``instances``: a tile mask's parts closer than JOIN
px joined, specks under MIN_PIXELS px dropped), at the tile's own resolution; tiles whose mask
is empty (four ``uneven`` tiles) are left out.  Figures:

- mask AP@0.5 and box AP@0.5 per class, and their mean (pycocotools COCOeval, ``segm`` and
  ``bbox``, area range all, 100 detections), and the COCO AP@[.5:.95] of both; detections at
  conf 0.001, NMS IoU 0.7 (the usual validation settings);
- false detections on the split's defect-free tiles at the operating point (conf 0.25, NMS IoU
  0.45, ``defectdetect``'s defaults): detections in all, tiles with at least one;
- defect length and area against the truth: each true instance matched to the predicted mask of
  highest IoU >= 0.5 at the operating point (any class); area = mask pixels; length = longest side
  of the minimum-area rectangle around the mask's pixels (cv2.minAreaRect); median absolute error
  in px (and relative to the truth), and the number of instances matched.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))
from mtd import CLASSES, SPLITS_BY, list_tiles, read_gray  # noqa: E402

NAMES = [c.lower() for c in CLASSES]
JOIN = 7  # px (tile resolution): mask parts closer than this are one instance
MIN_PIXELS = 8  # px: smaller components are label specks


def instances(mask):
    """Binary mask (H, W) -> list of instance masks (bool), parts closer than JOIN px joined."""
    m = (mask > 0).astype(np.uint8)
    if not m.any():
        return []
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (JOIN, JOIN))
    n, lab = cv2.connectedComponents(cv2.dilate(m, k))
    out = []
    for i in range(1, n):
        inst = (lab == i) & (m > 0)
        if inst.sum() >= MIN_PIXELS:
            out.append(inst)
    return out


def length_px(mask):
    """Longest side of the minimum-area rectangle around the mask's pixels."""
    pts = cv2.findNonZero(mask.astype(np.uint8))
    if pts is None:
        return 0.0
    (_, _), (w, h), _ = cv2.minAreaRect(pts)
    return float(max(w, h))


def mask_iou(a, b):
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 0.0


COLOURS = [(255, 64, 64), (64, 160, 255), (255, 200, 0), (200, 64, 255), (64, 220, 64)]


def draw(rgb, inst, op, info):
    """Predicted masks filled (half transparent, class colour), boxes and labels; true outlines white."""
    out = rgb.astype(np.float32)
    for m, c in zip(op["masks"], op["classes"]):
        out[m] = 0.5 * out[m] + 0.5 * np.array(COLOURS[int(c) % len(COLOURS)], np.float32)
    out = out.astype(np.uint8)
    for m in inst:
        cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, cs, -1, (255, 255, 255), 1)
    for b, s, c in zip(op["boxes"], op["scores"], op["classes"]):
        col = COLOURS[int(c) % len(COLOURS)]
        x0, y0, x1, y1 = (int(round(v)) for v in b)
        cv2.rectangle(out, (x0, y0), (x1, y1), col, 1)
        cv2.putText(out, f"{info.label(int(c))} {s:.2f}", (x0, max(10, y0 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    col, 1, cv2.LINE_AA)
    return out


def coco_ap(gts, dets, iou_type):
    """gts / dets: COCO dicts.  -> ({class: AP@0.5}, mAP@0.5, AP@[.5:.95])."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    if not dets:
        return {NAMES[c["id"]]: 0.0 for c in gts["categories"]}, 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gts
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    per = {}
    for k, cat in enumerate(ev.params.catIds):
        p = ev.eval["precision"][0, :, k, 0, -1]  # IoU 0.5, all recalls, class k, area all, maxDets 100
        p = p[p > -1]
        per[NAMES[cat]] = float(p.mean()) if p.size else None
    vals = [v for v in per.values() if v is not None]
    return per, float(np.mean(vals)), float(ev.stats[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mtd", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--split-by", default="number", choices=SPLITS_BY,
                    help="number: n %% 5 of each tile's own number; part: every lighting view of a tile in the "
                         "split of its smallest number (as the model was trained: training/mtd_seg.py data)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--figure", help="PNG: the first tile of every class in the split, its predicted masks "
                    "(operating point) filled in colour, the true outlines in white")
    a = ap.parse_args()
    from pycocotools import mask as mask_util
    from reference_segment_input import ReferenceSegmenter, postprocess

    seg = ReferenceSegmenter(a.model)
    tiles = [t for t in list_tiles(a.mtd, a.split_by) if t[3] == a.split]
    gts = {"info": {}, "images": [], "annotations": [], "categories": [{"id": i, "name": n} for i, n in enumerate(NAMES)]}
    dets_segm, dets_bbox = [], []
    free_dets = free_tiles_hit = free_tiles = 0
    empty = []
    geo = []  # (true area, pred area, true length, pred length)
    shown = {}
    n_inst = 0
    for img_id, (jpg, png, cls, _) in enumerate(tiles):
        g = read_gray(jpg)
        rgb = cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)
        out0, out1 = seg.run(rgb)
        op = postprocess(out0, out1, seg.info.imgsz, g.shape, seg.nc, conf=0.25, iou=0.45, max_det=300)
        if cls == "free":
            free_tiles += 1
            free_dets += len(op["scores"])
            free_tiles_hit += int(len(op["scores"]) > 0)
            continue
        inst = instances(read_gray(png))
        if not inst:
            empty.append(os.path.relpath(jpg, a.mtd))
            continue
        gts["images"].append({"id": img_id, "width": g.shape[1], "height": g.shape[0], "file_name": jpg})
        c = NAMES.index(cls)
        for m in inst:
            n_inst += 1
            ys, xs = np.nonzero(m)
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            r = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
            r["counts"] = r["counts"].decode("ascii")
            gts["annotations"].append({"id": len(gts["annotations"]) + 1, "image_id": img_id, "category_id": c,
                                       "segmentation": r, "area": float(m.sum()), "iscrowd": 0,
                                       "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]})
            ious = [mask_iou(m, pm) for pm in op["masks"]]
            if ious and max(ious) >= 0.5:
                pm = op["masks"][int(np.argmax(ious))]
                geo.append((float(m.sum()), float(pm.sum()), length_px(m), length_px(pm)))
        if a.figure and cls not in shown:
            shown[cls] = draw(rgb, inst, op, seg.info)
        lo = postprocess(out0, out1, seg.info.imgsz, g.shape, seg.nc, conf=0.001, iou=0.7, max_det=100)
        for b, s, k, pm in zip(lo["boxes"], lo["scores"], lo["classes"], lo["masks"]):
            r = mask_util.encode(np.asfortranarray(pm.astype(np.uint8)))
            r["counts"] = r["counts"].decode("ascii")
            box = [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]
            dets_segm.append({"image_id": img_id, "category_id": int(k), "segmentation": r, "score": float(s)})
            dets_bbox.append({"image_id": img_id, "category_id": int(k), "bbox": box, "score": float(s)})
    mask_per, mask_map, mask_coco = coco_ap(gts, dets_segm, "segm")
    box_per, box_map, box_coco = coco_ap(gts, dets_bbox, "bbox")
    geo = np.array(geo).reshape(-1, 4)
    area_err = np.abs(geo[:, 1] - geo[:, 0])
    len_err = np.abs(geo[:, 3] - geo[:, 2])
    fig = {
        "model": a.model, "split": a.split, "split_by": a.split_by,
        "defective_tiles": len(gts["images"]), "instances": n_inst, "left_out_empty_masks": empty,
        "mask_ap50": mask_per, "mask_map50": mask_map, "mask_ap50_95": mask_coco,
        "box_ap50": box_per, "box_map50": box_map, "box_ap50_95": box_coco,
        "free_tiles": free_tiles, "free_detections": free_dets, "free_tiles_with_detections": free_tiles_hit,
        "matched_instances": int(len(geo)),
        "area_median_abs_error_px": float(np.median(area_err)) if len(geo) else None,
        "area_median_rel_error": float(np.median(area_err / geo[:, 0])) if len(geo) else None,
        "length_median_abs_error_px": float(np.median(len_err)) if len(geo) else None,
        "length_median_rel_error": float(np.median(len_err / np.maximum(geo[:, 2], 1))) if len(geo) else None,
        "true_area_median_px": float(np.median(geo[:, 0])) if len(geo) else None,
        "true_length_median_px": float(np.median(geo[:, 2])) if len(geo) else None,
    }
    print(f"{a.split}: {fig['defective_tiles']} defective tiles, {n_inst} instances "
          f"({len(empty)} tiles with an empty mask left out); ort + numpy reference")
    print("class      mask AP50  box AP50")
    for n in NAMES:
        mv, bv = mask_per.get(n), box_per.get(n)
        # a class without an instance in the split has no AP ("-"): the part split's test has no fray
        print(f"{n:10s} {'-' if mv is None else f'{mv:.3f}':>9}  {'-' if bv is None else f'{bv:.3f}':>8}")
    print(f"mean       {mask_map:9.3f}  {box_map:8.3f}   (AP@[.5:.95]: mask {mask_coco:.3f}, box {box_coco:.3f})")
    print(f"defect-free tiles: {free_tiles}, detections at conf 0.25: {free_dets} "
          f"on {free_tiles_hit} tiles")
    if len(geo):
        print(f"{len(geo)}/{n_inst} instances matched (mask IoU >= 0.5, conf 0.25): median |area error| "
              f"{fig['area_median_abs_error_px']:.1f} px ({fig['area_median_rel_error']:.1%}; true median "
              f"{fig['true_area_median_px']:.0f} px), median |length error| {fig['length_median_abs_error_px']:.1f} px "
              f"({fig['length_median_rel_error']:.1%}; true median {fig['true_length_median_px']:.0f} px)")
    if a.figure and shown:
        h = max(im.shape[0] for im in shown.values())
        row = [cv2.copyMakeBorder(shown[c], 0, h - shown[c].shape[0], 0, 8, cv2.BORDER_CONSTANT, value=(255, 255, 255))
               for c in NAMES if c in shown]
        cv2.imwrite(a.figure, cv2.cvtColor(np.hstack(row), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(fig, f, indent=1)


if __name__ == "__main__":
    main()
