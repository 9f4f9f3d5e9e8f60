#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Test-split figures of the magnetic-tile segmentation model measured through the element:
``defect-replay`` replays the split's tiles through ``defectdetect task=segment`` and scores its
masks and boxes (COCO segm and bbox AP, as pycocotools computes them) against the truth.

    python training/mtd_seg_replay.py --mtd $DATA --model magnetic-tile-seg.onnx \
        [--replay target/release/defect-replay] [--out out/mtd-seg] [--json figures.json]

The truth is written here as COCO (masks as RLE) with the instances of
``training/mtd_seg_eval.py`` (``instances``: a tile mask's parts closer than 7 px joined, parts
under 8 px dropped; tiles whose mask is empty are left out): ``OUT/defective.coco.json`` for the
defective tiles (linked into ``OUT/defective``), ``OUT/images.coco.json`` for them and the
defect-free tiles, as images without annotations (``OUT/images``); files ``<class>_<file>.jpg``,
grey JPEGs at their own size.  Two replays:

- the defective tiles at ``--conf 0.001`` (the element's class-wise NMS at 0.45): mask and box
  AP@0.5 per class, their means, AP@[.5:.95] (``OUT/ap/report.json``), as the model card's
  onnxruntime figures, on the defective tiles only;
- every tile at the element's defaults (conf 0.25, NMS 0.45), the operating point: detections on the
  defect-free tiles, and each true instance matched to the detection mask of highest IoU >= 0.5
  with the median error of the element's area and length (``defect-size``) against the truth
  mask's (``OUT/operating/report.json``).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mtd import SPLITS_BY, list_tiles, read_gray, sync_links  # noqa: E402
from mtd_seg_eval import NAMES, instances  # noqa: E402


def write_split(mtd, split, out, split_by="number"):
    """Links the split's tiles into out/images (all) and out/defective (the defective ones) and
    writes the truth of each, out/images.coco.json and out/defective.coco.json; returns the
    latter, the image ids of the defect-free tiles and the tiles left out."""
    from pycocotools import mask as mask_util

    images, defective = os.path.join(out, "images"), os.path.join(out, "defective")
    coco = {"info": {"description": f"MTD {split} split, instances of training/mtd_seg_eval.py"},
            "images": [], "annotations": [], "categories": [{"id": i, "name": n} for i, n in enumerate(NAMES)]}
    free, left_out, links = [], [], {images: {}, defective: {}}
    for jpg, png, cls, s in list_tiles(mtd, split_by):
        if s != split:
            continue
        inst = [] if cls == "free" else instances(read_gray(png))
        if cls != "free" and not inst:
            left_out.append(os.path.relpath(jpg, mtd))
            continue
        name = f"{cls}_{os.path.basename(jpg)}"
        for folder in [images] if cls == "free" else [images, defective]:
            links[folder][name] = jpg
        h, w = read_gray(jpg).shape
        image_id = len(coco["images"]) + 1
        coco["images"].append({"id": image_id, "file_name": name, "width": w, "height": h})
        if cls == "free":
            free.append(image_id)
        for m in inst:
            r = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
            ys, xs = np.nonzero(m)
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": NAMES.index(cls),
                "iscrowd": 0, "area": float(m.sum()),
                "bbox": [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())],
                "segmentation": {"size": [h, w], "counts": r["counts"].decode("ascii")}})
    for folder, targets in links.items():  # links another split left there are removed
        sync_links(folder, targets)
    with open(os.path.join(out, "images.coco.json"), "w") as f:
        json.dump(coco, f)
    only = dict(coco, images=[i for i in coco["images"] if i["id"] not in set(free)])
    with open(os.path.join(out, "defective.coco.json"), "w") as f:
        json.dump(only, f)
    return only, free, left_out


def replay(binary, model, out, name, folder, *args):
    report_dir = os.path.join(out, name)
    cmd = [binary, "--model", model, "--task", "segment", "--images", os.path.join(out, folder),
           "--truth", os.path.join(out, f"{folder}.coco.json"), "--threads", "2", "--progress", "none",
           "--overwrite", "--out", report_dir, *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(report_dir, "report.json")) as f:
        report = json.load(f)
    with open(os.path.join(report_dir, "predictions.coco.json")) as f:
        predictions = json.load(f)
    return report, predictions


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mtd", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--split-by", default="number", choices=SPLITS_BY,
                    help="number: n %% 5 of each tile's own number; part: every lighting view of a tile in the "
                         "split of its smallest number (as the model was trained: training/mtd_seg.py data)")
    ap.add_argument("--replay", default=os.path.join(os.path.dirname(HERE), "target", "release", "defect-replay"))
    ap.add_argument("--out", default="out/mtd-seg")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    coco, free, left_out = write_split(a.mtd, a.split, a.out, a.split_by)
    lo, _ = replay(a.replay, a.model, a.out, "ap", "defective", "--conf", "0.001")
    op, op_predictions = replay(a.replay, a.model, a.out, "operating", "images")
    masks = lo["masks"]
    mask_ap = {c["name"]: c["ap50"] for c in masks["classes"]}
    box_ap = {c["name"]: c["ap50"] for c in lo["classes"]}
    free_ids = set(free)
    on_free = [p for p in op_predictions if p["image_id"] in free_ids]
    sizes = op["masks"]["sizes"]
    fig = {
        "model": a.model, "split": a.split, "split_by": a.split_by, "measured_by": "defect-replay (defectdetect task=segment)",
        "defective_tiles": len(coco["images"]), "instances": len(coco["annotations"]),
        "left_out_empty_masks": left_out,
        "mask_ap50": mask_ap, "mask_map50": masks["map50"], "mask_ap75": masks["map75"], "mask_ap50_95": masks["map50_95"],
        "box_ap50": box_ap, "box_map50": lo["map50"], "box_ap50_95": lo["map50_95"],
        "free_tiles": len(free), "free_detections": len(on_free),
        "free_tiles_with_detections": len({p["image_id"] for p in on_free}),
        "matched_instances": sizes["matched"],
        "area_median_abs_error_px": sizes["area_median_abs_error_px"],
        "area_median_rel_error": sizes["area_median_rel_error"],
        "length_median_abs_error_px": sizes["length_median_abs_error_px"],
        "length_median_rel_error": sizes["length_median_rel_error"],
        "true_area_median_px": sizes["truth_area_median_px"],
        "true_length_median_px": sizes["truth_length_median_px"],
    }
    print(f"{a.split}: {fig['defective_tiles']} defective tiles, {fig['instances']} instances "
          f"({len(left_out)} tiles with an empty mask left out); through defectdetect")
    print("class      mask AP50  box AP50")
    for n in NAMES:
        mv, bv = mask_ap.get(n), box_ap.get(n)
        print(f"{n:<10} {'-' if mv is None else f'{mv:.3f}':>9} {'-' if bv is None else f'{bv:.3f}':>9}")
    print(f"mean       {fig['mask_map50']:>9.3f} {fig['box_map50']:>9.3f}")
    print(f"AP@[.5:.95] mask {fig['mask_ap50_95']:.3f}  box {fig['box_ap50_95']:.3f}")
    print(f"operating point (conf 0.25): {fig['free_detections']} detections on {fig['free_tiles_with_detections']} "
          f"of {fig['free_tiles']} defect-free tiles")
    if sizes["matched"]:
        print(f"{sizes['matched']} of {fig['instances']} instances matched (mask IoU >= 0.5): median area error "
              f"{fig['area_median_abs_error_px']:.1f} px ({100 * fig['area_median_rel_error']:.1f} %), length "
              f"{fig['length_median_abs_error_px']:.1f} px ({100 * fig['length_median_rel_error']:.1f} %)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(fig, f, indent=1)


if __name__ == "__main__":
    main()
