# SPDX-License-Identifier: MIT OR Apache-2.0
"""Self-check of scripts/reference_detect.py against models/test/*.onnx.

Run: .venv/bin/python -m pytest scripts/test_reference.py -q
(regenerate the models first if needed: .venv/bin/python scripts/make_test_models.py)

Square placement: for a frame W x H letterboxed to 256 x 256,
gain = min(256/H, 256/W), pad_x = round((256 - W*gain)/2 - 0.1),
pad_y = round((256 - H*gain)/2 - 0.1); window (i, j) covers model pixels
[8j, 8j+32) x [8i, 8i+32), i.e. frame square
    x0 = (8j - pad_x) / gain,  y0 = (8i - pad_y) / gain,  side = 32 / gain.
640x480: gain 0.4, pad (0, 32) -> x0 = 20j, y0 = 20i - 80, side 80 (needs 4 <= i <= 24).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "models", "test")
sys.path.insert(0, HERE)

import reference_detect as rd  # noqa: E402

WHITE_IJ = (8, 5)
RED_IJ = (14, 20)


def square_rect(i, j, w=640, h=480, imgsz=256):
    gain = min(imgsz / h, imgsz / w)
    pad_x = round((imgsz - w * gain) / 2 - 0.1)
    pad_y = round((imgsz - h * gain) / 2 - 0.1)
    x0 = (8 * j - pad_x) / gain
    y0 = (8 * i - pad_y) / gain
    side = 32 / gain
    return x0, y0, x0 + side, y0 + side


def make_frame(w=640, h=480, red=True):
    img = np.zeros((h, w, 3), dtype=np.uint8)
    x0, y0, x1, y1 = (int(round(v)) for v in square_rect(*WHITE_IJ, w, h))
    img[y0:y1, x0:x1] = 255
    if red:
        x0, y0, x1, y1 = (int(round(v)) for v in square_rect(*RED_IJ, w, h))
        img[y0:y1, x0:x1] = (255, 0, 0)
    return img


def model(name):
    path = os.path.join(MODELS, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} missing: run scripts/make_test_models.py")
    return path


def check_two(res, w=640, h=480):
    dets = res["detections"]
    assert len(dets) == 2, dets
    by_cls = {d["class_id"]: d for d in dets}
    assert set(by_cls) == {0, 1}
    assert by_cls[0]["label"] == "white_square" and by_cls[1]["label"] == "red_square"
    for cid, ij in ((0, WHITE_IJ), (1, RED_IJ)):
        d = by_cls[cid]
        assert d["confidence"] == pytest.approx(0.99753, abs=1e-3)
        np.testing.assert_allclose(d["box"], square_rect(*ij, w, h), atol=1.0)
    confs = [d["confidence"] for d in dets]
    assert confs == sorted(confs, reverse=True)


def test_letterbox_exact():
    img = make_frame()
    x = rd.preprocess(img, (256, 256), 3)
    assert x.shape == (1, 3, 256, 256) and x.dtype == np.float32
    # pad rows are 114/255, white square exactly on window (8, 5)
    assert np.allclose(x[0, :, :32, :], 114 / 255) and np.allclose(x[0, :, 224:, :], 114 / 255)
    i, j = WHITE_IJ
    assert np.all(x[0, :, 8 * i:8 * i + 32, 8 * j:8 * j + 32] == 1.0)
    assert np.all(x[0, :, 8 * i - 1, 8 * j:8 * j + 32] == 0.0)
    assert np.all(x[0, :, 8 * i + 32, 8 * j:8 * j + 32] == 0.0)
    assert np.all(x[0, :, 8 * i:8 * i + 32, 8 * j - 1] == 0.0)
    assert np.all(x[0, :, 8 * i:8 * i + 32, 8 * j + 32] == 0.0)


@pytest.mark.parametrize(
    "name,layout",
    [
        ("squares_v8.onnx", "v8"),
        ("squares_v5.onnx", "v5"),
        ("squares_e2e.onnx", "e2e"),
        ("squares_v8_dynamic.onnx", "v8"),
    ],
)
def test_layouts(name, layout):
    res = rd.detect(model(name), make_frame())
    assert res["layout"] == layout
    assert res["input_size"] == [256, 256]
    check_two(res)


@pytest.mark.parametrize("w,h", [(320, 240), (256, 256)])
def test_other_frame_sizes(w, h):
    res = rd.detect(model("squares_v8.onnx"), make_frame(w, h))
    check_two(res, w, h)


def test_layout_override():
    res = rd.detect(model("squares_v8.onnx"), make_frame(), layout="v8")
    check_two(res)


def test_gray_model():
    frame = make_frame(red=False)[:, :, 0].copy()  # GRAY8, white square only
    res = rd.detect(model("squares_v8_gray.onnx"), frame)
    assert res["layout"] == "v8"
    dets = res["detections"]
    assert len(dets) == 1
    assert dets[0]["class_id"] == 0 and dets[0]["label"] == "white_square"
    np.testing.assert_allclose(dets[0]["box"], square_rect(*WHITE_IJ), atol=1.0)


def test_gray_frame_on_rgb_model():
    frame = make_frame(red=False)[:, :, 0].copy()
    res = rd.detect(model("squares_v8.onnx"), frame)
    assert [d["class_id"] for d in res["detections"]] == [0]


def test_conf_threshold_strict_and_empty():
    res = rd.detect(model("squares_v8.onnx"), np.zeros((480, 640, 3), np.uint8))
    assert res["detections"] == []
    res = rd.detect(model("squares_v8.onnx"), make_frame(), conf=0.999)
    assert res["detections"] == []


def test_bad_models():
    with pytest.raises(ValueError):
        rd.ReferenceDetector(model("bad_not_image.onnx"))
    det = rd.ReferenceDetector(model("bad_layout.onnx"))
    with pytest.raises(ValueError):
        det.detect(make_frame())


def test_nms_classwise():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    cls = np.array([0, 0, 1, 0])
    keep = rd.nms(boxes + (cls * rd.MAX_WH)[:, None], scores, 0.45)
    assert keep.tolist() == [0, 2, 3]


@pytest.mark.parametrize("fmt", ["RGB", "GRAY8"])
def test_cli_raw(tmp_path, fmt):
    frame = make_frame(red=(fmt == "RGB"))
    if fmt == "GRAY8":
        frame = frame[:, :, 0].copy()
    raw = tmp_path / "frame.raw"
    frame.tofile(raw)
    name = "squares_v8.onnx" if fmt == "RGB" else "squares_v8_gray.onnx"
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "reference_detect.py"), "--model", model(name),
         "--raw", str(raw), "--width", "640", "--height", "480", "--format", fmt],
        check=True, capture_output=True, text=True,
    ).stdout
    res = json.loads(out)
    assert res["layout"] == "v8" and res["input_size"] == [256, 256]
    if fmt == "RGB":
        check_two(res)
    else:
        assert [d["class_id"] for d in res["detections"]] == [0]


def test_cli_image(tmp_path):
    import cv2

    png = tmp_path / "frame.png"
    cv2.imwrite(str(png), cv2.cvtColor(make_frame(), cv2.COLOR_RGB2BGR))
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "reference_detect.py"), "--model", model("squares_e2e.onnx"),
         "--image", str(png)],
        check=True, capture_output=True, text=True,
    ).stdout
    res = json.loads(out)
    assert res["layout"] == "e2e"
    check_two(res)
