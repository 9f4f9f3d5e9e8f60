#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Input tensors as the reference detector makes them (OpenCV letterbox, / 255), for
tests/letterbox_opencv.rs.

    letterbox_reference.py MANIFEST.json

MANIFEST is a list of cases: {"raw": path of packed frame bytes, "width", "height",
"format": "RGB" | "GRAY8", "input": [h, w] of the model, "channels": 1 | 3, "out": path}.
For each, writes the float32 [1, channels, h, w] tensor that `reference_detect.preprocess`
makes (cv2.resize INTER_LINEAR, cv2.copyMakeBorder 114, cvtColor RGB2GRAY for 1-channel
models) to "out", in native byte order.
"""
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from reference_detect import load_raw, preprocess  # noqa: E402


def main(argv) -> int:
    cases = json.loads(pathlib.Path(argv[1]).read_text())
    for case in cases:
        image = load_raw(case["raw"], case["width"], case["height"], case["format"])
        tensor = preprocess(image, tuple(case["input"]), case["channels"])
        tensor.astype("float32").tofile(case["out"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
