"""Classification and anomaly models: the test stand-ins of scripts/make_task_test_models.py
(signatures of a real Ultralytics ``-cls`` export and of Anomalib's and our anomaly exports,
with known answers), the reference preprocessing of training/cls_preprocess.py (bit-exact
with PIL), and the bundled models/neu-classifier.onnx and models/surface-anomaly.onnx."""
import ast
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODELS = os.path.join(ROOT, "models")
TEST_MODELS = os.path.join(MODELS, "test")
sys.path.insert(0, os.path.join(ROOT, "training"))
from cls_preprocess import classify_preprocess, pil_resize_bilinear, resized_size  # noqa: E402

TASK_FILES = ["cls_colour_224.onnx", "cls_colour_224_logits.onnx", "anomalib_v2_style.onnx", "anomaly_ours.onnx",
              "anomaly_cells.onnx"]
ULTRALYTICS_KEYS = ["description", "author", "date", "version", "license", "docs", "stride", "task", "batch",
                    "imgsz", "names", "args", "channels"]


def session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def meta(path):
    return {p.key: p.value for p in onnx.load(path).metadata_props}


def grid(i):
    """The uint8 value of grid level i (0..9) of the colour classifier."""
    return int(round(255 * i / 9))


def frame(h, w, rgb):
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


# ----------------------------------------------------------------------------- stand-ins
def test_committed_stand_ins_are_what_the_script_makes(tmp_path):
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_task_test_models.py"), "--out",
                    str(tmp_path), "--no-verify"], check=True, capture_output=True)
    for name in TASK_FILES:
        with open(os.path.join(TEST_MODELS, name), "rb") as a, open(tmp_path / name, "rb") as b:
            assert a.read() == b.read(), f"models/test/{name} differs from what the script makes"
        assert os.path.getsize(tmp_path / name) < 64 * 1024


def test_colour_classifier_has_an_ultralytics_cls_signature():
    path = os.path.join(TEST_MODELS, "cls_colour_224.onnx")
    s = session(path)
    (i,), (o,) = s.get_inputs(), s.get_outputs()
    assert (i.name, i.shape, i.type) == ("images", [1, 3, 224, 224], "tensor(float)")
    assert (o.name, o.shape, o.type) == ("output0", [1, 1000], "tensor(float)")
    m = meta(path)
    assert list(m) == ULTRALYTICS_KEYS
    assert (m["task"], m["stride"], m["batch"], m["imgsz"], m["channels"]) == ("classify", "1", "1", "[224, 224]", "3")
    names = ast.literal_eval(m["names"])
    assert len(names) == 1000 and names[825] == "r8g2b5" and names[999] == "white"
    # apostrophes make Python's repr use double quotes, as in real ImageNet names
    assert names[444] == "jack-o'-lantern" and "\"jack-o'-lantern\"" in m["names"]
    assert ast.literal_eval(m["args"])["nms"] is False


@pytest.mark.parametrize("rgb,cls", [((0, 0, 0), 0), ((255, 255, 255), 999), ((255, 0, 0), 900),
                                     ((grid(8), grid(2), grid(5)), 825), ((113, 113, 113), 444),
                                     ((142, 142, 142), 555), ((grid(1), grid(9), grid(3)), 193)])
def test_colour_classifier_answers_the_grid_colour(rgb, cls):
    s = session(os.path.join(TEST_MODELS, "cls_colour_224.onnx"))
    p = s.run(None, {"images": classify_preprocess(frame(480, 640, rgb), 224)})[0][0]
    assert int(p.argmax()) == cls and p.max() > 0.9999 and abs(p.sum() - 1) < 1e-5


def test_colour_classifier_sees_only_the_centre_crop():
    # red bands left and right (80 px of 640), blue centre: after "shortest side to 224, centre
    # crop 224" the bands are cut away (class 9, blue); a stretched whole frame would average to
    # r 0.25, b 0.75 -> class 207
    img = frame(480, 640, (0, 0, 255))
    img[:, :80] = img[:, -80:] = (255, 0, 0)
    s = session(os.path.join(TEST_MODELS, "cls_colour_224.onnx"))
    assert int(s.run(None, {"images": classify_preprocess(img, 224)})[0].argmax()) == 9
    stretched = np.resize(img[::2, ::2].mean((0, 1)) / 255, (1, 3, 1, 1)).astype(np.float32)
    assert int(s.run(None, {"images": np.broadcast_to(stretched, (1, 3, 224, 224)).copy()})[0].argmax()) == 207


def test_logits_variant_is_the_same_classifier_without_softmax():
    a = session(os.path.join(TEST_MODELS, "cls_colour_224.onnx"))
    b = session(os.path.join(TEST_MODELS, "cls_colour_224_logits.onnx"))
    assert b.get_outputs()[0].name == "output0" and b.get_outputs()[0].shape == [1, 1000]
    assert meta(os.path.join(TEST_MODELS, "cls_colour_224_logits.onnx"))["task"] == "classify"
    for rgb in ((grid(3), grid(7), grid(1)), (10, 200, 90), (128, 128, 128)):
        x = classify_preprocess(frame(300, 400, rgb), 224)
        p, lg = a.run(None, {"images": x})[0], b.run(None, {"images": x})[0]
        assert lg.min() < 0 or lg.sum() > 1.01  # not a distribution: the element must apply softmax
        e = np.exp(lg - lg.max())
        assert np.allclose(e / e.sum(), p, atol=1e-6) and lg.argmax() == p.argmax()


def test_anomalib_v2_style_export():
    path = os.path.join(TEST_MODELS, "anomalib_v2_style.onnx")
    s = session(path)
    assert [(i.name, i.shape) for i in s.get_inputs()] == [("input", ["batch_size", 3, "height", "width"])]
    assert [(o.name, o.shape, o.type) for o in s.get_outputs()] == [
        ("pred_score", ["batch_size"], "tensor(float)"), ("pred_label", ["batch_size"], "tensor(bool)"),
        ("anomaly_map", ["batch_size", 1, 256, 256], "tensor(float)"),
        ("pred_mask", ["batch_size", 1, 256, 256], "tensor(bool)")]
    assert meta(path) == {}  # Anomalib writes no metadata into the ONNX file
    for h, w in ((256, 256), (300, 500), (1080, 1920)):
        x = np.full((1, 3, h, w), 0.3, np.float32)
        x[:, :, h // 4:h // 2, w // 4:w // 2] = 0.9  # brighter than the 0.7 level: anomalous
        score, label, amap, mask = s.run(None, {"input": x})
        assert abs(score[0] - ((0.9 - 0.7) / 0.8 + 0.5)) < 1e-5 and label[0]
        assert abs(amap[0, 0, 200, 200]) < 1e-6  # (0.3 - 0.7) / 0.8 + 0.5 = 0
        ys, xs = np.nonzero(mask[0, 0])
        assert abs(ys.min() - 64) <= 1 and abs(ys.max() - 127) <= 1 and abs(xs.min() - 64) <= 1
        assert (mask[0, 0] == (amap[0, 0] > 0.5)).all()
    score, label, _, mask = s.run(None, {"input": np.full((1, 3, 100, 100), 0.5, np.float32)})
    assert not label[0] and not mask.any() and abs(score[0] - 0.25) < 1e-5


def test_anomaly_ours_stand_in():
    path = os.path.join(TEST_MODELS, "anomaly_ours.onnx")
    s = session(path)
    assert [(i.name, i.shape) for i in s.get_inputs()] == [("images", [1, 3, 64, 112])]
    assert [(o.name, o.shape) for o in s.get_outputs()] == [("pred_score", [1, 1]), ("anomaly_map", [1, 1, 64, 112])]
    m = meta(path)
    assert (m["task"], m["names"], m["imgsz"], m["image_threshold"], m["pixel_threshold"]) == \
        ("anomaly", "{0: 'anomaly'}", "[64, 112]", "7.0", "7.0")
    x = np.full((1, 3, 64, 112), 0.2, np.float32)
    x[..., 5:9, 50:60] = 0.75
    score, amap = s.run(None, {"images": x})
    assert abs(score[0, 0] - 7.5) < 1e-5 and ((amap[0, 0] > 7.0).sum() == 40)


# ----------------------------------------------------------------------------- preprocessing reference
def test_pil_resize_reimplementation_matches_pillow():
    # expected values written by Pillow 13.0 (Image.resize(size, Image.BILINEAR)) from this image
    img = ((np.arange(9 * 13 * 3).reshape(9, 13, 3) * 37) % 256).astype(np.uint8)
    small = pil_resize_bilinear(img, 7, 5)
    assert small[..., 0].tolist() == [[85, 146, 134, 110, 104, 161, 137], [128, 116, 93, 145, 131, 123, 100],
                                      [158, 138, 135, 116, 99, 141, 139], [131, 107, 150, 143, 135, 117, 110],
                                      [126, 158, 132, 103, 152, 158, 129]]
    assert small[0, :, 1].tolist() == [109, 88, 148, 138, 114, 104, 164] and int(small.sum(dtype=np.int64)) == 13356
    big = pil_resize_bilinear(img, 17, 11)
    assert big[0, :, 0].tolist() == [0, 72, 157, 196, 86, 155, 120, 69, 154, 43, 68, 153, 222, 112, 151, 146, 52]
    assert big[-1, :, 2].tolist() == [98, 170, 149, 84, 168, 73, 82, 167, 252, 141, 166, 175, 80, 164, 99, 78, 150]
    assert int(big.sum(dtype=np.int64)) == 71106


def test_classify_preprocess_geometry():
    assert resized_size(1080, 1920, 224) == (224, 398) and resized_size(1920, 1080, 224) == (398, 224)
    assert resized_size(200, 200, 192) == (192, 192)
    img = np.zeros((200, 200, 3), np.uint8)
    img[50, 60] = (255, 10, 20)
    x = classify_preprocess(img, 200)  # same size: no resampling at all
    assert x.shape == (1, 3, 200, 200) and x.dtype == np.float32 and x[0, 0, 50, 60] == 1.0
    # 298 wide after the resize: (298 - 224) / 2 = 37 -> columns 37..260 kept
    wide = np.zeros((480, 640, 3), np.uint8)
    wide[:, 320:] = 255
    x = classify_preprocess(wide, 224)
    ref = pil_resize_bilinear(wide, 298, 224)[:, 37:261].transpose(2, 0, 1) / 255.0
    assert np.array_equal(x[0], ref.astype(np.float32))


# ----------------------------------------------------------------------------- bundled models
NEU = os.path.join(MODELS, "neu-classifier.onnx")
ANOMALY = os.path.join(MODELS, "surface-anomaly.onnx")


def test_neu_classifier_signature_and_metadata():
    s = session(NEU)
    (i,), (o,) = s.get_inputs(), s.get_outputs()
    assert i.name == "images" and i.shape[:2] == [1, 3] and i.shape[2] == i.shape[3]
    assert (o.name, o.shape) == ("output0", [1, 6])
    m = meta(NEU)
    for k in ("description", "author", "date", "version", "license", "stride", "task", "batch", "imgsz", "names"):
        assert k in m, k
    assert m["task"] == "classify" and ast.literal_eval(m["imgsz"]) == [i.shape[2], i.shape[3]]
    assert ast.literal_eval(m["names"]) == {0: "crazing", 1: "inclusion", 2: "patches", 3: "pitted_surface",
                                            4: "rolled-in_scale", 5: "scratches"}
    p = s.run(None, {"images": np.full((1, 3, i.shape[2], i.shape[3]), 0.5, np.float32)})[0]
    assert abs(p.sum() - 1) < 1e-5 and (p >= 0).all()
    assert os.path.getsize(NEU) < 15e6


def test_surface_anomaly_signature_and_metadata():
    s = session(ANOMALY)
    (i,) = s.get_inputs()
    assert i.name == "images" and i.shape[:2] == [1, 3]
    h, w = i.shape[2:]
    assert [(o.name, o.shape) for o in s.get_outputs()] == [("pred_score", [1, 1]), ("anomaly_map", [1, 1, h, w])]
    m = meta(ANOMALY)
    assert m["task"] == "anomaly" and m["names"] == "{0: 'anomaly'}" and ast.literal_eval(m["imgsz"]) == [h, w]
    assert float(m["pixel_threshold"]) > 0 and float(m["image_threshold"]) > 0
    ops = {n.op_type for n in onnx.load(ANOMALY).graph.node}
    assert {"MatMul", "ReduceMin"} <= ops and os.path.getsize(ANOMALY) < 15e6


def test_surface_anomaly_separates_regenerated_held_out_images():
    """A few images of the card's held-out test set, regenerated from their seeds: defective
    ones score above the recommended image threshold more often than clean ones, and the map
    peaks inside the defect."""
    import anomaly as A

    s = session(ANOMALY)
    m = meta(ANOMALY)
    thr = float(m["image_threshold"])
    h, w = s.get_inputs()[0].shape[2:]
    scores = {False: [], True: []}
    hits = 0
    for idx in range(12):
        bgr, mask = A.render("test", idx)
        score, amap = s.run(None, {"images": A.to_input(bgr, (h, w))})
        scores[bool(mask.any())].append(float(score[0, 0]))
        if mask.any():
            import cv2
            full = cv2.resize(amap[0, 0], (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_LINEAR)
            y, x = np.unravel_index(np.argmax(full), full.shape)
            grown = cv2.dilate(mask.astype(np.uint8), np.ones((25, 25), np.uint8))
            hits += bool(grown[y, x])
    assert len(scores[True]) == 6 and len(scores[False]) == 6
    assert sum(v >= thr for v in scores[True]) >= 5 and sum(v >= thr for v in scores[False]) <= 1, (scores, thr)
    assert hits >= 5
    assert json.loads(json.dumps(scores))  # plain floats
