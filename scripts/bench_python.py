"""The usual alternative to the plugin: a plain Python loop with OpenCV letterbox,
onnxruntime and numpy decoding + NMS (scripts/reference_detect.py), on 1080p RGB frames.
Prints `fps <value>`; used by `cargo bench --bench throughput`."""
import argparse
import os
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_detect  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=100)
    args = ap.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    detector = reference_detect.ReferenceDetector(args.model)
    detector.sess = session
    frame = ((np.arange(1080 * 1920 * 3, dtype=np.uint64) * 2654435761) >> 13).astype(np.uint8).reshape(1080, 1920, 3)
    for _ in range(3):
        detector.detect(frame)
    started = time.perf_counter()
    for _ in range(args.frames):
        detector.detect(frame)
    print(f"fps {args.frames / (time.perf_counter() - started):.2f}")


if __name__ == "__main__":
    main()
