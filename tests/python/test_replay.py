"""defect-replay: mAP agrees with pycocotools, the exports score identically against the user's
own COCO file, the threshold sweep's policy keeps its promise, the command line behaves like the
tools its users know (--help, --version, --flag=value, plain progress lines into a log), and bad
input (truth, options) is reported with the file, the id and the reason before any frame is
decoded.

The pycocotools check runs on the bundled model and recording, and with the squares test model
on synthetic frames: squares of the model's window size at random (unaligned) positions, so
that boxes are good but not perfect and AP@0.5:0.95 is not 1."""
import json
import pathlib
import subprocess
import time

import cv2
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
REPLAY = ROOT / "target" / "debug" / "defect-replay"
MODEL = str(ROOT / "models/test/squares_v8.onnx")


def squares_folder(root, name, count, width, height, squares):
    """`count` dark frames of width x height named `name` + number, with the squares that
    `squares(rng)` places, a list of (class, x, y, side), and their YOLO labels."""
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(7)
    for k in range(count):
        image = rng.integers(5, 40, size=(height, width, 3), dtype=np.uint8)
        lines = []
        for cls, x, y, side in squares(rng):
            image[y : y + side, x : x + side] = (255, 255, 255) if cls == 0 else (0, 0, 250)
            lines.append(f"{cls} {(x + side / 2) / width} {(y + side / 2) / height} {side / width} {side / height}")
        cv2.imwrite(str(images / f"{name}{k:03d}.png"), image)
        (labels / f"{name}{k:03d}.txt").write_text("".join(l + "\n" for l in lines))
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    def squares(rng):
        # At most one square per 160x160 cell, so squares never touch.
        for cell in rng.permutation(12)[: rng.integers(0, 4)]:
            side = int(rng.choice([80, 80, 84, 76]))
            x = int(cell % 4) * 160 + int(rng.integers(0, 160 - side))
            y = int(cell // 4) * 160 + int(rng.integers(0, 160 - side))
            yield int(rng.integers(0, 2)), x, y, side

    return squares_folder(tmp_path_factory.mktemp("squares"), "f", 40, 640, 480, squares)


def replay(*args, check=True):
    result = subprocess.run([str(REPLAY), "--model", MODEL, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_map_agrees_with_pycocotools(dataset, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    replay("--images", dataset / "images", "--truth", dataset / "labels", "--conf", "0.01", "--out", tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    truth = COCO(str(tmp_path / "truth.coco.json"))
    predictions = truth.loadRes(str(tmp_path / "predictions.coco.json"))
    evaluation = COCOeval(truth, predictions, "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    ap50_95, ap50 = evaluation.stats[0], evaluation.stats[1]
    assert 0.2 < report["map50_95"] < 0.99, "the data should make AP@0.5:0.95 non-trivial"
    assert abs(report["map50"] - ap50) <= 0.005, (report["map50"], ap50)
    assert abs(report["map50_95"] - ap50_95) <= 0.005, (report["map50_95"], ap50_95)
    for name in ["report.md", "pr_curves.png", "confusion.png", "latency.png"]:
        assert (tmp_path / name).stat().st_size > 0


def test_map_agrees_with_pycocotools_on_the_bundled_video(tmp_path):
    """The bundled model on the bundled colour recording and its COCO ground truth."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    video, truth_file = ROOT / "tests/data/conveyor_color.mp4", ROOT / "tests/data/conveyor_color.coco.json"
    result = subprocess.run(
        [str(REPLAY), "--model", str(ROOT / "models/surface-defects.onnx"), "--video", str(video), "--truth", str(truth_file), "--conf", "0.01", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    truth = COCO(str(tmp_path / "truth.coco.json"))
    evaluation = COCOeval(truth, truth.loadRes(str(tmp_path / "predictions.coco.json")), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert len(truth.getImgIds()) == 300
    assert abs(report["map50"] - evaluation.stats[1]) <= 0.005, (report["map50"], evaluation.stats[1])
    assert abs(report["map50_95"] - evaluation.stats[0]) <= 0.005, (report["map50_95"], evaluation.stats[0])


def test_swept_policy_reaches_the_promised_recall(dataset, tmp_path):
    sweep = replay("--images", dataset / "images", "--truth", dataset / "labels", "--conf", "0.01", "--out", tmp_path, "--sweep-recall", "0.9")
    assert "out of reach" not in sweep.stdout and "never found" not in sweep.stdout, sweep.stdout
    policy = tmp_path / "swept-policy.toml"
    again = tmp_path / "again"
    replay("--images", dataset / "images", "--truth", dataset / "labels", "--conf", "0.01", "--policy", policy, "--out", again)
    classes = json.loads((again / "report.json").read_text())["classes"]
    for c in classes:
        assert c["recall"] >= 0.9, c


def test_bad_input_names_the_file_and_the_problem(dataset, tmp_path):
    missing = replay("--images", dataset / "images", "--truth", tmp_path / "nope.json", check=False)
    assert missing.returncode != 0 and "nope.json" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    result = replay("--images", dataset / "images", "--truth", broken, check=False)
    assert result.returncode != 0 and "broken.json" in result.stderr and "not valid JSON" in result.stderr
    other = tmp_path / "other.json"
    coco = coco_of(dataset, list(range(40)))
    coco["categories"][0]["name"] = "dent"
    other.write_text(json.dumps(coco))
    result = replay("--images", dataset / "images", "--truth", other, check=False)
    assert result.returncode != 0 and "\"dent\" is not a class of the model" in result.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps(coco_of(dataset, list(range(40)))))
    result = replay("--video", tmp_path / "missing.mp4", "--truth", good, check=False)
    assert result.returncode != 0 and "missing.mp4" in result.stderr
    unreadable = tmp_path / "garbage.mp4"
    unreadable.write_bytes(b"\x00" * 1000)
    result = replay("--video", unreadable, "--truth", good, check=False)
    assert result.returncode != 0 and "error" in result.stderr.lower(), result.stderr


def coco_of(dataset, ids, category_ids=(5, 9), extension=".png"):
    """The dataset's YOLO labels as a COCO file with the given image ids (in file order) and
    category ids, file names as in the folder."""
    images, annotations = [], []
    for k, label in enumerate(sorted((dataset / "labels").glob("*.txt"))):
        images.append({"id": ids[k], "file_name": label.stem + extension, "width": 640, "height": 480})
        for line in label.read_text().splitlines():
            cls, cx, cy, w, h = map(float, line.split())
            bw, bh = w * 640, h * 480
            annotations.append({"id": 100 + len(annotations) * 3, "image_id": ids[k], "category_id": category_ids[int(cls)],
                                "bbox": [cx * 640 - bw / 2, cy * 480 - bh / 2, bw, bh], "area": bw * bh, "iscrowd": 0})
    categories = [{"id": category_ids[1], "name": "red_square"}, {"id": category_ids[0], "name": "white_square"}]
    return {"info": {"description": "squares"}, "images": images[::-1], "annotations": annotations,
            "categories": categories}


def pycocotools_stats(truth_file, predictions_file):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = COCO(str(truth_file))
    evaluation = COCOeval(truth, truth.loadRes(str(predictions_file)), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return list(evaluation.stats)


def test_exports_score_identically_against_the_users_own_coco_file(dataset, tmp_path):
    """Image ids that are not 0..n-1, listed out of order, category ids of the user's: the tool's
    predictions.coco.json scored by pycocotools against the user's file gives what it gives
    against the tool's truth.coco.json, and what the tool reports."""
    ids = [7000 + 13 * k for k in range(40)]
    user = tmp_path / "user.coco.json"
    user.write_text(json.dumps(coco_of(dataset, ids)))
    out = tmp_path / "out"
    replay(f"--images={dataset / 'images'}", f"--truth={user}", "--conf=0.01", f"--out={out}")
    predictions = json.loads((out / "predictions.coco.json").read_text())
    assert predictions and {p["image_id"] for p in predictions} <= set(ids)
    assert {p["category_id"] for p in predictions} <= {5, 9}
    exported = json.loads((out / "truth.coco.json").read_text())
    assert sorted(i["id"] for i in exported["images"]) == sorted(ids)
    assert {i["file_name"] for i in exported["images"]} == {f"f{k:03d}.png" for k in range(40)}
    against_user = pycocotools_stats(user, out / "predictions.coco.json")
    against_export = pycocotools_stats(out / "truth.coco.json", out / "predictions.coco.json")
    assert against_user == against_export
    report = json.loads((out / "report.json").read_text())
    assert 0.2 < against_user[0] < 0.99
    assert abs(report["map50"] - against_user[1]) <= 0.005, (report["map50"], against_user[1])
    assert abs(report["map50_95"] - against_user[0]) <= 0.005, (report["map50_95"], against_user[0])


def test_jpeg_folder_with_arbitrary_ids_and_a_sweep(tmp_path):
    """As NEU-DET is used: 200x200 grey JPEGs, a COCO file naming them with ids class * 1000 + n,
    a recall sweep at 0.99 on the validation split."""
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(3)
    coco = {"images": [], "annotations": [], "categories": [{"id": 0, "name": "white_square"}, {"id": 1, "name": "red_square"}]}
    for n in range(12):
        image = rng.integers(5, 40, size=(200, 200), dtype=np.uint8)
        image_id = (n % 2) * 1000 + 5 + 10 * n
        name = f"{['white', 'other'][n % 2]}_{n + 1}.jpg"
        if n % 3:
            # 200 px is 256 model pixels: the model's 32-pixel window is 25 image pixels.
            side = 25
            x, y = int(rng.integers(0, 175)), int(rng.integers(0, 175))
            image[y : y + side, x : x + side] = 255
            coco["annotations"].append({"id": n, "image_id": image_id, "category_id": 0, "bbox": [x, y, side, side], "area": side * side, "iscrowd": 0})
        cv2.imwrite(str(images / name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        coco["images"].append({"id": image_id, "file_name": name, "width": 200, "height": 200})
    truth = tmp_path / "val.coco.json"
    truth.write_text(json.dumps(coco))
    out = tmp_path / "out"
    result = replay("--images", images, "--truth", truth, "--conf", "0.01", "--sweep-recall", "0.99", "--out", out)
    assert "white_square" in result.stdout and (out / "swept-policy.toml").exists()
    exported = json.loads((out / "truth.coco.json").read_text())
    assert sorted(i["id"] for i in exported["images"]) == sorted(i["id"] for i in coco["images"])
    report = json.loads((out / "report.json").read_text())
    white = next(c for c in report["classes"] if c["name"] == "white_square")
    assert white["truths"] == 8 and white["recall"] > 0.5, white


def test_help_and_version_exit_0_and_document_every_option():
    result = subprocess.run([str(REPLAY), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for option in ["--model", "--video", "--images", "--truth", "--policy", "--labels", "--conf", "--threads",
                   "--frames-per-part", "--set", "--out", "--sweep-recall", "--model-b", "--policy-b", "--progress",
                   "--help", "--version"]:
        assert option in result.stdout, option
    version = subprocess.run([str(REPLAY), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("defect-replay "), version


@pytest.mark.parametrize("option, value, reason", [
    ("--conf", "nan", "not in [0, 1]"),
    ("--conf", "1.5", "not in [0, 1]"),
    ("--sweep-recall", "7", "not in (0, 1]"),
    ("--sweep-recall", "0", "not in (0, 1]"),
    ("--threads", "5000", "5000"),
    ("--progress", "sometimes", "sometimes"),
])
def test_bad_options_are_refused_before_anything_runs(dataset, option, value, reason):
    result = replay("--images", dataset / "images", "--truth", dataset / "labels", f"{option}={value}", check=False)
    assert result.returncode == 2, result.stderr
    assert option in result.stderr and reason in result.stderr, result.stderr


@pytest.fixture(scope="module")
def large_frames(tmp_path_factory):
    """Four 2048x1536 frames, each with three 80x80 squares: 10 px once the whole frame is
    letterboxed to the model's 256x256, too small to be found; in 640 px tiles they have the size
    the model sees in 640x480 frames."""
    def squares(rng):
        for i in range(3):
            yield 0, 150 + 600 * i + int(rng.integers(0, 100)), 200 + 400 * i + int(rng.integers(0, 100)), 80

    return squares_folder(tmp_path_factory.mktemp("large"), "l", 4, 2048, 1536, squares)


def test_set_passes_properties_to_defectdetect(large_frames, tmp_path):
    recall = {}
    for name, extra in [("whole", []), ("tiled", ["--set", "tile-size=640", "--set", "tile-overlap=160"])]:
        replay("--images", large_frames / "images", "--truth", large_frames / "labels", *extra, "--out", tmp_path / name)
        report = json.loads((tmp_path / name / "report.json").read_text())
        recall[name] = next(c for c in report["classes"] if c["name"] == "white_square")["recall"]
    # (the toy model scores one of the twelve below 0.25 at its offset to its grid: 0.92)
    assert recall["whole"] <= 0.1 and recall["tiled"] >= 0.75, recall


@pytest.mark.parametrize("value, reason", [
    ("nonsense=1", "defectdetect has no such property"),
    ("tile-size=abc", '"abc" is not a guint'),
    ("tile-size=99999", "99999 is out of its range"),
    ("model=x.onnx", "set by defect-replay's --model"),
    ("drift-learn-frames=5", "set by defect-replay's --baseline-out"),
    ("tile-size", "is not PROPERTY=VALUE"),
])
def test_a_bad_set_is_refused_naming_the_property(dataset, tmp_path, value, reason):
    result = replay("--images", dataset / "images", "--truth", dataset / "labels", "--set", value,
                    "--out", tmp_path, check=False)
    assert result.returncode != 0 and reason in result.stderr, result.stderr
    assert not (tmp_path / "report.json").exists()


def test_a_malformed_truth_fails_at_once_naming_the_annotation(tmp_path):
    """The bundled recording with a truth whose annotation 17 has a negative width: refused in
    under a second, before the model is loaded or a frame decoded."""
    coco = json.loads((ROOT / "tests/data/conveyor_color.coco.json").read_text())
    coco["annotations"][5]["id"] = 17
    coco["annotations"][5]["bbox"][2] = -12
    coco["categories"].append(dict(coco["categories"][0]))
    bad = tmp_path / "bad.coco.json"
    bad.write_text(json.dumps(coco))
    started = time.monotonic()
    result = subprocess.run(
        [str(REPLAY), "--model", str(ROOT / "models/surface-defects.onnx"), "--video", str(ROOT / "tests/data/conveyor_color.mp4"),
         "--truth", str(bad), "--progress", "lines"],
        capture_output=True, text=True, timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 1.0, elapsed
    assert "bad.coco.json" in result.stderr
    image = coco["annotations"][5]["image_id"]
    assert f"annotation 17 (image {image}): negative width -12" in result.stderr, result.stderr
    assert f"category {coco['categories'][0]['id']}: defined twice" in result.stderr, result.stderr
    assert "replaying" not in result.stderr, "no frame may be replayed"


def test_images_and_truth_must_describe_the_same_images(dataset, tmp_path):
    coco = coco_of(dataset, list(range(40)))
    coco["images"].append({"id": 999, "file_name": "missing.png", "width": 640, "height": 480})
    coco["images"] = [i for i in coco["images"] if i["file_name"] != "f003.png"]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != 3]
    coco["images"][0]["height"] = 960
    truth = tmp_path / "t.json"
    truth.write_text(json.dumps(coco))
    result = replay("--images", dataset / "images", "--truth", truth, check=False)
    assert result.returncode == 1
    assert "image 999: missing.png is not in the image folder" in result.stderr, result.stderr
    assert "f003.png: not in the truth's images" in result.stderr, result.stderr
    assert f"image {coco['images'][0]['id']}: the truth says 640x960 but" in result.stderr, result.stderr


def test_progress_is_plain_lines_in_a_log(dataset, tmp_path):
    result = replay("--images", dataset / "images", "--truth", dataset / "labels", "--conf", "0.01")
    assert "\r" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if "/40 frames" in l]
    assert 3 <= len(lines) <= 11, result.stderr
    assert "left" in lines[0]
    assert "replayed 40 frames" in result.stderr
