#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Image folders and ground truth for ``defect-replay`` on the bundled image-level models.

    # the anomaly model's held-out synthetic test set (training/anomaly.py's seeds and layout:
    # even indices clean, odd indices with 1-3 defects), full-size PNGs, masks, truth.csv
    .venv/bin/python training/replay_sets.py anomaly --out /tmp/anomaly-test [--split test] [--count 300]
    target/debug/defect-replay --model models/surface-anomaly.onnx --images /tmp/anomaly-test/images \\
        --truth /tmp/anomaly-test/truth.csv --masks /tmp/anomaly-test/masks --pixel-stride 2

    # a NEU-DET split (training/neu_det.py's: file number n % 10 == 0 test) as links and truth.csv
    .venv/bin/python training/replay_sets.py neu --neu /work/data/neu --out /tmp/neu-test [--split test]
    target/debug/defect-replay --model models/neu-classifier.onnx --images /tmp/neu-test/images \\
        --truth /tmp/neu-test/truth.csv

truth.csv holds ``file,label`` lines: ``good`` / ``defective`` for the anomaly set, the NEU
class name for NEU-DET.  Masks are 8-bit PNGs named after the images, 255 on defective pixels
(``generate.defect_mask``), written for the defective images only.
"""
import argparse
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def anomaly(a):
    import anomaly as A  # noqa: E402  (training/anomaly.py: the renderer and seeds)

    images, masks = os.path.join(a.out, "images"), os.path.join(a.out, "masks")
    os.makedirs(images, exist_ok=True)
    os.makedirs(masks, exist_ok=True)
    lines = ["file,label"]
    for i in range(a.first, a.first + a.count):
        bgr, mask = A.render(a.split, i)
        name = f"{a.split}_{i:04d}"
        cv2.imwrite(os.path.join(images, name + ".png"), bgr)
        if mask.any():
            cv2.imwrite(os.path.join(masks, name + ".png"), mask.astype(np.uint8) * 255)
        lines.append(f"{name}.png,{'defective' if mask.any() else 'good'}")
    with open(os.path.join(a.out, "truth.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"replay_sets: {a.count} images of split {a.split} in {a.out}")


def neu(a):
    import neu_det  # noqa: E402

    images = os.path.join(a.out, "images")
    os.makedirs(images, exist_ok=True)
    lines = ["file,label"]
    for stem, (image, _) in sorted(neu_det.find_pairs(a.neu).items()):
        parsed = neu_det.parse_stem(stem)
        if parsed is None:
            continue
        name, number = parsed
        cls = neu_det.class_index(name)
        if cls is None or neu_det.split_of(number) != a.split:
            continue
        base = os.path.basename(image)
        link = os.path.join(images, base)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(image), link)
        lines.append(f"{base},{neu_det.CLASSES[cls]}")
    with open(os.path.join(a.out, "truth.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"replay_sets: {len(lines) - 1} NEU-DET {a.split} images in {a.out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("anomaly")
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, default=300)
    p.set_defaults(run=anomaly)
    p = sub.add_parser("neu")
    p.add_argument("--neu", required=True, help="a NEU-DET copy (images and VOC XML files)")
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.set_defaults(run=neu)
    a = ap.parse_args()
    a.run(a)


if __name__ == "__main__":
    main()
