"""The ready pipelines of pipelines/, each run against a stand-in that speaks its real protocol:

- gige.sh and bayer.sh (aravissrc) against Aravis's fake GigE Vision camera
  (arv-fake-gv-camera-0.8, Debian aravis-tools) on 127.0.0.1;
- rtsp.sh (rtspsrc) against an RTSP server (gst-rtsp-server through Python GObject) serving
  the bundled conveyor video at its frame rate;
- bayer.sh also with the bundled video turned into Bayer frames by rgb2bayer;
- video-file.sh and image-folder.sh on the bundled video and PNG / JPEG frames taken from it;
- usb.sh (v4l2src) cannot run without a camera: its line is parsed and checked instead;
- MQTT publishing (MQTT_HOST) against a real mosquitto;
- a camera that stops sending or goes away is reported on the bus naming the source, and
  restart_on_error.py brings the pipeline back when the camera returns.

Every run checks its NDJSON verdict records against docs/verdict.schema.json and its annotated
MP4 (finalised: its frame count is in the index). The plugin is the one the test command builds
(target/debug); the model is the bundled one (models/surface-defects.onnx).
"""
import json
import os
import pathlib
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import cv2
import jsonschema
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"
RESTART = PIPELINES / "restart_on_error.py"
PLUGIN_DIR = ROOT / "target" / "debug"
VIDEO = ROOT / "tests" / "data" / "conveyor_color.mp4"
SCHEMA = json.loads((ROOT / "docs" / "verdict.schema.json").read_text())
FRAMES = 100
FAKE_CAMERA = "arv-fake-gv-camera-0.8"
# The fake camera listens on 127.0.0.1 (GVCP port 3956). It is opened by address: found by
# discovery it would be reached through whichever interface answered first (eth0 on most
# hosts) and stream to eth0's address over lo, where Aravis does not look (pipelines/README.md).
CAMERA_ADDRESS = "127.0.0.1"
GVCP_PORT = 3956
# Variables of the scripts: none may leak in from the caller's environment.
SCRIPT_VARIABLES = (
    "MODEL POLICY SOURCE_ID OUT_DIR VERDICTS RECORDING ENCODER MUXER NUM_BUFFERS WATCHDOG_MS "
    "MQTT_HOST MQTT_PORT MQTT_TOPIC MQTT_QOS SOURCE_PROPS DETECT_PROPS OVERLAY_PROPS MQTT_PROPS "
    "DRY_RUN CAMERA PIXEL_FORMAT WIDTH HEIGHT FRAMERATE PACKET_SIZE AUTO_PACKET_SIZE EXPOSURE_US "
    "GAIN_DB FEATURES DEVICE CAPS URL PROTOCOLS LATENCY SOURCE BAYER_FORMAT VIDEO FORMAT IMAGES "
    "START_INDEX"
).split()
# Each script and the tests that run it against its stand-in.
SCRIPTS = {
    "gige.sh": "test_gige_mono_camera",
    "bayer.sh": "test_bayer_through_rgb2bayer",
    "rtsp.sh": "test_rtsp_camera",
    "video-file.sh": "test_video_file",
    "image-folder.sh": "test_image_folder",
    "usb.sh": "test_usb_line_parses",  # no device: parsed only
}


def script_env(**variables):
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARIABLES}
    env["GST_PLUGIN_PATH"] = str(PLUGIN_DIR)
    env.update({k: str(v) for k, v in variables.items()})
    return env


class Run:
    """A script (or restart_on_error.py) running in the background, its output collected."""

    def __init__(self, argv, **variables):
        self.proc = subprocess.Popen(
            [str(a) for a in argv],
            env=script_env(**variables),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        self.lines = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def output(self):
        with self.changed:
            return "\n".join(self.lines)

    def wait_line(self, pattern, timeout):
        """The first output line matching pattern, waiting up to timeout seconds for it."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    if regex.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{self.output_unlocked()}")
                self.changed.wait(min(left, 0.2))

    def output_unlocked(self):
        return "\n".join(self.lines)

    def wait(self, timeout):
        """The exit status, once the process has ended and all its output is read."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.proc.args[0]} still running after {timeout} s:\n{self.output()}") from None
        self.reader.join(10)
        return rc

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def run_script(name, out_dir, *args, timeout=60, **variables):
    """Runs a script to its end; returns its output. Fails on a non-zero exit status."""
    run = Run([PIPELINES / name, *args], OUT_DIR=out_dir, **variables)
    try:
        rc = run.wait(timeout)
        assert rc == 0, f"{name} exited with {rc}:\n{run.output()}"
        return run.output()
    finally:
        run.close()


def records_of(path):
    """The NDJSON records of a run, each checked against docs/verdict.schema.json."""
    records = [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{record}: {errors[0].message}"
    return records


def frame_records(path, source_id):
    records = records_of(path)
    frames = [r for r in records if r["type"] == "frame"]
    assert frames, f"no frame records in {path}"
    assert all(r["source_id"] == source_id for r in records)
    assert all(r["model"]["name"] == "surface-defects" for r in frames)
    return frames


def recorded_frames(path):
    """Frames in the index of an MP4 (0 when it was not finalised), after checking that it
    decodes."""
    path = pathlib.Path(path)
    assert path.exists() and path.stat().st_size > 0, f"no recording at {path}"
    capture = cv2.VideoCapture(str(path))
    try:
        ok, image = capture.read()
        assert ok and image is not None, f"{path} does not decode"
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


def verdicts(frames):
    return {r["frame"]: r["verdict"] for r in frames}


def agreement(frames, reference):
    """Share of frames whose verdict is the reference run's for the same frame index."""
    ours, theirs = verdicts(frames), verdicts(reference)
    common = sorted(set(ours) & set(theirs))
    assert len(common) >= 0.9 * len(ours)
    return sum(ours[i] == theirs[i] for i in common) / len(common)


def wait_records(path, count, timeout, run=None):
    """Waits until the line-buffered NDJSON file holds at least count records."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and len(pathlib.Path(path).read_bytes().splitlines()) >= count:
            return
        if run is not None and run.proc.poll() is not None:
            raise AssertionError(f"ended before {count} records:\n{run.output()}")
        time.sleep(0.05)
    output = f":\n{run.output()}" if run else ""
    raise AssertionError(f"fewer than {count} records in {path} after {timeout} s{output}")


# ---------------------------------------------------------------- stand-ins


def gvcp_discovery_answered(timeout=0.3):
    """Whether a GigE Vision device answers a GVCP discovery command on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(struct.pack("!BBHHH", 0x42, 0x01, 0x0002, 0, 1), (CAMERA_ADDRESS, GVCP_PORT))
            answer, _ = sock.recvfrom(2048)
        except OSError:  # timeout, or port unreachable
            return False
        return answer[2:4] == b"\x00\x03"  # DISCOVERY_ACK


class FakeCamera:
    """Aravis's fake GigE Vision camera on 127.0.0.1 (512x512, 25 fps; Mono8, Bayer, RGB)."""

    def __init__(self, log_dir):
        assert shutil.which(FAKE_CAMERA), f"{FAKE_CAMERA} missing: Debian package aravis-tools (scripts/setup.sh)"
        self.log_dir = log_dir
        self.proc = None
        self.starts = 0

    def start(self):
        assert not gvcp_discovery_answered(), "another GigE Vision device already answers on 127.0.0.1:3956"
        self.starts += 1
        log = open(self.log_dir / f"fake-camera-{self.starts}.log", "w")
        self.proc = subprocess.Popen([FAKE_CAMERA, "-i", "lo"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 15
        while not gvcp_discovery_answered():
            assert self.proc.poll() is None, f"{FAKE_CAMERA} exited with {self.proc.returncode}"
            assert time.monotonic() < deadline, f"{FAKE_CAMERA} does not answer discovery"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # also ends a camera stopped with SIGSTOP
        if self.proc is not None:
            self.proc.wait(10)


@pytest.fixture
def fake_camera(tmp_path):
    camera = FakeCamera(tmp_path)
    camera.start()
    try:
        yield camera
    finally:
        camera.stop()


RTSP_SERVER = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer

Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service("0")  # a free port, read back below
factory = GstRtspServer.RTSPMediaFactory()
# The recorded H.264 stream as an IP camera sends it: paced at its frame rate (identity sync).
factory.set_launch(
    f"( filesrc location=\"{sys.argv[1]}\" ! qtdemux ! h264parse config-interval=-1 ! "
    "identity sync=true ! rtph264pay name=pay0 pt=96 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/camera", factory)
server.attach(None)
print(f"PORT {server.get_bound_port()}", flush=True)
GLib.MainLoop().run()
"""


class RtspServer:
    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RTSP_SERVER, str(VIDEO)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self.proc.kill()
            raise AssertionError(f"RTSP server did not start: {line!r} {self.proc.stderr.read()}")
        self.url = f"rtsp://127.0.0.1:{int(line.split()[1])}/camera"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def rtsp_server():
    server = RtspServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """video-file.sh on the first ~100 frames of the bundled video: the reference verdicts."""
    out = tmp_path_factory.mktemp("video-file")
    run_script("video-file.sh", out, NUM_BUFFERS=FRAMES)
    return out


# ---------------------------------------------------------------- the scripts


def test_video_file(replay):
    frames = frame_records(replay / "video-file.ndjson", "video-file")
    assert FRAMES - 3 <= len(frames) <= FRAMES + 3  # identity eos-after behind the decoder
    assert [r["frame"] for r in frames] == list(range(len(frames)))
    # The first 100 frames of the bundled video show defective and clean parts.
    assert {"FAIL", "PASS"} <= {r["verdict"] for r in frames}
    assert recorded_frames(replay / "video-file.mp4") == len(frames)


def test_gige_mono_camera(fake_camera, tmp_path):
    output = run_script("gige.sh", tmp_path, "-v", CAMERA=CAMERA_ADDRESS, NUM_BUFFERS=FRAMES)
    # Mono8 frames reach defectdetect as GRAY8, with no conversion on the way.
    # (-v prints each pad's caps as they are set, though not always every pad's: detect's caps
    # are those of its sink or its source pad, the same for an in-place transform.)
    gray8 = r":detect\.GstPad:(sink|src): caps = video/x-raw, format=\(string\)GRAY8, width=\(int\)512"
    assert re.search(gray8, output), output
    assert "videoconvert" not in dry_run("gige.sh").split("defectdetect")[0]
    frames = frame_records(tmp_path / "gige-camera.ndjson", "gige-camera")
    assert [r["frame"] for r in frames] == list(range(FRAMES))  # aravissrc num-buffers: exact
    assert recorded_frames(tmp_path / "gige-camera.mp4") == FRAMES


def test_gige_camera_that_stops_is_an_error(fake_camera, tmp_path):
    run = Run([PIPELINES / "gige.sh"], OUT_DIR=tmp_path, CAMERA=CAMERA_ADDRESS)
    try:
        wait_records(tmp_path / "gige-camera.ndjson", 3, 30, run)
        os.kill(fake_camera.proc.pid, signal.SIGSTOP)  # the camera stops sending
        start = time.monotonic()
        line = run.wait_line(r"^ERROR: from element /GstPipeline:pipeline0/\w+:camera(-watchdog)?:", 15)
        assert time.monotonic() - start < 15, line
        # Resumed, the camera answers the stop commands of the teardown at once (gone for
        # good, Aravis retries them for about 10 s before gst-launch-1.0 exits).
        os.kill(fake_camera.proc.pid, signal.SIGCONT)
        assert run.wait(20) != 0
    finally:
        run.close()


def test_bayer_from_gige_camera(fake_camera, tmp_path):
    output = run_script("bayer.sh", tmp_path, "-v", CAMERA=CAMERA_ADDRESS, NUM_BUFFERS=50)
    assert re.search(r"caps = video/x-bayer, format=\(string\)bggr, width=\(int\)512", output), output
    rgbx = r":detect\.GstPad:(sink|src): caps = video/x-raw, .*format=\(string\)(RGBx|BGRx|xRGB|xBGR)"
    assert re.search(rgbx, output), output
    frames = frame_records(tmp_path / "bayer-camera.ndjson", "bayer-camera")
    assert [r["frame"] for r in frames] == list(range(50))
    assert recorded_frames(tmp_path / "bayer-camera.mp4") == 50


def test_bayer_through_rgb2bayer(replay, tmp_path):
    source = f"filesrc location={VIDEO} ! decodebin ! videoconvert ! video/x-raw,format=ARGB ! rgb2bayer"
    run_script("bayer.sh", tmp_path, SOURCE=source, BAYER_FORMAT="grbg", NUM_BUFFERS=FRAMES)
    frames = frame_records(tmp_path / "bayer-camera.ndjson", "bayer-camera")
    assert FRAMES - 3 <= len(frames) <= FRAMES + 3
    # Mosaiced and demosaiced again, the frames get the verdicts of the colour video.
    assert agreement(frames, frame_records(replay / "video-file.ndjson", "video-file")) >= 0.95
    assert recorded_frames(tmp_path / "bayer-camera.mp4") == len(frames)


def test_rtsp_camera(rtsp_server, replay, tmp_path):
    run_script("rtsp.sh", tmp_path, URL=rtsp_server.url, NUM_BUFFERS=FRAMES)
    frames = frame_records(tmp_path / "ip-camera.ndjson", "ip-camera")
    assert FRAMES - 3 <= len(frames) <= FRAMES + 3
    assert agreement(frames, frame_records(replay / "video-file.ndjson", "video-file")) >= 0.95
    assert recorded_frames(tmp_path / "ip-camera.mp4") == len(frames)


def test_rtsp_camera_that_stops_is_an_error(rtsp_server, tmp_path):
    run = Run([PIPELINES / "rtsp.sh"], OUT_DIR=tmp_path, URL=rtsp_server.url, WATCHDOG_MS=2000)
    try:
        wait_records(tmp_path / "ip-camera.ndjson", 3, 30, run)
        os.kill(rtsp_server.proc.pid, signal.SIGSTOP)  # connection open, nothing sent
        start = time.monotonic()
        watchdog = r"^ERROR: from element /GstPipeline:pipeline0/GstWatchdog:camera-watchdog: Watchdog triggered"
        line = run.wait_line(watchdog, 15)
        assert time.monotonic() - start < 15, line
        assert run.wait(15) != 0
    finally:
        run.close()


def test_rtsp_camera_that_goes_away_ends_the_stream(rtsp_server, tmp_path):
    run = Run([PIPELINES / "rtsp.sh"], OUT_DIR=tmp_path, URL=rtsp_server.url)
    try:
        wait_records(tmp_path / "ip-camera.ndjson", 3, 30, run)
        rtsp_server.proc.kill()  # the connection closes
        closed = r"^WARNING: from element /GstPipeline:pipeline0/GstRTSPSrc:camera: Could not read from resource"
        run.wait_line(closed, 15)
        assert run.wait(15) == 0  # then EOS: the recording is finalised
    finally:
        run.close()
    frames = frame_records(tmp_path / "ip-camera.ndjson", "ip-camera")
    assert recorded_frames(tmp_path / "ip-camera.mp4") == len(frames)


@pytest.mark.parametrize("extension,count", [("png", 20), ("jpg", 10)])
def test_image_folder(replay, tmp_path, extension, count):
    folder = tmp_path / "images"
    folder.mkdir()
    capture = cv2.VideoCapture(str(VIDEO))
    for i in range(count):
        ok, image = capture.read()
        assert ok
        cv2.imwrite(str(folder / f"frame-{i + 1:04d}.{extension}"), image)
    capture.release()
    run_script("image-folder.sh", tmp_path, IMAGES=folder / f"frame-%04d.{extension}", START_INDEX=1, FRAMERATE="5/1")
    frames = frame_records(tmp_path / "image-folder.ndjson", "image-folder")
    assert [r["frame"] for r in frames] == list(range(count))
    assert [r["pts_ns"] for r in frames] == [i * 200_000_000 for i in range(count)]
    assert agreement(frames, frame_records(replay / "video-file.ndjson", "video-file")) >= 0.9
    assert recorded_frames(tmp_path / "image-folder.mp4") == count


PARSE = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
pipeline = Gst.parse_launch(sys.argv[1])
def walk(element):
    chain = []
    while element is not None:
        chain.append(element.get_factory().get_name())
        pads = element.sinkpads  # the first: muxers have request pads only
        peer = pads[0].get_peer() if pads else None
        element = peer.get_parent_element() if peer is not None else None
    return list(reversed(chain))
for arg in sys.argv[2:]:
    if ":" in arg:  # element:property
        name, prop = arg.split(":")
        print(pipeline.get_by_name(name).get_property(prop))
    else:  # a sink: the chain of element factories from the source down to it
        print(" ".join(walk(pipeline.get_by_name(arg))))
"""


def dry_run(script, **variables):
    """The pipeline description a script prints with DRY_RUN=1."""
    env = script_env(DRY_RUN=1, **variables)
    return subprocess.run([PIPELINES / script], env=env, capture_output=True, text=True, check=True).stdout


def parse(line, *queries):
    """Gst.parse_launch of a description (in a process of its own), then PARSE's answers."""
    argv = [sys.executable, "-c", PARSE, line, *queries]
    parsed = subprocess.run(argv, env=script_env(), capture_output=True, text=True, timeout=30)
    assert parsed.returncode == 0, parsed.stderr
    return parsed.stdout.splitlines()


@pytest.mark.parametrize(
    "caps,chain",
    [
        ("video/x-raw,format=GRAY8", "v4l2src capsfilter videoconvert watchdog defectdetect tee"),
        ("image/jpeg,width=1920,height=1080", "v4l2src capsfilter jpegdec videoconvert watchdog defectdetect tee"),
    ],
)
def test_usb_line_parses(tmp_path, caps, chain):
    """Without a camera, usb.sh's line is parsed with every element it names (v4l2src from
    gstreamer1.0-plugins-good) and its branches checked."""
    env = dict(DEVICE="/dev/video7", CAPS=caps, OUT_DIR=tmp_path, MQTT_HOST="127.0.0.1")
    line = dry_run("usb.sh", **env)
    verdicts_chain, mqtt_chain, recording_chain, device = parse(line, "verdicts", "mqtt", "recording", "camera:device")
    assert verdicts_chain == f"{chain} queue defectmetaconvert tee queue filesink"
    assert mqtt_chain == f"{chain} queue defectmetaconvert tee queue defectmqttsink"
    assert recording_chain == f"{chain} queue defectoverlay videoconvert capsfilter x264enc mp4mux filesink"
    assert device == "/dev/video7"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_line_parses(script, tmp_path):
    verdicts_chain, recording_chain = parse(dry_run(script, OUT_DIR=tmp_path), "verdicts", "recording")
    assert verdicts_chain.endswith("defectdetect tee queue defectmetaconvert tee queue filesink")
    recording = "defectdetect tee queue defectoverlay videoconvert capsfilter x264enc mp4mux filesink"
    assert recording_chain.endswith(recording)


def test_every_script_is_listed_and_tested():
    scripts = sorted(p.name for p in PIPELINES.glob("*.sh") if p.name != "common.sh")
    assert scripts == sorted(SCRIPTS)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Camera sources and ready pipelines")[1].split("\n## ")[0]
    details = (PIPELINES / "README.md").read_text()
    for script in scripts:
        assert f"pipelines/{script}" in section, f"{script} not listed in README.md"
        assert script in details, f"{script} not described in pipelines/README.md"
        assert callable(globals()[SCRIPTS[script]])
    assert "restart_on_error.py" in section


# ---------------------------------------------------------------- MQTT


def mqtt_packet(kind, body):
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return bytes([kind]) + encoded + body


def mqtt_string(text):
    return struct.pack("!H", len(text)) + text.encode()


def mqtt_read(sock):
    """One packet: (type byte, body)."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError("broker closed the connection")
            data += chunk
        return data

    kind = exactly(1)[0]
    length, shift = 0, 0
    while True:
        byte = exactly(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return kind, exactly(length)


@pytest.fixture
def mosquitto(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen(
        ["/usr/sbin/mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert broker.poll() is None and time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.05)
        yield port
    finally:
        broker.kill()
        broker.wait(10)


def test_mqtt_branch(mosquitto, tmp_path):
    sock = socket.create_connection(("127.0.0.1", mosquitto), timeout=30)
    received = []
    try:
        # CONNECT: MQTT 3.1.1, clean session, keep-alive 60 s
        connect = mqtt_string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + mqtt_string("test-pipelines")
        sock.sendall(mqtt_packet(0x10, connect))
        assert mqtt_read(sock) == (0x20, b"\x00\x00")
        sock.sendall(mqtt_packet(0x82, struct.pack("!H", 1) + mqtt_string("defect/#") + b"\x00"))
        assert mqtt_read(sock)[0] == 0x90

        def subscribe():
            try:
                while True:
                    kind, body = mqtt_read(sock)
                    if kind >> 4 == 3:  # PUBLISH, QoS 0 as subscribed
                        (n,) = struct.unpack("!H", body[:2])
                        received.append((body[2 : 2 + n].decode(), json.loads(body[2 + n :])))
            except (OSError, EOFError):
                pass

        thread = threading.Thread(target=subscribe, daemon=True)
        thread.start()
        mqtt = dict(MQTT_HOST="127.0.0.1", MQTT_PORT=mosquitto)
        run_script("video-file.sh", tmp_path, NUM_BUFFERS=20, SOURCE_ID="line-4", **mqtt)
        records = records_of(tmp_path / "line-4.ndjson")
        deadline = time.monotonic() + 15
        while len(received) < len(records) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sock.close()
    assert [topic for topic, _ in received] == ["defect/line-4/verdicts"] * len(records)
    assert [record for _, record in received] == records


# ---------------------------------------------------------------- restarting


def test_restart_on_error_reconnects(fake_camera, tmp_path):
    """The camera goes away mid-stream and comes back: restart_on_error.py finalises the
    first recording, waits, and carries on with a second one; the records go on in one file."""
    run = Run([sys.executable, RESTART, PIPELINES / "gige.sh"], OUT_DIR=tmp_path, CAMERA=CAMERA_ADDRESS)
    verdicts_file = tmp_path / "gige-camera.ndjson"
    try:
        wait_records(verdicts_file, 3, 30, run)
        fake_camera.stop()  # gone: killed
        run.wait_line(r"camera failed after \d+ frames", 15)
        fake_camera.start()  # back before the teardown: it answers Aravis's stop commands at once
        run.wait_line(r"restart 1 in 1 s", 15)  # first run finished: its records all written
        first_run = len(verdicts_file.read_bytes().splitlines())
        wait_records(verdicts_file, first_run + 3, 30, run)
        run.proc.send_signal(signal.SIGINT)
        assert run.wait(20) == 0, run.output()
    finally:
        run.close()
    frames = frame_records(verdicts_file, "gige-camera")
    starts = [i for i, r in enumerate(frames) if r["frame"] == 0]
    assert starts == [0, first_run], run.output()
    assert recorded_frames(tmp_path / "gige-camera.mp4") == first_run
    assert recorded_frames(tmp_path / "gige-camera-1.mp4") == len(frames) - first_run
    assert "error from camera" in run.output()


def test_restart_on_error_stops_on_other_errors(tmp_path):
    """A model that cannot be loaded is not the camera's fault: no restart, status 1."""
    run = Run([sys.executable, RESTART, PIPELINES / "video-file.sh"], OUT_DIR=tmp_path, MODEL=tmp_path / "missing.onnx")
    try:
        assert run.wait(30) == 1
    finally:
        run.close()
    assert "error from detect" in run.output()
    assert "restart" not in run.output().replace("restart_on_error", "")
