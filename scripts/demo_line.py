#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""The demo's line: the recorded conveyor video through defectdetect, with the parts
announced as a line's trigger (photo-eye, PLC) would announce them: a `defect-part` event
ahead of each part's first frame, at the frames the recording's truth file gives
(`parts[].primary_first_frame`). Prints each part's verdict as defectdetect reports it and
writes the NDJSON records and the annotated video.

Usage: demo_line.py VIDEO MODEL POLICY TRUTH OUT_DIR   (GST_PLUGIN_PATH must hold the plugin)
Runs with Debian's python3 (PyGObject from python3-gi)."""
import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main():
    video, model, policy, truth, out = sys.argv[1:6]
    truth_parts = json.load(open(truth))["parts"]
    parts = sorted((p["primary_first_frame"], str(p["part_id"])) for p in truth_parts)
    defective = {str(p["part_id"]): p["defective"] for p in truth_parts}
    Gst.init(None)
    description = (
        f'filesrc location="{video}" ! decodebin ! videoconvert ! video/x-raw,format=I420 ! '
        f'identity name=trigger ! defectdetect model="{model}" policy="{policy}" ! tee name=t '
        f't. ! queue ! defectmetaconvert source-id=demo-line ! filesink location="{out}/verdicts.ndjson" '
        f't. ! queue ! defectoverlay ! videoconvert ! vp8enc deadline=1 target-bitrate=4000000 ! webmmux ! '
        f'filesink location="{out}/annotated.webm"'
    )
    print(f"demo: pipeline: {description}")
    print(f"demo: parts announced at frames {', '.join(f'{first} ({pid})' for first, pid in parts)}")
    pipeline = Gst.parse_launch(description)
    pad = pipeline.get_by_name("trigger").get_static_pad("src")
    frame = [0]
    starts = dict(parts)

    def announce(pad, info):
        # Serialized: the event reaches defectdetect ahead of this frame.
        if frame[0] in starts:
            event = Gst.Structure.new_empty("defect-part")
            event.set_value("part-id", starts[frame[0]])
            pad.push_event(Gst.Event.new_custom(Gst.EventType.CUSTOM_DOWNSTREAM, event))
        frame[0] += 1
        return Gst.PadProbeReturn.OK

    pad.add_probe(Gst.PadProbeType.BUFFER, announce)
    loop = GLib.MainLoop()
    status = [0]

    def on_message(bus, message):
        if message.type == Gst.MessageType.ELEMENT and message.get_structure().get_name() == "defect-part-verdict":
            s = message.get_structure()
            print(f"demo: part {s.get_string('part-id')}: {s.get_string('verdict')} "
                  f"(frames {s.get_value('first-frame')}-{s.get_value('last-frame')}, "
                  f"{s.get_value('inspected-frames')} inspected; the truth says "
                  f"{'defective' if defective.get(s.get_string('part-id')) else 'clean'})", flush=True)
        elif message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            print(f"demo: error from {message.src.get_path_string()}: {error.message} ({debug})", file=sys.stderr)
            status[0] = 1
            loop.quit()
        elif message.type == Gst.MessageType.WARNING:
            warning, _ = message.parse_warning()
            print(f"demo: warning from {message.src.get_path_string()}: {warning.message}", file=sys.stderr)
        elif message.type == Gst.MessageType.EOS:
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    return status[0]


if __name__ == "__main__":
    sys.exit(main())
