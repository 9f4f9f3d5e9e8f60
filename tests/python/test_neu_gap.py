"""training/neu_gap.py: where a NEU-DET detector loses AP@0.5, on a replay folder made by hand
whose every loss is known: a box drawn wider than the truth (found at IoU 0.3, not at 0.5), and a
right box with the wrong class (found class-agnostically, and once the image's class is given)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
NAMES = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]


def test_gap_separates_box_extent_from_class(tmp_path):
    pytest.importorskip("pycocotools")
    images = [{"id": 1, "file_name": "crazing_10.jpg", "width": 200, "height": 200},
              {"id": 2, "file_name": "inclusion_20.jpg", "width": 200, "height": 200},
              {"id": 3, "file_name": "patches_30.jpg", "width": 200, "height": 200}]
    truth = {"images": images, "categories": [{"id": i, "name": n} for i, n in enumerate(NAMES)],
             "annotations": [
                 {"id": 1, "image_id": 1, "category_id": 0, "bbox": [20, 20, 60, 60], "area": 3600, "iscrowd": 0},
                 {"id": 2, "image_id": 2, "category_id": 1, "bbox": [50, 50, 40, 40], "area": 1600, "iscrowd": 0},
                 {"id": 3, "image_id": 3, "category_id": 2, "bbox": [10, 10, 80, 80], "area": 6400, "iscrowd": 0}]}
    predictions = [
        {"image_id": 1, "category_id": 0, "bbox": [20, 20, 60, 150], "score": 0.9},  # IoU 0.4: too tall
        {"image_id": 2, "category_id": 2, "bbox": [50, 50, 40, 40], "score": 0.6},  # right box, patches
        {"image_id": 3, "category_id": 2, "bbox": [10, 10, 80, 80], "score": 0.7}]  # right
    (tmp_path / "truth.coco.json").write_text(json.dumps(truth))
    (tmp_path / "predictions.coco.json").write_text(json.dumps(predictions))
    out = tmp_path / "gap.json"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "training", "neu_gap.py"), str(tmp_path),
                        "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ap = json.loads(out.read_text())["ap"]
    # crazing: found at 0.1 and 0.3, lost at 0.5 and 0.7; inclusion: never found with its class
    assert ap["AP@0.3"]["crazing"] == pytest.approx(1.0) and ap["AP@0.5"]["crazing"] == pytest.approx(0.0)
    assert ap["AP@0.5"]["inclusion"] == pytest.approx(0.0) and ap["AP@0.5"]["patches"] == pytest.approx(1.0)
    # class-agnostic: two of three boxes found, the first (highest score) a false positive
    assert 0.3 < ap["class-agnostic AP@0.5"]["mean"] < 1.0
    # the image's class mends inclusion and leaves patches and crazing as they were
    given = ap["image's class given to every box, AP@0.5"]
    assert given["inclusion"] == pytest.approx(1.0) and given["patches"] == pytest.approx(1.0)
    assert given["crazing"] == pytest.approx(0.0)
    only = ap["only boxes of the image's class, AP@0.5"]
    assert only["inclusion"] == pytest.approx(0.0) and only["patches"] == pytest.approx(1.0)


def test_gap_refuses_files_not_named_after_a_class(tmp_path):
    truth = {"images": [{"id": 1, "file_name": "frame_0001.jpg", "width": 10, "height": 10}],
             "categories": [{"id": i, "name": n} for i, n in enumerate(NAMES)], "annotations": []}
    (tmp_path / "truth.coco.json").write_text(json.dumps(truth))
    (tmp_path / "predictions.coco.json").write_text("[]")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "training", "neu_gap.py"), str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "frame_0001.jpg is not named <class>_<n>" in r.stderr
