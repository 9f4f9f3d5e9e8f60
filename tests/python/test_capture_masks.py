"""defectcapture's labels of a segmentation model's detections load back as masks: synthetic frames
(red and blue squares, some at the frame's border) run through the test segmentation model
(models/test/seg_squares.onnx) into defectcapture, and `supervision` loads labels/ (YOLO-seg
polygons) and annotations/<run>.json (COCO RLE) with force_masks=True. Each loaded mask matches
its detection's mask in the NDJSON records: the polygon (the outer contours of the mask's
8-connected parts joined by bridges of zero width) at IoU >= 0.9 with the whole mask, also for the
test model's masks of several parts; the RLE pixel for pixel; the COCO `area` is the mask's pixels. The replay
reads the polygon labels as boxes."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

sv = pytest.importorskip("supervision")
cv2 = pytest.importorskip("cv2")
mask_util = pytest.importorskip("pycocotools.mask")

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "target" / "debug"
REPLAY = PLUGIN_DIR / "defect-replay"
MODEL = ROOT / "models" / "test" / "seg_squares.onnx"
FRAMES = 4
POLYGON_IOU = 0.9


def write_frames(folder):
    """Dark frames with two red and one blue square of seeded sizes; the first frame's red square
    touches the left and top borders."""
    rng = np.random.default_rng(7)
    for i in range(FRAMES):
        image = np.full((360, 480, 3), 20, np.uint8)
        for k in range(3):
            side = int(rng.integers(40, 110))
            x, y = int(rng.integers(0, 480 - side)), int(rng.integers(0, 360 - side))
            if i == 0 and k == 0:
                x, y = 0, 0
            image[y : y + side, x : x + side] = [(30, 30, 250), (250, 30, 30), (30, 30, 250)][k]  # BGR
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), image)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return run_capture(tmp_path_factory.mktemp("capture-masks"))


def run_capture(root):
    write_frames(root)
    out, ndjson, policy = root / "captures", root / "verdicts.ndjson", root / "all.toml"
    # Every detection of the model fails: every frame with one is captured.
    policy.write_text('[default]\nmin-confidence = 0.25\nseverity = "major"\n')
    launch = (
        f"multifilesrc location={root}/frame_%03d.png index=0 stop-index={FRAMES - 1} "
        "caps=image/png,framerate=1/1 ! pngdec ! videoconvert ! video/x-raw,format=RGB ! "
        f"defectdetect model={MODEL} policy={policy} ! "
        f"defectcapture location={out} ! defectmetaconvert ! filesink location={ndjson}"
    )
    env = dict(os.environ, GST_PLUGIN_PATH=str(PLUGIN_DIR))
    result = subprocess.run(
        ["gst-launch-1.0", "-e", *launch.split()], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(line) for line in ndjson.read_text().splitlines() if line.strip()]
    frames = {r["frame"]: r for r in records if "frame" in r and "verdict" in r}
    return out, frames, policy


def frame_of(path):
    """The frame number in a capture's name (`<run>_<frame>_<VERDICT>.png`)."""
    return int(pathlib.Path(path).stem.split("_")[1])


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 1.0


def parts(mask):
    """The number of 8-connected parts of a mask."""
    count, _labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return count - 1


def check_masks(dataset, frames, exact):
    """Every record's detection has a loaded mask of its class, the same as its mask (`exact`) or
    close to it; returns the lowest IoU with the whole mask, over all masks and over masks of
    several parts."""
    lowest, lowest_parts, masks, several = 1.0, 1.0, 0, 0
    assert len(dataset) == len(frames) > 0
    for path, _image, detections in dataset:
        record = frames[frame_of(path)]
        assert detections.mask is not None, path
        assert len(detections) == len(record["detections"]) > 0, path
        loaded = list(zip(detections.class_id, detections.mask))
        for d in record["detections"]:
            whole = mask_util.decode(d["mask"]).astype(bool)
            assert whole.sum() == d["area_px"] > 0
            truth = whole
            # Its twin: the loaded mask of its class that overlaps it most.
            twin = max((m for c, m in loaded if c == d["class_id"]), key=lambda m: iou(truth, m))
            if exact:
                np.testing.assert_array_equal(twin, truth, err_msg=str(path))
            lowest = min(lowest, iou(truth, twin))
            if parts(whole) > 1:
                several += 1
                lowest_parts = min(lowest_parts, iou(truth, twin))
            masks += 1
    assert masks >= FRAMES
    return lowest, lowest_parts, several


def test_supervision_loads_the_masks_back(capture):
    out, frames, _ = capture
    assert all(r["verdict"] == "FAIL" for r in frames.values())
    yolo = sv.DetectionDataset.from_yolo(
        images_directory_path=str(out / "images"),
        annotations_directory_path=str(out / "labels"),
        data_yaml_path=str(out / "data.yaml"),
        force_masks=True,
    )
    lowest, lowest_parts, several = check_masks(yolo, frames, exact=False)
    print(
        f"lowest IoU of a YOLO-seg polygon with its whole mask: {lowest:.3f} "
        f"({several} masks of several parts: {lowest_parts:.3f})"
    )
    assert several > 0, "the test model's masks include some of several parts"
    assert lowest >= POLYGON_IOU
    assert lowest_parts >= POLYGON_IOU
    # The labels are polygons (class and 3 points or more), not boxes.
    for labels in (out / "labels").iterdir():
        for line in labels.read_text().splitlines():
            assert len(line.split()) >= 7 and len(line.split()) % 2 == 1, line
    (coco_file,) = (out / "annotations").glob("*.json")
    coco = sv.DetectionDataset.from_coco(
        images_directory_path=str(out / "images"), annotations_path=str(coco_file), force_masks=True
    )
    check_masks(coco, frames, exact=True)
    annotations = json.loads(coco_file.read_text())["annotations"]
    for a in annotations:
        assert a["iscrowd"] == 0
        assert a["area"] == mask_util.area(a["segmentation"]) > 0


def test_defect_replay_reads_polygon_labels_as_boxes(capture, tmp_path):
    out, frames, policy = capture
    result = subprocess.run(
        [str(REPLAY), "--model", str(MODEL), "--policy", str(policy), "--images", str(out / "images"),
         "--truth", str(out / "labels"), "--out", str(tmp_path), "--progress", "none"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    # Every polygon line is a truth box (the polygon's bounds: the mask's parts and bridges, which
    # need not fill the detection's box, so recall is not asserted).
    truths = sum(len(r["detections"]) for r in frames.values())
    assert sum(c["truths"] for c in report["classes"]) == truths > 0
