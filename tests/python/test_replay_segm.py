"""defect-replay scores a segmentation model's masks as pycocotools does: the same predictions
(its predictions.coco.json, boxes removed so that the area ranges use the masks' area, as
Detectron2 does) scored by pycocotools' COCOeval "segm" against the same truth give the mask
AP@0.5, AP@0.75, AP@[.5:.95], the per-class APs and the small / medium / large APs that
report.json gives, to 1e-9. Truth as COCO polygons, as RLE (compressed strings and counts
lists), with crowd regions, over several images and two classes; and as PNG instance masks.

Model: models/test/seg_squares.onnx (scripts/make_task_test_models.py: a box and a mask for
each red or blue square of a 40-px cell, the mask where the frame is bright), on 320x320
frames. The truth's outlines are the squares' moved by a pixel or two, so that mask IoUs
spread over the COCO thresholds and AP@[.5:.95] is neither 0 nor 1."""
import json
import pathlib
import subprocess

import cv2
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
REPLAY = ROOT / "target" / "debug" / "defect-replay"
MODEL = str(ROOT / "models/test/seg_squares.onnx")
SIZE = 320
CATEGORIES = [{"id": 3, "name": "red"}, {"id": 8, "name": "blue"}]


def squares():
    """Per image: (class index, x, y, side) of each square, and the frames."""
    rng = np.random.default_rng(11)
    out = []
    for k in range(14):
        image = rng.integers(5, 40, size=(SIZE, SIZE, 3), dtype=np.uint8)
        found = []
        for cell in rng.permutation(64)[: rng.integers(1, 6)]:
            side = int(rng.integers(18, 37))
            x = int(cell % 8) * 40 + int(rng.integers(0, 40 - side + 1))
            y = int(cell // 8) * 40 + int(rng.integers(0, 40 - side + 1))
            cls = int(rng.integers(0, 2))
            image[y : y + side, x : x + side] = (0, 0, 255) if cls == 0 else (255, 0, 0)  # BGR
            found.append((cls, x, y, side))
        out.append((image, found))
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from pycocotools import mask as mask_util

    root = tmp_path_factory.mktemp("segsquares")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(5)
    poly = {"info": {"description": "squares"}, "images": [], "annotations": [], "categories": CATEGORIES}
    rle = {"info": {"description": "squares"}, "images": [], "annotations": [], "categories": CATEGORIES}
    instances = []  # (stem, class name, mask) for the PNG truth
    for k, (image, found) in enumerate(squares()):
        name = f"s{k:03d}.png"
        cv2.imwrite(str(images / name), image)
        image_id = 100 + 7 * (13 - k)  # ids not in file order
        for coco in (poly, rle):
            coco["images"].append({"id": image_id, "file_name": name, "width": SIZE, "height": SIZE})
        for j, (cls, x, y, side) in enumerate(found):
            if k % 5 == 2 and j == 0:
                # A crowd region around the first square: ignored, with what is found in it.
                region = np.zeros((SIZE, SIZE), np.uint8)
                region[max(0, y - 3) : y + side + 3, max(0, x - 3) : x + side + 3] = 1
                r = mask_util.encode(np.asfortranarray(region))
                r["counts"] = r["counts"].decode("ascii")
                ann = {"id": 5000 + k, "image_id": image_id, "category_id": CATEGORIES[cls]["id"], "iscrowd": 1,
                       "bbox": [float(v) for v in mask_util.toBbox(r)], "area": float(mask_util.area(r)),
                       "segmentation": r}
                poly["annotations"].append(ann)
                rle["annotations"].append(ann)
                continue
            if k % 6 == 3 and j == 0:
                continue  # not in the truth: a false detection
            # The square's outline, each corner moved by up to 2.5 px.
            d = rng.uniform(-2.5, 2.5, size=8)
            outline = [x + d[0], y + d[1], x + side + d[2], y + d[3], x + side + d[4], y + side + d[5], x + d[6], y + side + d[7]]
            outline = [float(np.clip(v, 0, SIZE)) for v in outline]
            polygons = [outline]
            if j == 1:
                # Two parts of one object: a speck beside the square.
                polygons.append([float(x), float(y + side + 0.5), float(x + 2.5), float(y + side + 0.5), float(x + 2.5), float(y + side + 2.2)])
            r = mask_util.merge(mask_util.frPyObjects(polygons, SIZE, SIZE))
            area = float(mask_util.area(r))
            bbox = [float(v) for v in mask_util.toBbox(r)]
            ann_id = 1 + len(poly["annotations"])
            base = {"id": ann_id, "image_id": image_id, "category_id": CATEGORIES[cls]["id"], "iscrowd": 0, "bbox": bbox, "area": area}
            poly["annotations"].append({**base, "segmentation": polygons})
            m = mask_util.decode(r)
            if ann_id % 2:
                rle_seg = {"size": [SIZE, SIZE], "counts": r["counts"].decode("ascii")}
            else:
                flat = m.flatten(order="F")
                changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
                rle_seg = {"size": [SIZE, SIZE], "counts": np.diff(np.concatenate([[0], changes])).tolist()}
            rle["annotations"].append({**base, "segmentation": rle_seg})
            instances.append((name[:-4], CATEGORIES[cls]["name"], m))
        if k % 4 == 1:
            # A defect the model cannot see (nothing drawn there): a miss, so AP@0.5 < 1.
            cls = k % 2
            x, y = 300 - 8 * k, 12 + 9 * k
            missed = [[float(x), float(y), x + 14.5, float(y), x + 14.5, y + 9.5, float(x), y + 9.5]]
            r = mask_util.merge(mask_util.frPyObjects(missed, SIZE, SIZE))
            base = {"id": 1 + len(poly["annotations"]), "image_id": image_id, "category_id": CATEGORIES[cls]["id"],
                    "iscrowd": 0, "bbox": [float(v) for v in mask_util.toBbox(r)], "area": float(mask_util.area(r))}
            poly["annotations"].append({**base, "segmentation": missed})
            rle["annotations"].append({**base, "segmentation": {"size": [SIZE, SIZE], "counts": r["counts"].decode("ascii")}})
            instances.append((name[:-4], CATEGORIES[cls]["name"], mask_util.decode(r)))
    (root / "poly.json").write_text(json.dumps(poly))
    (root / "rle.json").write_text(json.dumps(rle))
    masks = root / "masks"
    for stem, cls, m in instances:
        folder = masks / cls
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.png"
        ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.exists() else np.zeros((SIZE, SIZE), np.uint16)
        ids[m > 0] = ids.max() + 1
        cv2.imwrite(str(path), ids.astype(np.uint16))
    return root


def replay(dataset, truth, out):
    result = subprocess.run(
        [str(REPLAY), "--model", MODEL, "--images", str(dataset / "images"), "--truth", str(truth),
         "--conf", "0.01", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "report.json").read_text()), result.stdout


def pycocotools_segm(truth_file, predictions_file):
    """COCOeval segm of the predictions without their boxes: stats and per-class
    (AP@0.5, AP@[.5:.95]) by category id."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    predictions = json.loads(pathlib.Path(predictions_file).read_text())
    for p in predictions:
        del p["bbox"]
    truth = COCO(str(truth_file))
    evaluation = COCOeval(truth, truth.loadRes(predictions), "segm")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    precision = evaluation.eval["precision"]  # [T, R, K, A, M]
    per_class = {}
    for k, cat in enumerate(evaluation.params.catIds):
        p = precision[:, :, k, 0, -1]
        per_class[cat] = None if (p[0] <= -1).all() else (float(p[0].mean()), float(p.mean()))
    return list(evaluation.stats), per_class


def check_parity(report, stats, per_class, category_of):
    masks = report["masks"]
    assert masks is not None, report.get("masks_not_scored")
    assert 0.1 < masks["map50_95"] < 0.95, "the data should make mask AP@[.5:.95] non-trivial"
    for ours, theirs in [(masks["map50_95"], stats[0]), (masks["map50"], stats[1]), (masks["map75"], stats[2])]:
        assert abs(ours - theirs) <= 1e-9, (ours, theirs)
    for ours, theirs in zip([masks["map50_95_small"], masks["map50_95_medium"], masks["map50_95_large"]], stats[3:6]):
        if theirs == -1:
            assert ours is None
        else:
            assert abs(ours - theirs) <= 1e-9, (ours, theirs)
    for c in masks["classes"]:
        theirs = per_class[category_of[c["name"]]]
        assert theirs is not None
        assert abs(c["ap50"] - theirs[0]) <= 1e-9, (c, theirs)
        assert abs(c["ap50_95"] - theirs[1]) <= 1e-9, (c, theirs)


CATEGORY_OF = {c["name"]: c["id"] for c in CATEGORIES}


@pytest.mark.parametrize("truth", ["poly.json", "rle.json"])
def test_mask_ap_equals_pycocotools(dataset, tmp_path, truth):
    report, table = replay(dataset, dataset / truth, tmp_path)
    assert "mask mAP@0.5" in table and "crowd regions" in table, table
    predictions = json.loads((tmp_path / "predictions.coco.json").read_text())
    assert predictions and all("segmentation" in p for p in predictions)
    stats, per_class = pycocotools_segm(dataset / truth, tmp_path / "predictions.coco.json")
    check_parity(report, stats, per_class, CATEGORY_OF)
    # The exported truth (masks as RLE, crowd regions kept) scores the same.
    assert pycocotools_segm(tmp_path / "truth.coco.json", tmp_path / "predictions.coco.json") == (stats, per_class)
    sizes = report["masks"]["sizes"]
    assert sizes["matched"] > 0.5 * sizes["truths"], sizes


def test_polygon_and_rle_truths_agree(dataset, tmp_path):
    """The polygons are rasterised exactly as pycocotools does: the RLE truth (made by
    pycocotools from them) gives the same figures."""
    a, _ = replay(dataset, dataset / "poly.json", tmp_path / "a")
    b, _ = replay(dataset, dataset / "rle.json", tmp_path / "b")
    assert a["masks"] == b["masks"]


def test_png_instance_masks(dataset, tmp_path):
    report, _ = replay(dataset, dataset / "masks", tmp_path)
    truth = json.loads((tmp_path / "truth.coco.json").read_text())
    stats, per_class = pycocotools_segm(tmp_path / "truth.coco.json", tmp_path / "predictions.coco.json")
    check_parity(report, stats, per_class, {c["name"]: c["id"] for c in truth["categories"]})


def test_a_truth_without_masks_is_said(dataset, tmp_path):
    boxes = json.loads((dataset / "poly.json").read_text())
    boxes["annotations"] = [a for a in boxes["annotations"] if not a["iscrowd"]]
    for a in boxes["annotations"]:
        del a["segmentation"]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    report, table = replay(dataset, tmp_path / "boxes.json", tmp_path / "out")
    assert report["masks"] is None and "masks not scored" in table
    # Some with and some without: an error naming one.
    mixed = json.loads((dataset / "poly.json").read_text())
    del mixed["annotations"][0]["segmentation"]
    (tmp_path / "mixed.json").write_text(json.dumps(mixed))
    result = subprocess.run(
        [str(REPLAY), "--model", MODEL, "--images", str(dataset / "images"), "--truth", str(tmp_path / "mixed.json")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f"annotation {mixed['annotations'][0]['id']}" in result.stderr and "no segmentation" in result.stderr
