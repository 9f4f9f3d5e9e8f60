#!/usr/bin/env python3
"""INT8 copy of an exported detector: ONNX Runtime static quantisation (QDQ, per-channel).

    python training/generate.py --split train --count 128 --out /tmp/calib
    python training/quantize.py --model models/surface-defects.onnx \
        --calib /tmp/calib/images --out models/surface-defects-int8.onnx

Weights are int8 per output channel in 7 bits (``reduce_range``: |w| <= 64), activations uint8
per tensor, calibrated on the images in
``--calib`` (synthetic training images from training/generate.py; NEU-DET train images may be
added with a second ``--calib``), letterboxed exactly as the plugin does (training/evaluate.py's
``to_input``).

The decode head stays in float: every node after the last convolution (the grid and stride
arithmetic, Softplus/Sigmoid, the final Concat of boxes in input pixels 0..640 with scores 0..1
and the Transpose).  Quantising that Concat puts boxes and scores into one uint8 tensor with a
step of ~2.5 and destroys every score; ``--float-prediction-convs`` also keeps the last
convolution of each box/class branch in float (the logits), trading speed for accuracy.

Why 7 bits: on x86 CPUs without VNNI (AVX2 only, or AVX-512 without VNNI) ONNX Runtime's u8 x s8
kernels add two products in a saturating 16-bit lane (vpmaddubsw); with full-range weights
(|w| up to 127) 2 x 255 x 127 exceeds 32,767 and the model computes something else (on an AVX2
EPYC the full-range copy kept a third of its parent's boxes). With |w| <= 64 the pair sums stay
below 2 x 255 x 64 = 32,640 on every CPU; with VNNI (32-bit sums) both are exact.
``--full-range`` makes the old copy (right only on CPUs with VNNI/AMX); ``defectdetect`` warns
when it loads such a copy on a CPU without them.

The copy keeps the parent's metadata (names, imgsz, version...) and adds ``quantization`` (how it
was made) and ``parent_sha256`` (the fp32 model it was made from).
"""
import argparse
import glob
import hashlib
import os
import sys
import tempfile

import cv2
import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluate import to_input  # noqa: E402


def image_size(model):
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return dims[2].dim_value, dims[3].dim_value


class Images(CalibrationDataReader):
    """Feeds the calibration images one at a time, preprocessed as the plugin does."""

    def __init__(self, paths, input_name, hw):
        self.paths = list(paths)
        self.input_name = input_name
        self.hw = hw
        self.index = 0

    def get_next(self):
        while self.index < len(self.paths):
            path = self.paths[self.index]
            self.index += 1
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                print(f"quantize: cannot read {path}; skipped", file=sys.stderr)
                continue
            x, _, _ = to_input(img, self.hw)
            return {self.input_name: x}
        return None


def decode_nodes(model, float_prediction_convs):
    """Names of the nodes to keep in float: those after the last convolution (the graph is in
    topological order), and with ``float_prediction_convs`` the convolutions no other
    convolution consumes (the last of each head branch)."""
    nodes = list(model.graph.node)
    last_conv = max(i for i, n in enumerate(nodes) if n.op_type == "Conv")
    names = [n.name for n in nodes[last_conv + 1:] if n.op_type != "Constant"]
    if float_prediction_convs:
        consumers = {}
        for n in nodes:
            for i in n.input:
                consumers.setdefault(i, []).append(n)

        def feeds_conv(tensor, seen):
            for c in consumers.get(tensor, []):
                if c.name in seen:
                    continue
                seen.add(c.name)
                if c.op_type == "Conv" or any(feeds_conv(o, seen) for o in c.output):
                    return True
            return False

        names += [n.name for n in nodes if n.op_type == "Conv" and not feeds_conv(n.output[0], set())]
    return names


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/surface-defects.onnx")
    ap.add_argument("--calib", action="append", required=True,
                    help="directory of calibration images (png/jpg); may be repeated")
    ap.add_argument("--count", type=int, default=0, help="use at most this many images of each directory (0 = all)")
    ap.add_argument("--out", default="models/surface-defects-int8.onnx")
    ap.add_argument("--method", default="percentile", choices=["minmax", "entropy", "percentile"])
    ap.add_argument("--float-prediction-convs", action="store_true",
                    help="also keep the last convolution of each head branch in float")
    ap.add_argument("--full-range", action="store_true",
                    help="8-bit weights (|w| up to 127): wrong on x86 CPUs without VNNI; default 7-bit")
    args = ap.parse_args(argv)

    paths = []
    for directory in args.calib:
        found = sorted(p for ext in ("png", "jpg", "jpeg", "bmp")
                       for p in glob.glob(os.path.join(directory, f"*.{ext}")))
        if not found:
            ap.error(f"no images in {directory}")
        paths += found[:args.count] if args.count else found

    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        # Shape inference and graph optimisation first, as ONNX Runtime recommends for QDQ.
        quant_pre_process(args.model, prepared, skip_symbolic_shape=True)
        model = onnx.load(prepared)
        hw = image_size(model)
        exclude = decode_nodes(model, args.float_prediction_convs)
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[args.method]
        quantize_static(
            prepared, args.out, Images(paths, model.graph.input[0].name, hw),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude, calibrate_method=method, reduce_range=not args.full_range,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})

    parent = onnx.load(args.model)
    quantized = onnx.load(args.out)
    del quantized.metadata_props[:]
    for prop in parent.metadata_props:
        quantized.metadata_props.add(key=prop.key, value=prop.value)
    weights = ("int8 per channel, full range (|w| <= 127: u8 x s8 kernels saturate on x86 without VNNI)"
               if args.full_range else
               "int8 per channel, 7-bit range (reduce_range, |w| <= 64: no saturation on any CPU)")
    how = (f"int8 static QDQ (onnxruntime quantize_static), weights {weights}, activations uint8, "
           f"{args.method} calibration on {len(paths)} images; {len(exclude)} nodes kept in float "
           f"(decode head{' and prediction convs' if args.float_prediction_convs else ''})")
    quantized.metadata_props.add(key="quantization", value=how)
    quantized.metadata_props.add(key="parent_sha256", value=sha256(args.model))
    onnx.save(quantized, args.out)
    print(f"quantize: {args.out}: {os.path.getsize(args.out) / 1e6:.2f} MB; {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
