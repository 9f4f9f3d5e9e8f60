"""training/neu_det.py: NEU-DET's Pascal VOC layout in, YOLO labels and COCO files out, split by
file number; written on a few VOC files made here (the real images are never committed)."""
import json
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "training"))
import neu_det  # noqa: E402

VOC = """<annotation><folder>x</folder><filename>{name}.jpg</filename>
<size><width>{w}</width><height>{h}</height><depth>1</depth></size>{objects}</annotation>"""
OBJ = """<object><name>{cls}</name><pose>Unspecified</pose><truncated>0</truncated>
<difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>
<ymax>{y2}</ymax></bndbox></object>"""


def write(src, sub_img, sub_xml, name, objects, w=200, h=200):
    os.makedirs(os.path.join(src, sub_img), exist_ok=True)
    os.makedirs(os.path.join(src, sub_xml), exist_ok=True)
    cv2.imwrite(os.path.join(src, sub_img, name + ".jpg"), np.full((h, w), 128, np.uint8))
    objs = "".join(OBJ.format(cls=c, difficult=d, x1=a, y1=b, x2=x, y2=y) for c, d, a, b, x, y in objects)
    with open(os.path.join(src, sub_xml, name + ".xml"), "w") as f:
        f.write(VOC.format(name=name, w=w, h=h, objects=objs))


def test_converts_splits_spellings_difficult_and_second_classes(tmp_path):
    src, out = str(tmp_path / "neu"), str(tmp_path / "out")
    write(src, "IMAGES", "ANNOTATIONS", "crazing_10", [("crazing", 0, 2, 2, 193, 194)])
    write(src, "IMAGES", "ANNOTATIONS", "rolled-in_scale_15", [("rolled_in_scale", 1, 11, 21, 60, 100),
                                                              ("Patches", 0, 100, 100, 150, 180)])
    write(src, "Validation_Images", "Validation_Annotations", "scratches_7", [("scratches", 0, 1, 1, 200, 40)])
    write(src, "IMAGES", "ANNOTATIONS", "inclusion_3", [("inclusion", 0, 50, 60, 70, 90)], w=100, h=80)
    summary = neu_det.convert(src, out)
    assert {s: v["images"] for s, v in summary.items()} == {"train": 2, "val": 1, "test": 1}
    assert summary["val"]["difficult"] == 1 and summary["val"]["boxes"] == 2
    test = json.load(open(os.path.join(out, "test.coco.json")))
    assert [im["file_name"] for im in test["images"]] == ["crazing_10.jpg"]
    assert test["annotations"][0]["bbox"] == [1.0, 1.0, 192.0, 193.0]  # VOC 1-based inclusive -> edges
    val = json.load(open(os.path.join(out, "val.coco.json")))
    cats = sorted(a["category_id"] for a in val["annotations"])
    assert cats == [2, 4]  # a second class besides the file name's one, kept
    assert [a["difficult"] for a in val["annotations"]] == [1, 0]
    assert [c["name"] for c in val["categories"]] == neu_det.CLASSES
    lines = open(os.path.join(out, "val", "labels", "rolled-in_scale_15.txt")).read().split("\n")
    cls, cx, cy, w, h = lines[0].split()
    assert cls == "4" and abs(float(cx) - 0.175) < 1e-6 and abs(float(w) - 0.25) < 1e-6
    assert os.path.exists(os.path.join(out, "train", "images", "scratches_7.jpg"))
    inc = json.load(open(os.path.join(out, "train.coco.json")))
    small = [im for im in inc["images"] if im["file_name"] == "inclusion_3.jpg"][0]
    assert (small["width"], small["height"]) == (100, 80)  # read from the image itself
    # stable ids: the same image has the same id on every run
    assert small["id"] == neu_det.CLASSES.index("inclusion") * 1000 + 3
    assert neu_det.convert(src, out) == summary


def test_unknown_class_is_an_error(tmp_path):
    src = str(tmp_path / "neu")
    write(src, "IMAGES", "ANNOTATIONS", "crazing_1", [("rust", 0, 1, 1, 10, 10)])
    try:
        neu_det.convert(src, str(tmp_path / "out"))
    except ValueError as e:
        assert "rust" in str(e)
    else:
        raise AssertionError("an unknown class was accepted")


def test_split_by_file_number():
    assert [neu_det.split_of(n) for n in (10, 300, 5, 295, 1, 9, 11)] == \
        ["test", "test", "val", "val", "train", "train", "train"]
    assert neu_det.parse_stem("rolled-in_scale_12") == ("rolled-in_scale", 12)
    assert neu_det.class_index("Rolled-in Scale") == neu_det.class_index("rolled_in_scale") == 4


def test_perturbations_move_boxes_with_the_pixels():
    """Every geometric perturbation of training/neu_perturb.py moves the truth with the image: a
    bright box drawn on a dark image is found where the perturbed truth says."""
    import neu_perturb
    img = np.full((200, 200), 20, np.uint8)
    img[30:80, 120:190] = 240  # box x 120..190, y 30..80
    boxes = [[120, 30, 190, 80, 3]]
    rng = np.random.default_rng(0)
    bg = np.full((720, 1280), 20, np.uint8)
    for name in neu_perturb.PERTURBATIONS:
        for _, out, bs in neu_perturb.perturb(name, img, boxes, rng, bg):
            if not bs:
                continue
            (x1, y1, x2, y2, c), = bs
            assert c == 3
            ys, xs = np.nonzero(out > 130)
            found = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert max(abs(a - b) for a, b in zip(found, (x1, y1, x2, y2))) <= 2, (name, found, bs)


def test_retrain_and_card_scripts_parse_and_need_the_dataset(tmp_path):
    """The one-command recipes parse with bash -n, and retrain.sh refuses to start (before any
    install or training) without NEU_DET_DIR, naming it."""
    import subprocess

    root = os.path.join(os.path.dirname(__file__), "..", "..")
    for script in ("training/retrain.sh", "scripts/model_card_figures.sh"):
        subprocess.run(["bash", "-n", os.path.join(root, script)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "NEU_DET_DIR"}
    env["VENV"] = str(tmp_path / "no-venv")
    r = subprocess.run(["bash", os.path.join(root, "training/retrain.sh")], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "NEU_DET_DIR" in r.stderr
    assert not (tmp_path / "no-venv").exists()
