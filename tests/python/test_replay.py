"""defect-replay: mAP agrees with pycocotools, the threshold sweep's policy keeps its promise,
and bad input is reported with the file and the reason.

The pycocotools check runs on the bundled model and recording, and with the squares test model
on synthetic frames: squares of the model's window size at random (unaligned) positions, so
that boxes are good but not perfect and AP@0.5:0.95 is not 1."""
import json
import pathlib
import subprocess

import cv2
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
REPLAY = ROOT / "target" / "debug" / "defect-replay"
MODEL = str(ROOT / "models/test/squares_v8.onnx")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("squares")
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(7)
    for k in range(40):
        image = rng.integers(5, 40, size=(480, 640, 3), dtype=np.uint8)
        lines = []
        # At most one square per 160x160 cell, so squares never touch.
        cells = rng.permutation(12)[: rng.integers(0, 4)]
        for cell in cells:
            side = int(rng.choice([80, 80, 84, 76]))
            x = int(cell % 4) * 160 + int(rng.integers(0, 160 - side))
            y = int(cell // 4) * 160 + int(rng.integers(0, 160 - side))
            cls = int(rng.integers(0, 2))
            image[y : y + side, x : x + side] = (255, 255, 255) if cls == 0 else (0, 0, 250)
            lines.append(f"{cls} {(x + side / 2) / 640} {(y + side / 2) / 480} {side / 640} {side / 480}")
        cv2.imwrite(str(images / f"f{k:03d}.png"), image)
        (labels / f"f{k:03d}.txt").write_text("".join(l + "\n" for l in lines))
    return root


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
    other.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 0, "name": "dent"}]}))
    result = replay("--images", dataset / "images", "--truth", other, check=False)
    assert result.returncode != 0 and "\"dent\" is not a class of the model" in result.stderr
    result = replay("--video", tmp_path / "missing.mp4", "--truth", other, check=False)
    assert result.returncode != 0 and "missing.mp4" in result.stderr
    unreadable = tmp_path / "garbage.mp4"
    unreadable.write_bytes(b"\x00" * 1000)
    result = replay("--video", unreadable, "--truth", other, check=False)
    assert result.returncode != 0 and "error" in result.stderr.lower(), result.stderr
