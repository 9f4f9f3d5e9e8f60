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
