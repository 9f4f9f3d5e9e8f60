#!/usr/bin/env python3
"""Rewrites tests/data/bounds.json from the bundled videos' detection figures that
scripts/model_card_figures.sh measured (OUT/<video>-detections/report.json): each per-class
precision and recall and the mAP@0.5, minus 0.05 for floating-point differences between CPUs.
Run it only after a new model's card figures were measured:

    scripts/model_card_figures.sh && .venv/bin/python scripts/update_bounds.py out/model-card
"""
import hashlib
import json
import math
import sys

MARGIN = 0.05


def floor3(x):
    return max(0.0, math.floor((x - MARGIN) * 1000 + 1e-9) / 1000)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "out/model-card"
    path = "tests/data/bounds.json"
    bounds = json.load(open(path))
    sha = hashlib.sha256(open("models/surface-defects.onnx", "rb").read()).hexdigest()
    for video, entry in bounds.items():
        if video.startswith("_"):
            continue
        report = json.load(open(f"{out}/{video}-detections/report.json"))
        assert report["model_id"].endswith(sha[:12]), f"{video}: measured with {report['model_id']}"
        det = entry["detections"]
        for c in report["classes"]:
            det["recall"][c["name"]] = floor3(c["recall"])
            det["precision"][c["name"]] = floor3(c["precision"])
        det["map50"] = floor3(report["map50"])
    bounds["_comment"] = (
        "Lower bounds checked by tests/bundled.rs: per-class precision and recall at conf-threshold "
        "0.25 without a policy, and mAP@0.5, as measured with models/surface-defects.onnx (sha256 "
        f"{sha[:12]}...) through defectdetect by scripts/model_card_figures.sh (OUT/<video>-detections), "
        "minus 0.05 for floating-point differences between CPUs (written by scripts/update_bounds.py); "
        "parts: with pipelines/policy.toml every defective part FAILs and every clean part PASSes "
        "(see models/surface-defects.md).")
    with open(path, "w") as f:
        json.dump(bounds, f, indent=2)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
