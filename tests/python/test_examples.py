"""The embedding examples (examples/embed.rs, examples/embed.py) run on a short video with
known squares and report the same frames, ROIs, verdicts and parts."""
import os
import pathlib
import subprocess
import sys

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = str(ROOT / "models/test/squares_v8.onnx")


def make_video(tmp_path):
    """12 frames of a white and a red square (each exactly on one of the model's windows)."""
    image = np.full((480, 640, 3), 12, np.uint8)
    image[80:160, 100:180] = 255
    image[200:280, 400:480] = (0, 0, 255)
    png = tmp_path / "squares.png"
    cv2.imwrite(str(png), image)
    video = tmp_path / "squares.webm"
    line = (
        f"filesrc location={png} ! pngdec ! imagefreeze num-buffers=12 ! videoconvert ! "
        f"video/x-raw,format=I420 ! vp8enc deadline=1 ! webmmux ! filesink location={video}"
    )
    subprocess.run(["gst-launch-1.0", "-q", *line.split()], check=True, timeout=60)
    return str(video)


def summary(output):
    return [l for l in output.splitlines() if l.startswith("frames ")][-1]


def test_rust_and_python_examples_agree(tmp_path):
    video = make_video(tmp_path)
    rust = subprocess.run(
        [str(ROOT / "target/debug/examples/embed"), MODEL, video], capture_output=True, text=True, timeout=120, check=True
    )
    env = dict(os.environ, GST_PLUGIN_PATH=str(ROOT / "target/debug"))
    python = subprocess.run(
        [sys.executable, str(ROOT / "examples/embed.py"), MODEL, video], capture_output=True, text=True, timeout=120, check=True, env=env
    )
    expected = "frames 12 rois 24 fail-frames 12 verdict-messages 12 parts [0=FAIL, 1=FAIL]"
    assert summary(rust.stdout) == expected
    assert summary(python.stdout) == expected
    assert "red_square at (400, 200, 80, 80)" in python.stdout


def test_demo_line_prints_a_verdict_for_every_part_of_the_recording(tmp_path):
    """scripts/demo.sh's line (scripts/demo_line.py): the recording's parts announced as a
    trigger would, each part's verdict printed; the bundled model's verdicts are those of the
    truth; gst-launch-1.0 prints no "Redistribute latency..." (a non-live pipeline gets no
    latency message)."""
    import json

    truth = ROOT / "tests/data/conveyor_color.coco.json"
    env = dict(os.environ, GST_PLUGIN_PATH=str(ROOT / "target/debug"))
    result = subprocess.run(
        ["/usr/bin/python3", str(ROOT / "scripts/demo_line.py"), str(ROOT / "tests/data/conveyor_color.mp4"),
         str(ROOT / "models/surface-defects.onnx"), str(ROOT / "pipelines/policy.toml"), str(truth), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = [l for l in result.stdout.splitlines() if l.startswith("demo: part ")]
    parts = json.loads(truth.read_text())["parts"]
    assert len(lines) == len(parts) == 6, result.stdout
    for line, part in zip(lines, sorted(parts, key=lambda p: p["primary_first_frame"])):
        assert line.startswith(f"demo: part {part['part_id']}: {'FAIL' if part['defective'] else 'PASS'}"), line
    records = [json.loads(l) for l in (tmp_path / "verdicts.ndjson").read_text().splitlines()]
    assert sum(r["type"] == "part" for r in records) == 6
    # The same line in gst-launch-1.0 (demo.sh without a truth file) prints "Redistribute
    # latency..." for every latency message: the decoder posts its own, defectdetect (in a
    # non-live pipeline) none.
    def redistributions(detect):
        line = (
            f"filesrc location={ROOT / 'tests/data/conveyor_color.mp4'} ! decodebin ! videoconvert ! "
            f"video/x-raw,format=I420 ! {detect} fakesink"
        )
        launch = subprocess.run(["gst-launch-1.0", "-e", *line.split()], capture_output=True, text=True, timeout=300, env=env)
        assert launch.returncode == 0, launch.stderr
        return launch.stdout.count("Redistribute latency")

    detect = (f"defectdetect model={ROOT / 'models/surface-defects.onnx'} policy={ROOT / 'pipelines/policy.toml'} "
              f"frames-per-part=60 !")
    assert redistributions(detect) == redistributions("")
