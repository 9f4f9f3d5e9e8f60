#!/usr/bin/env python3
"""Load the weights of an exported detector (ONNX, batch-norm folded into the convolutions)
back into ``model.Detector``, so that training can start from an earlier model (for example
the synthetic-only 1.x model as pretraining for the NEU-DET fine-tuning).

    python training/init_from_onnx.py --onnx models/surface-defects.onnx --out training/runs/init.pt

Convolutions are matched in execution order (a forward hook records PyTorch's, the ONNX graph
lists its own topologically) and their shapes checked; each folded batch norm becomes an
identity one (mean 0, variance 1 - eps, gamma 1) with the folded bias as beta.  The result is
checked: PyTorch and ONNX Runtime must agree on a random input.
"""
import argparse
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Conv, Detector  # noqa: E402


def conv_order(model, h, w):
    order = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, h, w))
    for hk in hooks:
        hk.remove()
    return order


def bn_pairs(model):
    """{conv: the batch norm right after it}: ``model.Conv`` blocks and (conv, bn, ...) Sequentials."""
    bn_of = {}
    for m in model.modules():
        if isinstance(m, Conv):
            bn_of[m.conv] = m.bn
        elif isinstance(m, nn.Sequential):
            for a, b in zip(m, list(m)[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    bn_of[a] = b
    return bn_of


def load_convs(onnx_path, torch_convs, bn_of, allow_extra=False):
    """Copies the ONNX graph's folded convolutions into ``torch_convs`` (execution order);
    with ``allow_extra`` the graph may hold more convolutions after them (a backbone's)."""
    g = onnx.load(onnx_path).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    onnx_convs = [n for n in g.node if n.op_type == "Conv"]
    if len(torch_convs) != len(onnx_convs) and not (allow_extra and len(onnx_convs) > len(torch_convs)):
        raise SystemExit(f"{onnx_path}: {len(onnx_convs)} convolutions, the model has {len(torch_convs)}")
    with torch.no_grad():
        for tc, node in zip(torch_convs, onnx_convs):
            wt = inits[node.input[1]]
            b = inits[node.input[2]] if len(node.input) > 2 else np.zeros(wt.shape[0], np.float32)
            if tuple(tc.weight.shape) != wt.shape:
                raise SystemExit(f"{node.name}: shape {wt.shape}, model {tuple(tc.weight.shape)}")
            tc.weight.copy_(torch.from_numpy(wt))
            if tc.bias is not None:
                tc.bias.copy_(torch.from_numpy(b))
            else:
                bn = bn_of[tc]
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(b))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)


def load(onnx_path, model=None):
    model = model or Detector()
    load_convs(onnx_path, conv_order(model, 384, 640), bn_pairs(model))
    return model


def check(model, onnx_path):
    import onnxruntime as ort
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    x = torch.rand(1, 3, int(shape[2]), int(shape[3]))
    model.eval()
    model.export = True
    with torch.no_grad():
        ref = model(x).numpy()
    model.export = False
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    return float(np.abs(out[:, 4:] - ref[:, 4:]).max()), float(np.abs(out[:, :4] - ref[:, :4]).max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", default="models/surface-defects.onnx")
    ap.add_argument("--out", default="training/runs/init.pt")
    a = ap.parse_args()
    model = load(a.onnx)
    ds, db = check(model, a.onnx)
    print(f"{a.onnx}: loaded; onnxruntime vs torch: scores {ds:.2e}, boxes {db:.2e}")
    assert ds < 1e-3 and db < 0.05
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    torch.save({"model": model.state_dict(), "it": 0}, a.out)


if __name__ == "__main__":
    main()
