#!/usr/bin/env python3
"""Boxes a model copy keeps from its parent: two ``predictions.coco.json`` written by
``defect-replay --out DIR --model-b COPY.onnx`` (DIR/predictions.coco.json is the parent,
DIR/b/predictions.coco.json the copy).

    python scripts/boxes_kept.py DIR [--conf 0.25] [--iou 0.9]

A parent box (score >= --conf) is kept when the copy has a box of the same class on the same
frame overlapping it at IoU > --iou; printed: kept / total, the largest and the median score
difference of the kept boxes, and the copy's boxes no parent box matches (new boxes).
"""
import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np


def load(path, conf):
    by_key = defaultdict(list)
    with open(path) as f:
        for p in json.load(f):
            if p["score"] >= conf:
                by_key[(p["image_id"], p["category_id"])].append((p["bbox"], p["score"]))
    return by_key


def iou(a, b):
    ax1, ay1, aw, ah = a
    bx1, by1, bw, bh = b
    iw = max(0.0, min(ax1 + aw, bx1 + bw) - max(ax1, bx1))
    ih = max(0.0, min(ay1 + ah, by1 + bh) - max(ay1, by1))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def compare(parent, copy, threshold):
    kept, total, diffs, matched = 0, 0, [], set()
    for key, boxes in parent.items():
        others = copy.get(key, [])
        for box, score in boxes:
            total += 1
            best, best_j = 0.0, None
            for j, (other, _) in enumerate(others):
                overlap = iou(box, other)
                if overlap > best:
                    best, best_j = overlap, j
            if best > threshold:
                kept += 1
                diffs.append(abs(others[best_j][1] - score))
                matched.add((key, best_j))
    new = sum(len(v) for v in copy.values()) - len(matched)
    return kept, total, diffs, new


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.9)
    args = ap.parse_args(argv)
    parent = load(os.path.join(args.dir, "predictions.coco.json"), args.conf)
    copy = load(os.path.join(args.dir, "b", "predictions.coco.json"), args.conf)
    kept, total, diffs, new = compare(parent, copy, args.iou)
    share = kept / total if total else 1.0
    print(f"{args.dir}: boxes kept at IoU > {args.iou} (score >= {args.conf}): {kept}/{total} ({100 * share:.1f} %); "
          f"score difference max {max(diffs, default=0):.3f} median {float(np.median(diffs)) if diffs else 0:.3f}; "
          f"copy boxes matching no parent box: {new}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
