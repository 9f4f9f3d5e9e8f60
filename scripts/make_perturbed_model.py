#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Write a perturbed copy of a YOLO detector, for challenger tests (tests/challenger.rs).

The copy adds a fixed offset to each class's logit before the final Sigmoid (+OFFSET for
even class ids, -OFFSET for odd ones): the boxes stay, the scores move, so that a challenger
finds some detections production does not and misses some it does. Everything else
(weights, metadata) is the parent's; the output is deterministic.

    .venv/bin/python scripts/make_perturbed_model.py models/surface-defects.onnx \\
        tests/data/surface-defects-perturbed.onnx
"""

import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

OFFSET = 0.5


def perturb(source: str, target: str) -> None:
    model = onnx.load(source)
    graph = model.graph
    sigmoids = [n for n in graph.node if n.op_type == "Sigmoid"]
    final = sigmoids[-1]
    classes = graph.output[0].type.tensor_type.shape.dim[1].dim_value - 4
    offsets = np.array(
        [OFFSET if c % 2 == 0 else -OFFSET for c in range(classes)], dtype=np.float32
    )
    graph.initializer.append(numpy_helper.from_array(offsets, "perturb_offsets"))
    shifted = final.input[0] + "_perturbed"
    add = helper.make_node("Add", [final.input[0], "perturb_offsets"], [shifted], name="/PerturbAdd")
    final.input[0] = shifted
    index = list(graph.node).index(final)
    graph.node.insert(index, add)
    onnx.checker.check_model(model)
    onnx.save(model, target)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    perturb(sys.argv[1], sys.argv[2])
