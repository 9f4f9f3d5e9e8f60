#!/usr/bin/env python3
"""Run one of the ready pipelines of pipelines/ and restart it when its camera fails.

    CAMERA=192.168.10.21 pipelines/restart_on_error.py pipelines/gige.sh
    URL=rtsp://10.0.0.7/stream1 pipelines/restart_on_error.py pipelines/rtsp.sh --max-backoff 60

The pipeline is the script's own (its environment variables apply), read with DRY_RUN=1 and
run in this process with a bus loop:

- an ERROR from the camera (the element named `camera`, anything inside it, or
  `camera-watchdog`), or the end of the stream after a WARNING from the camera (rtspsrc when
  the camera closes the connection), is a camera failure: EOS is pushed into `detect` so that
  the recording is finalised, the pipeline goes to NULL, and after a wait (1 s, doubling up
  to --max-backoff, back to 1 s once frames flow again) a new pipeline goes to PLAYING,
  which connects to the camera afresh. Verdict records are appended to the same NDJSON
  file; each run that inspected frames has a recording of its own (out/gige-camera.mp4,
  out/gige-camera-1.mp4, ...);
- an ERROR from any other element (a model that does not load, a full disk) ends the program
  with status 1; restarting would not help;
- the end of the stream otherwise (NUM_BUFFERS reached, a file source at its end) ends it
  with status 0; so does Ctrl-C (SIGINT) or SIGTERM, after EOS has finalised the outputs.

Needs Python 3 with GObject introspection for GStreamer (Debian: python3-gi,
gir1.2-gstreamer-1.0) and the plugin (GST_PLUGIN_PATH, or target/release or target/debug of
this checkout).
"""
import argparse
import os
import pathlib
import signal
import subprocess
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
CAMERA_ELEMENTS = ("camera", "camera-watchdog")


def log(text):
    print(f"restart_on_error: {text}", file=sys.stderr, flush=True)


def from_camera(obj):
    """Whether a message source is the camera, inside it, or its watchdog."""
    while obj is not None:
        if obj.get_name() in CAMERA_ELEMENTS:
            return True
        obj = obj.get_parent()
    return False


def segment_path(location, n):
    """out/x.mp4 for the first run, out/x-1.mp4, out/x-2.mp4, ... after restarts."""
    if n == 0:
        return location
    path = pathlib.Path(location)
    return str(path.with_name(f"{path.stem}-{n}{path.suffix}"))


class Runner:
    def __init__(self, description, max_backoff, max_restarts):
        self.description = description
        self.max_backoff = max_backoff
        self.max_restarts = max_restarts
        self.stopping = False
        self.pipeline = self.bus = None

    def build(self, segment):
        """A new pipeline for every run: elements keep state across NULL (aravissrc keeps its
        camera connection, and with it a lost control privilege), a new one starts clean."""
        self.pipeline = Gst.parse_launch(self.description)
        self.bus = self.pipeline.get_bus()
        verdicts = self.pipeline.get_by_name("verdicts")
        if verdicts is not None:
            verdicts.set_property("append", True)  # one NDJSON file across restarts
        recording = self.pipeline.get_by_name("recording")
        if recording is not None:
            recording.set_property("location", segment_path(recording.get_property("location"), segment))
        for sink in (verdicts, recording):
            if sink is not None:
                os.makedirs(os.path.dirname(sink.get_property("location")) or ".", exist_ok=True)

    def request_stop(self, *_):
        self.stopping = True

    def wait(self, seconds):
        """Sleep, but return early (False) on Ctrl-C."""
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(0.1)
        return not self.stopping

    def finish(self, frames, timeout=5.0):
        """EOS from `detect` down, so that recording and records are complete (the camera
        upstream may be gone or hung, so EOS does not start there); then NULL."""
        if frames:
            detect = self.pipeline.get_by_name("detect")
            detect.get_static_pad("sink").send_event(Gst.Event.new_eos())
            self.bus.timed_pop_filtered(int(timeout * Gst.SECOND), Gst.MessageType.EOS)
        self.pipeline.set_state(Gst.State.NULL)

    def run(self):
        restarts, segment, backoff = 0, 0, 1.0
        while True:
            self.build(segment)
            outcome = self.run_once()
            if outcome in ("done", "fatal"):
                return 0 if outcome == "done" else 1
            if outcome == "flowed":  # frames came after the last restart: the camera was back
                backoff = 1.0
                segment += 1  # a run without frames leaves an empty file, overwritten next time
            if self.max_restarts is not None and restarts >= self.max_restarts:
                log(f"giving up after {restarts} restarts")
                return 1
            restarts += 1
            log(f"restart {restarts} in {backoff:g} s")
            if not self.wait(backoff):
                return 0
            backoff = min(backoff * 2, self.max_backoff)

    def run_once(self):
        """PLAYING until the end: 'done', 'fatal', or a camera failure ('flowed' when frames had
        been inspected before it, 'failed' when none had)."""
        frames, camera_warned = 0, False
        self.pipeline.set_state(Gst.State.PLAYING)
        types = Gst.MessageType.ERROR | Gst.MessageType.WARNING | Gst.MessageType.EOS | Gst.MessageType.ELEMENT
        while True:
            if self.stopping:
                log("stopping")
                self.finish(frames)
                return "done"
            msg = self.bus.timed_pop_filtered(100 * Gst.MSECOND, types)
            if msg is None:
                continue
            if msg.type == Gst.MessageType.ELEMENT:
                structure = msg.get_structure()
                if structure is not None and structure.get_name() == "defect-verdict":
                    frames += 1
            elif msg.type == Gst.MessageType.WARNING:
                err, _ = msg.parse_warning()
                log(f"warning from {msg.src.get_name()}: {err.message}")
                camera_warned |= from_camera(msg.src)
            elif msg.type == Gst.MessageType.ERROR:
                err, debug = msg.parse_error()
                log(f"error from {msg.src.get_name()}: {err.message}")
                if not from_camera(msg.src):
                    log(debug or "")
                    self.pipeline.set_state(Gst.State.NULL)
                    return "fatal"
                log(f"camera failed after {frames} frames")
                self.finish(frames)
                return "flowed" if frames else "failed"
            elif msg.type == Gst.MessageType.EOS:
                self.pipeline.set_state(Gst.State.NULL)
                if camera_warned:
                    log(f"camera ended the stream after {frames} frames")
                    return "flowed" if frames else "failed"
                log(f"end of stream after {frames} frames")
                return "done"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("script", help="a pipeline script of pipelines/ (gige.sh, rtsp.sh, ...)")
    parser.add_argument("--max-backoff", type=float, default=30.0, help="longest wait between restarts, s")
    parser.add_argument("--max-restarts", type=int, default=None, help="give up after this many (default: never)")
    args = parser.parse_args()

    env = dict(os.environ, DRY_RUN="1")
    description = subprocess.run([args.script], env=env, check=True, capture_output=True, text=True).stdout.strip()
    if not os.environ.get("GST_PLUGIN_PATH"):
        for build in ("release", "debug"):
            if (REPO / "target" / build / "libgstdefect.so").exists():
                os.environ["GST_PLUGIN_PATH"] = str(REPO / "target" / build)
                break
    Gst.init(None)
    runner = Runner(description, args.max_backoff, args.max_restarts)
    signal.signal(signal.SIGINT, runner.request_stop)
    signal.signal(signal.SIGTERM, runner.request_stop)
    log(f"running {args.script}")
    sys.exit(runner.run())


if __name__ == "__main__":
    main()
