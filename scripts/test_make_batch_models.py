# SPDX-License-Identifier: MIT OR Apache-2.0
"""scripts/make_batch_models.py: dynamic-batch copies keep each frame's output; a graph that
hard-codes batch 1 is refused; the YOLOv8n-size model has YOLOv8n's size."""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_batch_models as mbm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_dynamic_copy_of_the_bundled_model(tmp_path):
    out = tmp_path / "batch.onnx"
    mbm.dynamic_copy(os.path.join(ROOT, "models", "surface-defects.onnx"), str(out))
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"


def test_a_graph_that_hard_codes_batch_one_is_refused(tmp_path):
    # squares_v8 reshapes its scores to [1, nc, -1]: a batch of 3 cannot keep its frames apart.
    with pytest.raises(Exception):
        mbm.dynamic_copy(os.path.join(ROOT, "models", "test", "squares_v8.onnx"), str(tmp_path / "x.onnx"))


def test_yolov8n_size():
    model, gflops = mbm.yolov8n(640, "1")
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert 3.0e6 < params < 3.4e6  # YOLOv8n: 3.2 M
    assert 8.0 < gflops < 9.5  # YOLOv8n: 8.7 GFLOPs at 640
    small, _ = mbm.yolov8n(64, "dynamic")
    session = ort.InferenceSession(small.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"images": np.zeros((2, 3, 64, 64), np.float32)})
    assert y.shape == (2, 84, 84)  # 8x8 + 4x4 + 2x2 anchors
