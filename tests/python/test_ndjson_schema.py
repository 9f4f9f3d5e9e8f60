"""defectmetaconvert output validated against docs/verdict.schema.json.

Runs gst-launch-1.0 with the plugin built under target/debug (the test command builds it)."""
import json
import os
import pathlib
import subprocess

import jsonschema

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "target" / "debug"
SCHEMA = json.loads((ROOT / "docs" / "verdict.schema.json").read_text())


def run_pipeline(tmp_path, frames, extra="", model="squares_v8"):
    out = tmp_path / "verdicts.ndjson"
    env = dict(os.environ, GST_PLUGIN_PATH=str(PLUGIN_DIR))
    line = (
        f"videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=640,height=480 ! "
        f"defectdetect model={ROOT / f'models/test/{model}.onnx'} {extra} ! "
        f"defectmetaconvert source-id=line-7 ! filesink location={out}"
    )
    subprocess.run(["gst-launch-1.0", "-q", *line.split()], check=True, env=env, timeout=120)
    return [json.loads(l) for l in out.read_text().splitlines()]


def test_every_record_is_valid(tmp_path):
    records = run_pipeline(tmp_path, 12, "frames-per-part=5")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{record}: {errors[0].message}"
    frames = [r for r in records if r["type"] == "frame"]
    parts = [r for r in records if r["type"] == "part"]
    assert [f["frame"] for f in frames] == list(range(12))
    assert [p["part_id"] for p in parts] == ["0", "1", "2"]
    assert all(f["source_id"] == "line-7" for f in records)
    assert frames[0]["model"]["name"] == "squares_v8"


def test_schema_rejects_a_broken_record(tmp_path):
    record = run_pipeline(tmp_path, 1)[0]
    record["verdict"] = "MAYBE"
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(record)


def test_async_records_are_valid_and_say_what_was_inspected(tmp_path):
    """Issue 14 item 3: with async-inference, records carry UNKNOWN for frames without a result
    of their part, and inspected / carried / source_frame on every frame; all within the schema."""
    records = run_pipeline(tmp_path, 30, "async-inference=true frames-per-part=10")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{record}: {errors[0].message}"
    frames = [r for r in records if r["type"] == "frame"]
    parts = [r for r in records if r["type"] == "part"]
    assert len(frames) == 30 and len(parts) == 3
    for f in frames:
        assert f["carried"] == (f["source_frame"] is not None)
        if not f["carried"]:
            assert f["verdict"] == "UNKNOWN"
    assert sum(p["inspected_frames"] for p in parts) == sum(f["inspected"] for f in frames)


def test_classify_and_anomaly_records_are_valid(tmp_path):
    """Issue 15: records of a classifier (its classes as detections covering the frame) and of
    an anomaly model (image score, regions with peak and mean score) within schema 3."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    classes = run_pipeline(tmp_path, 3, "top-k=2", model="cls_colour_224")
    anomaly = run_pipeline(tmp_path, 3, model="anomaly_ours")
    for record in classes + anomaly:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{record}: {errors[0].message}"
        assert record["schema_version"] == 4
    assert all(r["task"] == "classify" and len(r["detections"]) == 2 for r in classes)
    assert all(r["detections"][0]["box"] == [0, 0, 640, 480] for r in classes)
    assert all(r["anomaly_score"] is None for r in classes)
    # The white ball on black: score 10 (map = 10 x brightness), one region around the ball.
    for r in anomaly:
        assert r["task"] == "anomaly" and abs(r["anomaly_score"] - 10.0) < 1e-3
        assert r["verdict"] == "FAIL" and len(r["detections"]) == 1
        d = r["detections"][0]
        assert d["class_name"] == "anomaly" and abs(d["peak_score"] - 10.0) < 1e-3
        assert 7.0 < d["mean_score"] <= 10.0


def test_two_stage_records_carry_the_classification(tmp_path):
    """Issue 15: a detector then a classifier with on-rois=true; each region's record holds the
    classifier's class within schema 3 (the colour stand-in names the crops' colours)."""
    out = tmp_path / "two.ndjson"
    env = dict(os.environ, GST_PLUGIN_PATH=str(PLUGIN_DIR))
    line = (
        "videotestsrc num-buffers=2 pattern=ball ! video/x-raw,width=640,height=480 ! "
        f"defectdetect model={ROOT / 'models/test/anomaly_ours.onnx'} ! "
        f"defectdetect model={ROOT / 'models/test/cls_colour_224.onnx'} on-rois=true ! "
        f"defectmetaconvert ! filesink location={out}"
    )
    subprocess.run(["gst-launch-1.0", "-q", *line.split()], check=True, env=env, timeout=120)
    records = [json.loads(l) for l in out.read_text().splitlines()]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{record}: {errors[0].message}"
        [region] = record["detections"]
        c = region["classification"]
        assert c is not None and c["class_name"] and 0 <= c["confidence"] <= 1


def test_joined_part_records_name_their_cameras(tmp_path):
    """Two camera branches into defectpartmux, then defectmetaconvert: one part record per
    part (no frame records), the worst of the two cameras' verdicts, each camera's own verdict
    and frames in `cameras`; all within the schema. The top camera sees a moving ball, the
    side camera a black frame."""
    out = tmp_path / "parts.ndjson"
    env = dict(os.environ, GST_PLUGIN_PATH=str(PLUGIN_DIR))
    model = ROOT / "models/test/squares_v8.onnx"
    line = (
        "defectpartmux name=mux sink_0::camera-name=top sink_1::camera-name=side ! "
        f"defectmetaconvert source-id=station ! filesink location={out} "
        "videotestsrc num-buffers=12 pattern=ball ! video/x-raw,width=640,height=480 ! "
        f"defectdetect model={model} frames-per-part=4 ! mux.sink_0 "
        "videotestsrc num-buffers=12 pattern=black ! video/x-raw,width=640,height=480 ! "
        f"defectdetect model={model} frames-per-part=4 ! mux.sink_1"
    )
    subprocess.run(["gst-launch-1.0", "-q", *line.split()], check=True, env=env, timeout=120)
    records = [json.loads(l) for l in out.read_text().splitlines()]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{record}: {errors[0].message}"
    assert [r["type"] for r in records] == ["part"] * 3
    assert [r["part_id"] for r in records] == ["0", "1", "2"]
    order = ["PASS", "REVIEW", "UNKNOWN", "FAIL"]
    for r in records:
        top, side = r["cameras"]
        assert (top["camera"], side["camera"]) == ("top", "side")
        assert top["status"] == side["status"] == "reported"
        assert top["frames"] == side["frames"] == 4 and r["frames"] == 8
        worst = max(top["verdict"], side["verdict"], key=order.index)
        assert r["verdict"] == worst


def test_a_drift_episode_writes_a_start_and_an_end_record(tmp_path):
    """A ball on black (learnt as the baseline), then a white frame, then the ball again:
    one drift record when the episode starts (brightness moved), one when it ends."""
    policy = tmp_path / "drift.toml"
    policy.write_text(
        "[drift]\nlearn-frames = 20\nwindow = 10\nstep = 5\n"
        "onset-windows = 1\nrecovery-windows = 1\nmin-samples = 5\n"
    )
    out = tmp_path / "drift.ndjson"
    env = dict(os.environ, GST_PLUGIN_PATH=str(PLUGIN_DIR))
    caps = "video/x-raw,format=RGB,width=320,height=240,framerate=30/1"
    line = (
        f"concat name=c ! videoconvert ! "
        f"defectdetect model={ROOT / 'models/test/squares_v8.onnx'} policy={policy} ! "
        f"defectmetaconvert source-id=line-7 ! filesink location={out} "
        f"videotestsrc num-buffers=40 pattern=ball ! {caps} ! c. "
        f"videotestsrc num-buffers=30 pattern=white ! {caps} ! c. "
        f"videotestsrc num-buffers=30 pattern=ball ! {caps} ! c."
    )
    subprocess.run(["gst-launch-1.0", "-q", *line.split()], check=True, env=env, timeout=120)
    records = [json.loads(l) for l in out.read_text().splitlines()]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{record}: {errors[0].message}"
    drift = [r for r in records if r["type"] == "drift"]
    assert [(r["event"], r["active"], r["episode"]) for r in drift] == [
        ("start", True, 1),
        ("end", False, 1),
    ], drift
    start, end = drift
    assert 40 <= start["frame"] < 60 and end["frame"] >= 70
    assert "brightness" in start["moved"] and end["moved"] == []
    assert start["source_id"] == "line-7"
    assert len(records) == 100 + 2


def test_challenger_records_are_valid_and_leave_frame_records_alone(tmp_path):
    """A challenger (another layout of the same detector) writes one challenger record per
    frame, after the frame's record; every record is valid."""
    challenger = ROOT / "models/test/squares_v5.onnx"
    records = run_pipeline(
        tmp_path, 8, f"challenger-model={challenger} challenger-wait=true"
    )
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{record}: {errors[0].message}"
    frames = [r for r in records if r["type"] == "frame"]
    judged = [r for r in records if r["type"] == "challenger"]
    assert [f["frame"] for f in frames] == list(range(8))
    assert [c["frame"] for c in judged] == list(range(8))
    assert all(c["model_id"].startswith("squares_v5:") for c in judged)
    assert all(c["production_verdict"] == f["verdict"] for c, f in zip(judged, frames))


def test_segmentation_records_carry_masks_pycocotools_decodes(tmp_path):
    """Records of a segmentation model: every detection's `mask` is COCO RLE over the frame that
    pycocotools decodes as it is, inside the detection's box, with `area_px` its pixel count and
    `area_mm2` / `length_mm` from the policy's pixels-per-mm; all within the schema."""
    from pycocotools import mask as coco_mask

    policy = tmp_path / "policy.toml"
    policy.write_text("pixels-per-mm = 4.0\n")
    out = tmp_path / "seg.ndjson"
    env = dict(os.environ, GST_PLUGIN_PATH=str(PLUGIN_DIR))
    line = (
        "videotestsrc num-buffers=3 pattern=smpte ! "
        "video/x-raw,width=640,height=480 ! "
        f"defectdetect model={ROOT / 'models/test/seg_squares.onnx'} policy={policy} ! "
        f"defectmetaconvert ! filesink location={out}"
    )
    subprocess.run(["gst-launch-1.0", "-q", *line.split()], check=True, env=env, timeout=120)
    records = [json.loads(l) for l in out.read_text().splitlines()]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    detections = 0
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{record}: {errors[0].message}"
        assert record["task"] == "segment"
        for d in record["detections"]:
            m = coco_mask.decode(d["mask"])
            assert m.shape == (480, 640)
            assert int(m.sum()) == d["area_px"] == int(coco_mask.area(d["mask"]))
            ys, xs = m.nonzero()
            if len(xs):
                x1, y1, x2, y2 = d["box"]
                assert xs.min() >= int(x1) and xs.max() < x2 + 1 and ys.min() >= int(y1) and ys.max() < y2 + 1
            assert abs(d["area_mm2"] - d["area_px"] / 16.0) < 1e-6
            assert abs(d["length_mm"] - d["length_px"] / 4.0) < 1e-6
            detections += 1
    assert detections > 0
