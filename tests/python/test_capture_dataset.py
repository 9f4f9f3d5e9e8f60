"""defectcapture's directory is a dataset that tools nobody here wrote open: the bundled recording
runs through the bundled model and policy into defectcapture, and `supervision` (Roboflow's
dataset loaders, MIT) loads the folder as YOLO (images/, labels/, data.yaml) and as COCO
(annotations/<run>.json) with exactly the classes and boxes of the NDJSON records of the captured
frames. defect-replay then reads such a folder as ground truth (the YOLO labels folder, and the
COCO file): the frames' own detections replayed through the same model and policy are found
again, recall 1 and mAP@0.5 1. For that capture the policy counts every detection the model
reports (pipelines/policy.toml leaves out those outside its region, which the replay then
counts as false positives, and scores REVIEW-band boxes below their class's min-confidence as
missed), and the frames reach the model as RGB, the pixels the PNG keeps."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

sv = pytest.importorskip("supervision")

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "target" / "debug"
REPLAY = PLUGIN_DIR / "defect-replay"
VIDEO = ROOT / "tests" / "data" / "conveyor_color.mp4"
MODEL = ROOT / "models" / "surface-defects.onnx"
POLICY = ROOT / "pipelines" / "policy.toml"
# Decisions of detections the policy does not count (they are not pre-annotated).
NOT_COUNTED = {"outside-region", "masked", "too-small"}


def run_capture(root, policy, caps="", model=MODEL):
    out, ndjson = root / "captures", root / "verdicts.ndjson"
    policy = f"policy={policy}" if policy else ""
    launch = (
        f"filesrc location={VIDEO} ! decodebin ! videoconvert {caps} ! "
        f"defectdetect model={model} {policy} ! "
        f"defectcapture location={out} ! defectmetaconvert ! filesink location={ndjson}"
    )
    env = dict(os.environ, GST_PLUGIN_PATH=str(PLUGIN_DIR))
    result = subprocess.run(
        ["gst-launch-1.0", "-e", *launch.split()], env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(line) for line in ndjson.read_text().splitlines() if line.strip()]
    frames = {r["frame"]: r for r in records if "frame" in r and "verdict" in r}
    return out, frames


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return run_capture(tmp_path_factory.mktemp("capture"), POLICY)


@pytest.fixture(scope="module")
def capture_all(tmp_path_factory):
    root = tmp_path_factory.mktemp("capture-all")
    policy = root / "all.toml"
    # Every detection of the model (confidence 0.25 and up, the replay's default) fails.
    policy.write_text('[default]\nmin-confidence = 0.25\nseverity = "major"\n')
    out, frames = run_capture(root, policy, "! video/x-raw,format=RGB")
    return out, frames, policy


def frame_of(path):
    """The frame number in a capture's name (`<run>_<frame>_<VERDICT>.png`)."""
    return int(pathlib.Path(path).stem.split("_")[1])


def expected_boxes(record):
    """The record's detections the policy counted: sorted (class id, x1, y1, x2, y2)."""
    return sorted(
        (d["class_id"], *d["box"]) for d in record["detections"] if d.get("decision") not in NOT_COUNTED
    )


def loaded_boxes(detections):
    return sorted((int(c), *map(float, xyxy)) for c, xyxy in zip(detections.class_id, detections.xyxy))


def assert_same(dataset, frames, model_names):
    assert list(dataset.classes) == model_names
    captured = [r for r in frames.values() if r["verdict"] in ("FAIL", "REVIEW")]
    dropped = max(r.get("capture_dropped") or 0 for r in frames.values())
    assert len(dataset) == len(captured) - dropped > 0
    boxes = 0
    for path, _image, detections in dataset:
        record = frames[frame_of(path)]
        assert record["verdict"] in ("FAIL", "REVIEW"), path
        assert pathlib.Path(path).stem.endswith(record["verdict"])
        want, got = expected_boxes(record), loaded_boxes(detections)
        assert sorted(w[0] for w in want) == sorted(g[0] for g in got), path
        for w in want:
            # Its twin: the loaded box of its class nearest to it (within half a pixel).
            twins = [g for g in got if g[0] == w[0]]
            twin = min(twins, key=lambda g: np.abs(np.subtract(g[1:], w[1:])).max())
            np.testing.assert_allclose(twin[1:], w[1:], atol=0.5, err_msg=str(path))
            got.remove(twin)
        assert all(w[0] < len(model_names) for w in want), path
        boxes += len(want)
    assert boxes > 0


def model_names(frames):
    """The class names the records name, by class id (every class of the bundled model appears)."""
    names = {}
    for record in frames.values():
        for d in record["detections"]:
            names.setdefault(d["class_id"], d["class_name"])
    return names


def test_supervision_loads_the_yolo_and_coco_layouts(capture):
    out, frames = capture
    names = (out / "classes.txt").read_text().splitlines()
    # The records' class names agree with the dataset's at every class id they use.
    for class_id, name in model_names(frames).items():
        assert names[class_id] == name
    yolo = sv.DetectionDataset.from_yolo(
        images_directory_path=str(out / "images"),
        annotations_directory_path=str(out / "labels"),
        data_yaml_path=str(out / "data.yaml"),
    )
    assert_same(yolo, frames, names)
    (coco_file,) = (out / "annotations").glob("*.json")
    coco = sv.DetectionDataset.from_coco(images_directory_path=str(out / "images"), annotations_path=str(coco_file))
    assert_same(coco, frames, names)
    scores = [a["score"] for a in json.loads(coco_file.read_text())["annotations"]]
    assert scores and all(0 < s <= 1 for s in scores)


@pytest.mark.parametrize("truth", ["labels", "coco"])
def test_defect_replay_reads_the_capture_as_truth(capture_all, truth, tmp_path):
    out, frames, policy = capture_all
    truth_path = out / "labels" if truth == "labels" else next((out / "annotations").glob("*.json"))
    result = subprocess.run(
        [str(REPLAY), "--model", str(MODEL), "--policy", str(policy), "--images", str(out / "images"),
         "--truth", str(truth_path), "--out", str(tmp_path), "--progress", "none"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    captured = {frame_of(p) for p in (out / "images").iterdir()}
    assert captured and all(frames[f]["verdict"] == "FAIL" for f in captured)
    truths = sum(len(frames[f]["detections"]) for f in captured)
    assert sum(c["truths"] for c in report["classes"]) == truths > 0
    for c in report["classes"]:
        if c["truths"] > 0:
            assert (c["recall"], c["false_negatives"], c["false_positives"]) == (1.0, 0, 0), c
    assert report["map50"] == pytest.approx(1.0), report["map50"]
    assert report["frames"]["escapes"] == 0


def test_anomaly_captures_have_heat_maps_and_region_boxes(tmp_path):
    import cv2

    out, frames = run_capture(tmp_path, None, model=ROOT / "models" / "surface-anomaly.onnx")
    assert (out / "classes.txt").read_text() == "anomaly\n"
    images = sorted((out / "images").iterdir())
    assert images
    for image in images:
        heatmap = out / "heatmaps" / f"{image.stem}_heatmap.png"
        picture, heat = cv2.imread(str(image)), cv2.imread(str(heatmap))
        assert heat is not None and heat.shape == picture.shape, heatmap
        # Jet colours: blue where cold, never the grey of a copy of the frame.
        assert heat[..., 0].mean() > heat[..., 2].mean()
    yolo = sv.DetectionDataset.from_yolo(
        images_directory_path=str(out / "images"),
        annotations_directory_path=str(out / "labels"),
        data_yaml_path=str(out / "data.yaml"),
    )
    assert_same(yolo, frames, ["anomaly"])
