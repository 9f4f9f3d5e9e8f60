#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Drift cases from the bundled recordings: the recording looped, changed from an onset frame.

Each case is the recording (tests/data/conveyor_color.mp4 or conveyor_mono.mp4, 300 frames)
played LOOPS times, written as Motion-JPEG in AVI (OpenCV's own encoder; GStreamer reads it
with avidemux ! jpegdec), with a change applied to every frame from ONSET on:

  dimmed    the image at 55 % of its brightness (the light ageing, a lamp failing);
  defocus   a Gaussian blur of sigma 3 (the lens out of focus);
  dust      dark specks stuck on the lens (same place on every frame from the onset);
  product   a different product: inside each part's box (from the recording's COCO ground
            truth) the surface is tinted blue-green and given a coarse mottled texture
            (another material on the same line); the belt is unchanged.
  clean     no change (the reference).

The first 300 frames are always clean (defectdetect learns its baseline from them by default),
so the change starts at ONSET = 450 in the second loop.

  .venv/bin/python scripts/make_drift_cases.py --out target/drift-cases
"""

import argparse
import json
import os
import sys

import cv2
import numpy as np

CASES = ["clean", "dimmed", "defocus", "dust", "product"]


def dust_mask(width, height, seed=7):
    """Dark specks: a few dozen soft round spots of 3 to 14 px, opacity 0.5 to 0.9."""
    rng = np.random.default_rng(seed)
    alpha = np.zeros((height, width), np.float32)
    for _ in range(40):
        x, y = rng.integers(0, width), rng.integers(0, height)
        r = int(rng.integers(3, 15))
        spot = np.zeros_like(alpha)
        cv2.circle(spot, (int(x), int(y)), r, float(rng.uniform(0.5, 0.9)), -1, cv2.LINE_AA)
        alpha = np.maximum(alpha, cv2.GaussianBlur(spot, (0, 0), r / 3 + 0.5))
    return alpha[..., None]


def product(frame, texture, boxes):
    """Another product: inside the parts' boxes, tinted and textured."""
    out = frame.copy()
    for x, y, w, h in boxes:
        x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        f = frame[y0:y1, x0:x1].astype(np.float32)
        tinted = f * np.array([1.25, 1.05, 0.6], np.float32) + texture[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = np.clip(tinted, 0, 255).astype(np.uint8)
    return out


def part_boxes(coco_path):
    """Per frame, the boxes of the parts in view (COCO ground truth of the recording)."""
    with open(coco_path) as f:
        coco = json.load(f)
    return {im["id"]: [p["bbox"] for p in im.get("parts", [])] for im in coco["images"]}


def make(source, case, out, loops, onset, mono):
    boxes = part_boxes(source.replace(".mp4", ".coco.json"))
    cap = cv2.VideoCapture(source)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    if not frames:
        sys.exit(f"{source}: no frames")
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (width, height))
    if not writer.isOpened():
        sys.exit(f"cannot write {out}")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 90)
    mask = dust_mask(width, height)
    rng = np.random.default_rng(11)
    texture = cv2.resize(
        rng.normal(0, 25, (height // 8, width // 8)).astype(np.float32), (width, height),
        interpolation=cv2.INTER_LINEAR)[..., None]
    for i in range(loops * len(frames)):
        frame = frames[i % len(frames)]
        if i >= onset:
            if case == "dimmed":
                frame = np.clip(frame.astype(np.float32) * 0.55 + 0.5, 0, 255).astype(np.uint8)
            elif case == "defocus":
                frame = cv2.GaussianBlur(frame, (0, 0), 3)
            elif case == "dust":
                frame = (frame.astype(np.float32) * (1 - mask) + 20 * mask).astype(np.uint8)
            elif case == "product":
                frame = product(frame, texture, boxes.get(i % len(frames), []))
                if mono:
                    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                    frame = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        writer.write(frame)
    writer.release()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="target/drift-cases")
    parser.add_argument("--loops", type=int, default=3)
    parser.add_argument("--onset", type=int, default=450)
    parser.add_argument("--cases", nargs="*", default=CASES, choices=CASES)
    parser.add_argument("--videos", nargs="*", default=["color", "mono"], choices=["color", "mono"])
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    for video in args.videos:
        source = os.path.join(root, "tests", "data", f"conveyor_{video}.mp4")
        for case in args.cases:
            out = os.path.join(args.out, f"{video}-{case}.avi")
            make(source, case, out, args.loops, args.onset, video == "mono")
            print(out)


if __name__ == "__main__":
    main()
