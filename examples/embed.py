#!/usr/bin/env python3
"""Embedding the elements in a Python application (PyGObject): build a pipeline, read the
ROI metas and the verdict meta from each buffer at an appsink, and the verdict messages from
the bus.

    GST_PLUGIN_PATH=target/release python3 examples/embed.py models/test/squares_v8.onnx [VIDEO]

Needs Debian's python3-gi, gir1.2-gstreamer-1.0 and gir1.2-gst-plugins-base-1.0.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstVideo  # noqa: E402


def rois_of(buffer):
    """(class name, confidence, (x, y, w, h)) of every GstVideoRegionOfInterestMeta.

    defectdetect numbers a frame's ROIs 0..n-1, so they can be fetched by id (PyGObject has
    no generic meta iteration in GStreamer 1.22)."""
    found = []
    while True:
        roi = GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, len(found))
        if roi is None:
            return found
        detection = roi.get_param("detection")
        confidence = detection.get_value("confidence") if detection else 0.0
        found.append((GLib.quark_to_string(roi.roi_type), confidence, (roi.x, roi.y, roi.w, roi.h)))


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: embed.py MODEL.onnx [VIDEO]")
    model = sys.argv[1]
    if len(sys.argv) > 2:
        source = f'filesrc location="{sys.argv[2]}" ! decodebin ! videoconvert'
    else:
        source = "videotestsrc num-buffers=30 pattern=ball ! video/x-raw,width=640,height=480"
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f'{source} ! defectdetect model="{model}" frames-per-part=10 ! appsink name=sink sync=false'
    )
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)

    frames = rois = fails = 0
    while True:
        sample = sink.emit("try-pull-sample", 30 * Gst.SECOND)
        if sample is None:
            break
        buffer = sample.get_buffer()
        frames += 1
        for name, confidence, rect in rois_of(buffer):
            rois += 1
            print(f"frame {frames}: {name} at {rect} confidence {confidence:.3f}")
        meta = buffer.get_custom_meta("DefectVerdictMeta")
        if meta is not None and meta.get_structure().get_string("verdict") == "FAIL":
            fails += 1

    bus = pipeline.get_bus()
    verdict_messages, parts = 0, []
    while True:
        message = bus.pop()
        if message is None:
            break
        if message.type == Gst.MessageType.ERROR:
            error, _ = message.parse_error()
            sys.exit(f"error: {error.message}")
        structure = message.get_structure()
        if message.type == Gst.MessageType.ELEMENT and structure is not None:
            if structure.get_name() == "defect-verdict":
                verdict_messages += 1
            elif structure.get_name() == "defect-part-verdict":
                parts.append(f"{structure.get_string('part-id')}={structure.get_string('verdict')}")
    pipeline.set_state(Gst.State.NULL)
    print(f"frames {frames} rois {rois} fail-frames {fails} verdict-messages {verdict_messages} parts [{', '.join(parts)}]")


if __name__ == "__main__":
    main()
