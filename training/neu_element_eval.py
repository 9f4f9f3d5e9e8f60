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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neu", default=os.environ.get("NEU_DET_DIR", "/work/data/neu"))
    ap.add_argument("--model", default="models/neu-classifier.onnx")
    ap.add_argument("--split", default="test", choices=neu_det.SPLITS)
    ap.add_argument("--json")
    a = ap.parse_args()
    images = split_images(a.neu, a.split)
    if not images:
        sys.exit(f"no {a.split} images under {a.neu}")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (path, _) in enumerate(images):
            os.symlink(os.path.abspath(path), os.path.join(tmp, f"{i:05d}.jpg"))
        cmd = ["gst-launch-1.0", "-m", "multifilesrc", f"location={tmp}/%05d.jpg", "index=0",
               f"stop-index={len(images) - 1}", "caps=image/jpeg,framerate=1/1", "!", "jpegdec", "!",
               "videoconvert", "!", "video/x-raw,format=RGB", "!", "defectdetect", f"model={a.model}",
               "task=classify", "top-k=1", "!", "fakesink"]
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
    result = {"model": a.model, "split": a.split, "images": len(images), "correct": correct,
              "top1": correct / len(images), "per_class": per_class, "confusion": confusion,
              "errors": [os.path.basename(images[i][0]) + " -> " + neu_det.CLASSES[predicted[i]]
                         for i in range(len(images)) if predicted[i] != images[i][1]]}
    print(f"top-1 {result['top1']:.4f} ({correct}/{len(images)}) through defectdetect, {a.split} split")
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
