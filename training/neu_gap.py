#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Where a NEU-DET detector loses its mAP@0.5: read from one ``defect-replay --out DIR`` of the
NEU-DET split (``DIR/truth.coco.json`` and ``DIR/predictions.coco.json``, at ``--conf 0.01``)
and scored with pycocotools:

- AP at IoU 0.1, 0.3, 0.5 and 0.7, per class: a defect found with a box drawn otherwise than
  the annotator's counts at 0.1 or 0.3 and not at 0.5;
- class-agnostic AP@0.5 (every class one): what is lost to the class alone;
- the image's own class (NEU-DET files are named after the class of the folder they come from)
  given to every prediction, or only predictions of that class kept: what a perfect
  whole-image classifier would add;
- boxes per image of each class: truth, and predictions at the operating point (conf 0.25).

    python training/neu_gap.py out/neu-detector/neu/test-ap   # the folder of a replay at conf 0.01
"""
import argparse
import contextlib
import copy
import io
import json
import os

import numpy as np


def ap_per_class(truth, predictions, iou=0.5, agnostic=False):
    """[AP of each category] at one IoU threshold (COCO 101-point, maxDets 300), pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth, predictions = copy.deepcopy(truth), copy.deepcopy(predictions)
    truth.setdefault("info", {})
    if agnostic:
        truth["categories"] = [{"id": 0, "name": "defect"}]
        for a in truth["annotations"] + predictions:
            a["category_id"] = 0
    for a in truth["annotations"]:
        a.setdefault("iscrowd", 0)
        a.setdefault("area", a["bbox"][2] * a["bbox"][3])
    if not predictions:  # pycocotools cannot load an empty result: nothing found, AP 0 where truth is
        have = {a["category_id"] for a in truth["annotations"]}
        return [0.0 if c["id"] in have else float("nan") for c in sorted(truth["categories"], key=lambda c: c["id"])]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = truth
        gt.createIndex()
        e = COCOeval(gt, gt.loadRes(predictions), "bbox")
        e.params.maxDets = [1, 10, 300]
        e.params.iouThrs = np.array([iou])
        e.evaluate()
        e.accumulate()
    pr = e.eval["precision"][0, :, :, 0, 2]
    return [float(np.mean(pr[:, k][pr[:, k] > -1])) if (pr[:, k] > -1).any() else float("nan")
            for k in range(pr.shape[1])]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("replay_out", help="a defect-replay --out folder of a NEU-DET split at --conf 0.01")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    with open(os.path.join(a.replay_out, "truth.coco.json")) as f:
        truth = json.load(f)
    with open(os.path.join(a.replay_out, "predictions.coco.json")) as f:
        pred = json.load(f)
    names = [c["name"] for c in sorted(truth["categories"], key=lambda c: c["id"])]
    if not pred or min(p["score"] for p in pred) > 0.05:
        print("neu_gap: the predictions look thresholded above 0.05: replay with --conf 0.01 for AP")
    image_class = {}
    for im in truth["images"]:
        stem = os.path.splitext(os.path.basename(im["file_name"]))[0].rsplit("_", 1)[0]
        if stem not in names:
            raise SystemExit(f"neu_gap: {im['file_name']} is not named <class>_<n> (a NEU-DET file)")
        image_class[im["id"]] = names.index(stem)

    rows = {}
    for iou in (0.1, 0.3, 0.5, 0.7):
        rows[f"AP@{iou}"] = ap_per_class(truth, pred, iou)
    rows["class-agnostic AP@0.5"] = ap_per_class(truth, pred, 0.5, agnostic=True)
    relabelled = [dict(p, category_id=image_class[p["image_id"]]) for p in pred]
    rows["image's class given to every box, AP@0.5"] = ap_per_class(truth, relabelled)
    kept = [p for p in pred if p["category_id"] == image_class[p["image_id"]]]
    rows["only boxes of the image's class, AP@0.5"] = ap_per_class(truth, kept)

    width = max(len(k) for k in rows) + 2
    print(f"{'':{width}s}{'mean':>7s}" + "".join(f"{n[:9]:>10s}" for n in names))
    for k, v in rows.items():
        cells = "".join(f"{x:10.3f}" for x in v) if len(v) == len(names) else ""
        print(f"{k:{width}s}{np.nanmean(v):7.3f}{cells}")
    mixed = sum(1 for i in image_class
                if len({t["category_id"] for t in truth["annotations"] if t["image_id"] == i}) > 1)
    print(f"images with truth of more than one class: {mixed} of {len(image_class)}")
    per_image = {}
    for k, n in enumerate(names):
        ids = [i for i, c in image_class.items() if c == k]
        t = np.mean([sum(1 for x in truth["annotations"] if x["image_id"] == i) for i in ids])
        p = np.mean([sum(1 for x in pred if x["image_id"] == i and x["score"] >= 0.25) for i in ids])
        per_image[n] = {"truth": float(t), "predicted_at_0.25": float(p)}
        print(f"boxes per {n} image: truth {t:.2f}, predicted at conf 0.25 {p:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"replay_out": a.replay_out, "classes": names,
                       "ap": {k: dict(zip(["mean"] + names, [float(np.nanmean(v))] + v)) for k, v in rows.items()},
                       "images_with_two_classes": mixed, "boxes_per_image": per_image}, f, indent=1)


if __name__ == "__main__":
    main()
