"""A full pipeline of every element under GStreamer's leaks tracer reports no leaked object.

Run the same line yourself:
    GST_TRACERS=leaks GST_DEBUG=GST_TRACER:7 GST_PLUGIN_PATH=target/debug gst-launch-1.0 ...
Every GstObject and GstMiniObject (buffers, events, caps, metas' buffers) still alive at
gst_deinit() is printed as an `object-alive` record."""
import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_no_leaks_in_a_full_pipeline(tmp_path):
    policy = ROOT / "pipelines" / "policy.toml"
    line = (
        f"videotestsrc num-buffers=60 pattern=ball ! video/x-raw,width=320,height=240 ! "
        f"defectdetect model={ROOT / 'models/test/squares_v8.onnx'} frames-per-part=7 ! tee name=t "
        f"t. ! queue ! defectoverlay ! videoconvert ! fakesink "
        f"t. ! queue ! defectcapture location={tmp_path / 'capture'} pass-every=5 ! defectmetaconvert ! "
        f"filesink location={tmp_path / 'records.ndjson'}"
    )
    env = dict(os.environ, GST_PLUGIN_PATH=str(ROOT / "target" / "debug"), GST_TRACERS="leaks", GST_DEBUG="GST_TRACER:7", GST_DEBUG_NO_COLOR="1")
    result = subprocess.run(["gst-launch-1.0", "-q", *line.split()], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    alive = [l for l in result.stderr.splitlines() if re.search(r"object-alive, type-name=\(string\)\w", l)]
    assert not alive, "leaked:\n" + "\n".join(alive[:20])
    assert len((tmp_path / "records.ndjson").read_text().splitlines()) >= 60
