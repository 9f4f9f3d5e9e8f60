#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Top-1 accuracy of a NEU classifier THROUGH THE ELEMENT: every image of a NEU-DET split is
decoded by GStreamer (``jpegdec``, ``videoconvert`` to RGB) and classified by ``defectdetect``
(task classify, its own Ultralytics classify preprocessing); the ``defect-detections``
messages give the top-1 class of each frame.  Prints accuracy, per-class precision / recall /
F1 and the confusion matrix; ``--json`` writes them.

    GST_PLUGIN_PATH=target/debug .venv/bin/python training/neu_element_eval.py \\
        --neu /work/data/neu --model models/neu-classifier.onnx --split test

The split is ``training/neu_det.py``'s: file number n % 10 == 0 test, 5 validation.

``--frame 1280x720`` shows each image as an inspection window at a fixed place (``--offset``,
default 700,300) of a larger camera frame of clean synthetic steel (one seeded frame, its grey
level matched to each image's, ``training/neu_perturb.py``'s ``steel_frame``; ``--background
grey`` for the image's mean grey instead), written as PNG; ``--crop`` then sets the element's
``crop`` property to the window, the supported way to classify it (without it the element
classifies the whole frame):

    GST_PLUGIN_PATH=target/debug .venv/bin/python training/neu_element_eval.py \\
        --neu "$NEU_DET_DIR" --split test --frame 1280x720 [--crop]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import neu_det  # noqa: E402

LABEL = re.compile(r"defect-detections, .*?frame=\(guint64\)(\d+).*?label-id\\=\\\(uint\\\)(\d+)")


def split_images(src, split):
    """[(path, class index)] of the split's images, in a fixed order."""
    out = []
    for stem, (image, _) in sorted(neu_det.find_pairs(src).items()):
        parsed = neu_det.parse_stem(stem)
        if parsed is None:
            continue
        name, number = parsed
        cls = neu_det.class_index(name)
        if cls is not None and neu_det.split_of(number) == split:
            out.append((image, cls))
    return out


def framed(images, a, tmp):
    """Writes each image as a window of a larger frame (PNG) into tmp; returns the extension,
    caps, decoder and the element's crop property (empty without --crop)."""
    import cv2
    import numpy as np
    import neu_perturb

    fw, fh = (int(v) for v in a.frame.lower().split("x"))
    x0, y0 = (int(v) for v in a.offset.split(","))
    background = None
    if a.background == "steel":
        background = neu_perturb.steel_frame(np.random.default_rng(a.seed), fh, fw).astype(np.float32)
    size = None
    for i, (path, _) in enumerate(images):
        img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        h, w = img.shape
        if size not in (None, (w, h)):
            sys.exit(f"{path}: {w}x{h}, the others {size[0]}x{size[1]}: one window size is needed")
        size = (w, h)
        if x0 + w > fw or y0 + h > fh:
            sys.exit(f"a {w}x{h} window at {x0},{y0} does not fit a {fw}x{fh} frame")
        mean = float(img.mean())
        if background is None:
            frame = np.full((fh, fw), round(mean), np.float32)
        else:
            frame = np.clip(background * (mean / max(float(background.mean()), 1.0)), 0, 255)
        frame[y0:y0 + h, x0:x0 + w] = img
        cv2.imwrite(os.path.join(tmp, f"{i:05d}.png"), frame.astype(np.uint8))
    crop = [f"crop={x0},{y0},{size[0]},{size[1]}"] if a.crop else []
    return "png", "image/png", "pngdec", crop


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neu", default=os.environ.get("NEU_DET_DIR", "/work/data/neu"))
    ap.add_argument("--model", default="models/neu-classifier.onnx")
    ap.add_argument("--split", default="test", choices=neu_det.SPLITS)
    ap.add_argument("--frame", help="WxH: each image as a window of a frame of this size")
    ap.add_argument("--offset", default="700,300", help="x,y of the window in the frame (with --frame)")
    ap.add_argument("--background", default="steel", choices=["steel", "grey"],
                    help="the frame around the window (with --frame)")
    ap.add_argument("--crop", action="store_true", help="set the element's crop to the window (with --frame)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.crop and not a.frame:
        sys.exit("--crop needs --frame")
    images = split_images(a.neu, a.split)
    if not images:
        sys.exit(f"no {a.split} images under {a.neu}")
    crop = []
    with tempfile.TemporaryDirectory() as tmp:
        if a.frame:
            ext, caps, dec, crop = framed(images, a, tmp)
        else:
            ext, caps, dec = "jpg", "image/jpeg", "jpegdec"
            for i, (path, _) in enumerate(images):
                os.symlink(os.path.abspath(path), os.path.join(tmp, f"{i:05d}.jpg"))
        cmd = ["gst-launch-1.0", "-m", "multifilesrc", f"location={tmp}/%05d.{ext}", "index=0",
               f"stop-index={len(images) - 1}", f"caps={caps},framerate=1/1", "!", dec, "!",
               "videoconvert", "!", "video/x-raw,format=RGB", "!", "defectdetect", f"model={a.model}",
               "task=classify", "top-k=1", *crop, "!", "fakesink"]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        sys.exit(f"gst-launch failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    predicted = {}
    for line in run.stdout.splitlines():
        m = LABEL.search(line)
        if m:
            predicted[int(m.group(1))] = int(m.group(2))
    if len(predicted) != len(images):
        sys.exit(f"{len(predicted)} classified frames for {len(images)} images")
    n = len(neu_det.CLASSES)
    confusion = [[0] * n for _ in range(n)]
    for i, (_, truth) in enumerate(images):
        confusion[truth][predicted[i]] += 1
    correct = sum(confusion[c][c] for c in range(n))
    per_class = {}
    for c, name in enumerate(neu_det.CLASSES):
        tp = confusion[c][c]
        fp = sum(confusion[t][c] for t in range(n)) - tp
        fn = sum(confusion[c]) - tp
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_class[name] = {"support": sum(confusion[c]), "precision": p, "recall": r, "f1": f1}
    result = {"model": a.model, "split": a.split, "frame": a.frame, "offset": a.offset if a.frame else None,
              "background": a.background if a.frame else None, "crop": " ".join(crop) or None,
              "images": len(images), "correct": correct,
              "top1": correct / len(images), "per_class": per_class, "confusion": confusion,
              "errors": [os.path.basename(images[i][0]) + " -> " + neu_det.CLASSES[predicted[i]]
                         for i in range(len(images)) if predicted[i] != images[i][1]]}
    how = ""
    if a.frame:
        how = (f", each image at ({a.offset}) of a {a.frame} {a.background} frame, "
               + (f"element {crop[0]}" if crop else "the whole frame classified"))
    print(f"top-1 {result['top1']:.4f} ({correct}/{len(images)}) through defectdetect, {a.split} split{how}")
    for name, m in per_class.items():
        print(f"  {name:16s} P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} ({m['support']})")
    for c, row in enumerate(confusion):
        print(f"  {neu_det.CLASSES[c]:16s}" + "".join(f"{v:4d}" for v in row))
    for e in result["errors"]:
        print("  error:", e)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
