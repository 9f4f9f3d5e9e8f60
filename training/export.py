#!/usr/bin/env python3
"""Export a trained checkpoint to ONNX (Ultralytics YOLOv8 output convention).

    python training/export.py --ckpt training/runs/exp/best.pt --out models/surface-defects.onnx

Input  `images`  [1, 3, H, W] float32 RGB in [0, 1], letterboxed (pad 114).
Output `output0` [1, 4 + 6, N]: cx, cy, w, h (model-input pixels), then 6 sigmoid class
scores; N = (H/8)(W/8) + (H/16)(W/16).  Metadata: names, imgsz, stride, task, ...
The exported graph is checked against PyTorch with onnxruntime.
"""
import argparse
import datetime
import os
import sys

import numpy as np
import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import CLASSES, GENERATOR_SEED, SPLIT_SEEDS  # noqa: E402
from model import Detector, count_flops  # noqa: E402

VERSION = "2.0.0"


def export_onnx(model, out, h, w, meta, opset=17, check_n=None):
    """Exports ``model`` (``export = True`` returns [1, 4 + nc, N]) at H x W to ``out`` with the
    project's metadata keys (``meta`` adds to / overrides the common ones), checks it with onnx
    and against PyTorch with onnxruntime.  ``meta["description"]`` may name {params} and {gflops};
    ``check_n``: the N the output must have."""
    model.eval()
    model.export = True
    x = torch.rand(1, 3, h, w)
    with torch.no_grad():
        ref = model(x).numpy()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    kw = dict(input_names=["images"], output_names=["output0"], opset_version=opset, do_constant_folding=True)
    try:
        torch.onnx.export(model, (x,), out, dynamo=False, **kw)
    except TypeError:
        torch.onnx.export(model, (x,), out, **kw)

    m = onnx.load(out)
    names = "{" + ", ".join(f"{i}: '{n}'" for i, n in enumerate(CLASSES)) + "}"
    params = sum(p.numel() for p in model.parameters())
    gflops = count_flops(model, h, w) / 1e9
    full = {
        "author": "gst-plugin-defect",
        "license": "MIT OR Apache-2.0",
        "version": VERSION,
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "task": "detect",
        "batch": "1",
        "imgsz": f"[{h}, {w}]",
        "names": names,
        "channels": "3",
    }
    full.update(meta)
    full["description"] = meta["description"].format(params=params, gflops=gflops)
    full.update({
        "preprocess": "letterbox (cv2.INTER_LINEAR, centred, pad 114), RGB, /255",
        "output": "output0 [1, 4+nc, N]: cx, cy, w, h (input pixels), sigmoid class scores",
    })
    del m.metadata_props[:]
    for k, v in full.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "gst-plugin-defect training/export.py"
    m.doc_string = full["description"]
    onnx.checker.check_model(m)
    onnx.save(m, out)

    import onnxruntime as ort
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    res = sess.run(None, {"images": x.numpy()})[0]
    o = sess.get_outputs()[0]
    print(f"exported {out} ({os.path.getsize(out) / 1e6:.2f} MB): input {sess.get_inputs()[0].shape}, "
          f"output {o.name} {o.shape}; params {params}, {gflops:.2f} GFLOPs @ {h}x{w}")
    diff = np.abs(res - ref)
    print(f"onnxruntime vs torch: max abs diff {diff.max():.2e} (boxes {diff[:, :4].max():.2e}, "
          f"scores {diff[:, 4:].max():.2e})")
    assert res.shape == ref.shape and (check_n is None or res.shape == (1, 4 + len(CLASSES), check_n))
    assert np.allclose(res[:, 4:], ref[:, 4:], atol=1e-4) and np.allclose(res[:, :4], ref[:, :4], atol=1e-2, rtol=1e-4)
    print("allclose OK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default="training/runs/exp/best.pt")
    ap.add_argument("--out", default="models/surface-defects.onnx")
    ap.add_argument("--imgsz", type=int, nargs=2, default=[384, 640], metavar=("H", "W"))
    ap.add_argument("--opset", type=int, default=17)
    a = ap.parse_args()
    h, w = a.imgsz
    model = Detector()
    st = torch.load(a.ckpt, map_location="cpu")
    model.load_state_dict(st["model"])
    meta = {
        "description": ("gst-plugin-defect surface-defect detector for the six NEU-DET steel classes, "
                        "trained on the NEU-DET train split (real hot-rolled steel, file numbers n % 10 "
                        "not 0 or 5) and synthetic surfaces of training/generate.py; "
                        "anchor-free YOLOv8-style head, strides 8/16, {params} params, {gflops:.2f} GFLOPs"),
        "stride": "16",
        "strides": "[8, 16]",
        "generator": "training/generate.py",
        "generator_seed": str(GENERATOR_SEED),
        "split_seeds": str({k: SPLIT_SEEDS[k] for k in ("train", "val", "test", "video")}),
        "train_iterations": str(st.get("it", "")),
    }
    export_onnx(model, a.out, h, w, meta, a.opset, (h // 8) * (w // 8) + (h // 16) * (w // 16))


if __name__ == "__main__":
    main()
